import { SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireSteps } from '../../lambdas/acquire/steps.js';
import type { StepDeps, WorkflowCtx } from '../../lambdas/shared/steps.js';

const ssmMock = mockClient(SSMClient);
const poolGeneration = 7;
const deps = {
  ssm: new SSMClient({ region: 'us-east-1' }),
  repo: { getPool: async () => ({ generation: poolGeneration }) },
  config: { SYNC_DOCUMENT: 'Volsd-Sync-web', PUSH_BUCKET: 'push', PUSH_PREFIX: 'live/' },
} as unknown as StepDeps;

const volumeId = 'vol-0123456789abcdef0';
const mounted = (marker: number | undefined, tableGeneration: number): WorkflowCtx =>
  ({
    pool: 'web',
    instanceId: 'i-0123456789abcdef0',
    volumeId,
    generation: tableGeneration,
    lastResults: [marker === undefined ? { volumeId } : { volumeId, generation: marker }],
  }) as unknown as WorkflowCtx;

async function bringCurrent(ctx: WorkflowCtx) {
  const step = acquireSteps.bringCurrent;
  if (!step) throw new Error('acquire has no bringCurrent step');
  return step(ctx, deps);
}

beforeEach(() => {
  ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
});

afterEach(() => {
  ssmMock.reset();
});

// The mount reads the volume's `.volsd/generation`; the table's generation is Volsd's own record of it.
describe("acquire's BringCurrent", () => {
  it('syncs a volume whose marker is behind even when the table says it is current', async () => {
    const out = await bringCurrent(mounted(poolGeneration - 1, poolGeneration));

    expect(out.current).toBe(false);
    const sent = ssmMock.commandCalls(SendCommandCommand);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.args[0].input.Parameters?.Generation).toEqual([String(poolGeneration)]);
  });

  it('sends nothing when the marker is at the pool generation', async () => {
    const out = await bringCurrent(mounted(poolGeneration, poolGeneration - 3));

    expect(out.current).toBe(true);
    expect(ssmMock.commandCalls(SendCommandCommand)).toHaveLength(0);
  });

  it('sends the sync again when the last round reported nothing', async () => {
    const ctx = {
      ...mounted(poolGeneration - 1, poolGeneration - 1),
      syncingTo: poolGeneration,
      lastResults: [],
    };

    const out = await bringCurrent(ctx);

    expect(out.current).toBe(false);
    expect(ssmMock.commandCalls(SendCommandCommand)).toHaveLength(1);
  });

  it("falls back on the table's generation when the mount reported no marker", async () => {
    const out = await bringCurrent(mounted(undefined, poolGeneration));

    expect(out.current).toBe(true);
    expect(ssmMock.commandCalls(SendCommandCommand)).toHaveLength(0);
  });
});
