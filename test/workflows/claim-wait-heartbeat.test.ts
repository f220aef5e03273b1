import { AutoScalingClient, RecordLifecycleActionHeartbeatCommand } from '@aws-sdk/client-auto-scaling';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  claimPollMaxSeconds,
  heartbeatAfterWait,
  heartbeatWhileWaiting,
} from '../../lambdas/acquire/first-deploy.js';
import type { StepDeps, WorkflowCtx } from '../../lambdas/shared/steps.js';
import { setTimeSource } from '../../lambdas/shared/time.js';
import { loadWorkflowConfig } from '../../lambdas/shared/workflow-config.js';
import { WorkflowAction } from '../../lambdas/shared/workflow-input.js';

const autoScalingMock = mockClient(AutoScalingClient);
const autoScaling = new AutoScalingClient({ region: 'us-east-1' });
let now = 0;

beforeEach(() => {
  autoScalingMock.on(RecordLifecycleActionHeartbeatCommand).resolves({});
  setTimeSource(() => now);
});

afterEach(() => {
  autoScalingMock.reset();
  setTimeSource(() => Date.now());
});

const startedAt = 1_000_000;
const ctx: WorkflowCtx = {
  pool: 'web',
  instanceId: 'i-0123456789abcdef0',
  action: WorkflowAction.Launch,
  lifecycle: { hookName: 'volsd-launch', groupName: 'web', token: '6f1c3c1e-2b7a-4a44-9a39-7f2ad0f0c001' },
  startedAt,
};

function deps(heartbeatTimeoutSeconds: number): StepDeps {
  const config = loadWorkflowConfig({
    TABLE_NAME: 'volsd-web',
    POOL_NAME: 'web',
    PUSH_BUCKET: 'volsd-web-push',
    HEARTBEAT_TIMEOUT: String(heartbeatTimeoutSeconds),
  });
  return { autoScaling, config } as unknown as StepDeps;
}

/** Runs one wait of `seconds`, polled every `pollSeconds` as the retrier does once at its cap; the heartbeat times. */
async function heartbeatsOver(seconds: number, pollSeconds: number, heartbeatTimeout: number) {
  const sent: number[] = [];
  for (let t = 0; t <= seconds; t += pollSeconds) {
    now = startedAt + t * 1000;
    const before = autoScalingMock.commandCalls(RecordLifecycleActionHeartbeatCommand).length;
    await heartbeatWhileWaiting(ctx, deps(heartbeatTimeout));
    if (autoScalingMock.commandCalls(RecordLifecycleActionHeartbeatCommand).length > before) sent.push(t);
  }
  return sent;
}

describe('lifecycle heartbeats of a waiting claim', () => {
  it('come once or twice per third of the timeout, never a full timeout apart, over a 44-minute wait', async () => {
    const sent = await heartbeatsOver(44 * 60, claimPollMaxSeconds, 600);

    expect(sent.length).toBeGreaterThanOrEqual(24);
    expect(sent.length).toBeLessThanOrEqual(28);
    const gaps = [sent[0] ?? 0, ...sent.slice(1).map((t, i) => t - (sent[i] ?? 0))];
    expect(Math.max(...gaps)).toBeLessThan(600);
  });

  it('keep every third covered when polls run late (55 s apart: the 30 s cap plus a slow invocation)', async () => {
    const sent = await heartbeatsOver(44 * 60, 55, 600);

    const gaps = [sent[0] ?? 0, ...sent.slice(1).map((t, i) => t - (sent[i] ?? 0))];
    expect(Math.max(...gaps)).toBeLessThan(600);
    expect(sent.length).toBeLessThanOrEqual(28);
  });

  it('are sent at every poll when a third of the timeout is shorter than a poll', async () => {
    const sent = await heartbeatsOver(300, claimPollMaxSeconds, 60);

    expect(sent).toEqual([30, 60, 90, 120, 150, 180, 210, 240, 270, 300]);
  });

  it('are not sent for a manual acquire, which has no lifecycle action', async () => {
    now = startedAt + 3_600_000;
    const { lifecycle: _none, ...manual } = ctx;
    await heartbeatWhileWaiting({ ...manual, action: WorkflowAction.ManualAcquire }, deps(600));

    expect(autoScalingMock.commandCalls(RecordLifecycleActionHeartbeatCommand)).toHaveLength(0);
  });
});

describe('the heartbeat of a claim that waited', () => {
  it('is sent once the claim succeeds, and recorded so the later steps pace theirs from it', async () => {
    now = startedAt + 250_000;

    const next = await heartbeatAfterWait(ctx, deps(600));

    expect(autoScalingMock.commandCalls(RecordLifecycleActionHeartbeatCommand)).toHaveLength(1);
    expect(next.heartbeatAt).toBe(now);
  });

  it('is not sent when the claim succeeded within a third of the timeout', async () => {
    now = startedAt + 150_000;

    const next = await heartbeatAfterWait(ctx, deps(600));

    expect(autoScalingMock.commandCalls(RecordLifecycleActionHeartbeatCommand)).toHaveLength(0);
    expect(next.heartbeatAt).toBeUndefined();
  });
});
