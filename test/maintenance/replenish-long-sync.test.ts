import { GetCommandInvocationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { leaseSeconds, type ReplenishCtx, replenishSteps } from '../../lambdas/replenish/steps.js';
import { CommandPending } from '../../lambdas/shared/errors.js';
import type { StepDeps } from '../../lambdas/shared/steps.js';
import { setTimeSource } from '../../lambdas/shared/time.js';

const ssmMock = mockClient(SSMClient);
const ssm = new SSMClient({ region: 'us-east-1' });
const renewLease = vi.fn(async () => true);
const deps = { ssm, repo: { renewLease } } as unknown as StepDeps;
const sentAt = 1_000_000;
let now = sentAt;

beforeEach(() => {
  ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'InProgress', ResponseCode: -1 });
  setTimeSource(() => now);
});

afterEach(() => {
  ssmMock.reset();
  renewLease.mockClear();
  setTimeSource(() => Date.now());
});

const ctx: ReplenishCtx = {
  pool: 'web',
  az: 'us-east-1a',
  runId: 'replenish-web-us-east-1a-1',
  commands: [{ commandId: 'cmd-1', instanceId: 'i-0123456789abcdef0', document: 'Volsd-Sync-web' }],
  syncSentAt: sentAt,
};

async function pollAt(secondsAfterSync: number) {
  now = sentAt + secondsAfterSync * 1000;
  const waitCommands = replenishSteps.waitCommands;
  if (!waitCommands) throw new Error('replenish has no waitCommands step');
  await expect(waitCommands(ctx, deps)).rejects.toBeInstanceOf(CommandPending);
}

// A first fill's sync may outlast the AZ's lease; a run that took the lease then would sync the same
// volumes a second time (docs/decisions.md, "First deploy").
describe("replenish's wait for a long sync", () => {
  it('renews its own lease, for a full lease, once the sync has run a third of it', async () => {
    await pollAt(leaseSeconds / 3 + 1);

    expect(renewLease).toHaveBeenCalledWith('replenish#web#us-east-1a', ctx.runId, leaseSeconds);
  });

  it('writes nothing while the sync is younger than a third of the lease', async () => {
    await pollAt(leaseSeconds / 3 - 1);

    expect(renewLease).not.toHaveBeenCalled();
  });
});
