import {
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { allCustomMatcher } from 'aws-sdk-client-mock-vitest';
import 'aws-sdk-client-mock-vitest/extend';
import { afterEach, describe, expect, it } from 'vitest';
import { afterRunning, unitChain } from '../../lambdas/acquire/callbacks.js';
import { handleBootRequest } from '../../lambdas/boot/handler.js';
import { type BootSignalDeps, bootSignal } from '../../lambdas/boot/signal.js';
import { relayEvent } from '../../lambdas/events/relay.js';
import type { WorkflowCtx } from '../../lambdas/shared/steps.js';
import type { TaskWait, TaskWaits, WaitKind } from '../../lambdas/shared/task-waits.js';

expect.extend(allCustomMatcher);

const sfnMock = mockClient(SFNClient);
const sfn = new SFNClient({ region: 'us-east-1' });
afterEach(() => sfnMock.reset());

const a = 'i-0123456789abcdef0';
const b = 'i-0fedcba9876543210';
const volume = 'vol-0123456789abcdef0';

/** Waits in memory, with the table's take semantics (one taker; a token must match when given). */
function memoryWaits(initial: TaskWait[] = []) {
  const items = new Map(initial.map((w) => [`${w.kind}#${w.id}`, w]));
  const waits = {
    put: async () => undefined,
    get: async (kind: WaitKind, id: string) => items.get(`${kind}#${id}`),
    take: async (kind: WaitKind, id: string, token?: string) => {
      const found = items.get(`${kind}#${id}`);
      if (!found || (token && found.token !== token)) return undefined;
      items.delete(`${kind}#${id}`);
      return found;
    },
    // As lambdas/shared/task-waits.ts: only an armed wait is marked, once; its token, if stored, is answered.
    fire: async (kind: WaitKind, id: string) => {
      const found = items.get(`${kind}#${id}`) as (TaskWait & { fired?: boolean }) | undefined;
      if (!found || found.fired) return undefined;
      found.fired = true;
      return found.token ? found : undefined;
    },
  };
  return { waits: waits as unknown as TaskWaits, items };
}

const bootWait = (instanceId: string, volumeId: string): TaskWait => ({
  kind: 'boot',
  id: instanceId,
  token: `token-${instanceId}`,
  ctx: { pool: 'web', instanceId, volumeId, generation: 3, device: '/dev/sdf' },
  expiresAt: 0,
});

function signalDeps(waits: TaskWaits, poolGeneration: number): BootSignalDeps {
  return {
    waits,
    repo: { getPool: async () => ({ generation: poolGeneration }) } as unknown as BootSignalDeps['repo'],
    sfn,
    pushBucket: 'volsd-web-push',
    pushPrefix: 'live/',
    maxObjectBytes: '1073741824',
  };
}

describe('boot signal', () => {
  it('resumes the waiting acquire with the generation on the volume when it is current', async () => {
    const { waits, items } = memoryWaits([bootWait(a, volume)]);
    sfnMock.on(SendTaskSuccessCommand).resolves({});

    const answer = await bootSignal(
      a,
      { status: 'mounted', volumeId: volume, generation: 5 },
      signalDeps(waits, 5),
    );

    expect(answer).toEqual({ status: 'ok' });
    expect(sfnMock).toHaveReceivedCommandWith(SendTaskSuccessCommand, {
      taskToken: `token-${a}`,
      output: JSON.stringify({
        pool: 'web',
        instanceId: a,
        volumeId: volume,
        generation: 5,
        device: '/dev/sdf',
      }),
    });
    expect(items.size).toBe(0);
  });

  it('tells a unit behind the pool to sync to the current generation and renews the heartbeat', async () => {
    const { waits, items } = memoryWaits([bootWait(a, volume)]);
    sfnMock.on(SendTaskHeartbeatCommand).resolves({});

    const answer = await bootSignal(
      a,
      { status: 'mounted', volumeId: volume, generation: 3 },
      signalDeps(waits, 4),
    );

    expect(answer).toEqual({
      status: 'behind',
      sync: { bucket: 'volsd-web-push', prefix: 'live/', generation: 4, maxObjectBytes: '1073741824' },
    });
    expect(sfnMock).toHaveReceivedCommandWith(SendTaskHeartbeatCommand, { taskToken: `token-${a}` });
    expect(sfnMock).not.toHaveReceivedCommand(SendTaskSuccessCommand);
    expect(items.size).toBe(1);
  });

  it("refuses a caller signalling another instance's volume and completes nothing", async () => {
    const { waits, items } = memoryWaits([bootWait(a, volume), bootWait(b, 'vol-0fedcba9876543210')]);

    const answer = await bootSignal(
      b,
      { status: 'mounted', volumeId: volume, generation: 99 },
      signalDeps(waits, 1),
    );

    expect(answer).toMatchObject({ status: 'refused' });
    expect(sfnMock.calls()).toHaveLength(0);
    expect(items.size).toBe(2);
  });

  it('refuses a caller for which no acquire waits', async () => {
    const { waits } = memoryWaits([bootWait(a, volume)]);

    const answer = await bootSignal(
      b,
      { status: 'mounted', volumeId: volume, generation: 1 },
      signalDeps(waits, 1),
    );

    expect(answer).toMatchObject({ status: 'refused' });
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it('fails the waiting Task with BootUnitFailed when the unit cannot mount', async () => {
    const { waits } = memoryWaits([bootWait(a, volume)]);
    sfnMock.on(SendTaskFailureCommand).resolves({});

    const answer = await bootSignal(a, { status: 'failed', reason: 'bad mount path' }, signalDeps(waits, 1));

    expect(answer).toEqual({ status: 'fallback' });
    expect(sfnMock).toHaveReceivedCommandWith(SendTaskFailureCommand, {
      taskToken: `token-${a}`,
      error: 'BootUnitFailed',
    });
  });
});

describe('host function identity', () => {
  const request = (iam: Record<string, string>) =>
    ({
      rawPath: '/',
      requestContext: { http: { method: 'POST' }, authorizer: { iam } },
      body: JSON.stringify({ status: 'mounted', volumeId: volume, generation: 1 }),
      isBase64Encoded: false,
    }) as unknown as Parameters<typeof handleBootRequest>[0];

  it('refuses callers that are not an instance session of the pool account, before reading anything', async () => {
    Object.assign(process.env, {
      TABLE_NAME: 'volsd-web',
      PUSH_BUCKET: 'volsd-web-push',
      EXPECTED_ACCOUNT_ID: '123456789012',
    });
    for (const iam of [
      { userArn: 'arn:aws:iam::123456789012:user/alice', userId: 'AIDAEXAMPLEUSER0001' },
      { userArn: `arn:aws:sts::210987654321:assumed-role/host/${a}`, userId: `AROAEXAMPLEROLE00001:${a}` },
      { userArn: `arn:aws:sts::123456789012:assumed-role/host/${b}`, userId: `AROAEXAMPLEROLE00001:${a}` },
    ]) {
      const answer = (await handleBootRequest(request(iam))) as { statusCode?: number };
      expect(answer.statusCode, iam.userArn).toBe(403);
    }
    expect(sfnMock.calls()).toHaveLength(0);
  });
});

/** The relay's dependencies for cases that must reach no next stage. */
const relayDeps = (waits: TaskWaits) => ({
  waits,
  sfn,
  unmountDocument: 'Volsd-Unmount',
  afterUnmount: noStage,
  afterRunning: noStage,
});

/** An afterUnmount for cases that must not reach it. */
const noStage = async () => {
  throw new Error('the detach stage must not run here');
};

describe('events relay', () => {
  const unmountEvent = (status: string, document = 'Volsd-Unmount') => ({
    source: 'aws.ssm',
    'detail-type': 'EC2 Command Status-change Notification',
    detail: { 'command-id': '0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0', 'document-name': document, status },
  });
  const commandWait = (): TaskWait => ({
    kind: 'command',
    id: '0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0',
    token: 'token-unmount',
    ctx: { instanceId: a, volumeId: volume },
    expiresAt: 0,
  });

  it('goes on with the next stage (the detach) on Success, with the stored context and token, once', async () => {
    const { waits } = memoryWaits([commandWait()]);
    const stages: unknown[] = [];
    const deps = {
      waits,
      sfn,
      unmountDocument: 'Volsd-Unmount',
      afterUnmount: async (ctx: Record<string, unknown>, token: string) => stages.push([ctx, token]),
      afterRunning: noStage,
    };

    const first = await relayEvent(unmountEvent('Success'), deps);
    const again = await relayEvent(unmountEvent('Success'), deps);

    expect(first).toMatchObject({ action: 'resumed', kind: 'command' });
    expect(again).toMatchObject({ action: 'ignored' });
    expect(stages).toEqual([[{ instanceId: a, volumeId: volume }, 'token-unmount']]);
    // The stage answers the Task itself (or leaves it waiting for `running`): nothing is sent here.
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it("fails the Task with the next stage's own error when it throws", async () => {
    const { waits } = memoryWaits([commandWait()]);
    sfnMock.on(SendTaskFailureCommand).resolves({});
    const refused = Object.assign(new Error('volume vol-1 is held by i-other'), {
      name: 'VolumeHeldElsewhere',
    });
    const deps = {
      waits,
      sfn,
      unmountDocument: 'Volsd-Unmount',
      afterUnmount: async () => {
        throw refused;
      },
      afterRunning: noStage,
    };

    expect(await relayEvent(unmountEvent('Success'), deps)).toMatchObject({
      action: 'failed',
      kind: 'command',
    });
    expect(sfnMock).toHaveReceivedCommandWith(SendTaskFailureCommand, {
      taskToken: 'token-unmount',
      error: 'VolumeHeldElsewhere',
      cause: 'volume vol-1 is held by i-other',
    });
  });

  it('fails the unmount wait with CommandFailed on a failed command', async () => {
    const { waits } = memoryWaits([commandWait()]);
    sfnMock.on(SendTaskFailureCommand).resolves({});

    const result = await relayEvent(unmountEvent('Failed'), {
      waits,
      sfn,
      unmountDocument: 'Volsd-Unmount',
      afterUnmount: noStage,
      afterRunning: noStage,
    });

    expect(result).toMatchObject({ action: 'failed' });
    expect(sfnMock).toHaveReceivedCommandWith(SendTaskFailureCommand, { error: 'CommandFailed' });
  });

  it('ignores other documents and statuses that are not final', async () => {
    const { waits, items } = memoryWaits([commandWait()]);
    const deps = relayDeps(waits);

    expect(await relayEvent(unmountEvent('Success', 'Volsd-Sync'), deps)).toMatchObject({
      action: 'ignored',
    });
    expect(await relayEvent(unmountEvent('InProgress'), deps)).toMatchObject({ action: 'ignored' });
    expect(items.size).toBe(1);
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it('goes on with the next stage when the instance runs, once', async () => {
    const { waits } = memoryWaits([
      { kind: 'running', id: a, token: 'token-running', ctx: { instanceId: a }, expiresAt: 0 },
    ]);
    const stages: unknown[] = [];
    const event = (state: string) => ({
      source: 'aws.ec2',
      'detail-type': 'EC2 Instance State-change Notification',
      detail: { 'instance-id': a, state },
    });
    const deps = {
      waits,
      sfn,
      unmountDocument: 'Volsd-Unmount',
      afterUnmount: noStage,
      afterRunning: async (ctx: Record<string, unknown>, token: string) => stages.push([ctx, token]),
    };

    expect(await relayEvent(event('pending'), deps)).toMatchObject({ action: 'ignored' });
    expect(await relayEvent(event('running'), deps)).toMatchObject({ action: 'resumed', kind: 'running' });
    // A second delivery of the same event goes on with nothing more.
    expect(await relayEvent(event('running'), deps)).toMatchObject({ action: 'ignored' });
    expect(stages).toEqual([[{ instanceId: a }, 'token-running']]);
  });

  it('ignores a running instance no acquire armed a wait for', async () => {
    const { waits } = memoryWaits();
    const deps = relayDeps(waits);
    const event = {
      source: 'aws.ec2',
      'detail-type': 'EC2 Instance State-change Notification',
      detail: { 'instance-id': a, state: 'running' },
    };

    expect(await relayEvent(event, deps)).toEqual({ action: 'ignored', reason: 'no wait' });
    expect(sfnMock.calls()).toHaveLength(0);
  });
});

describe('the chain after running (lambdas/acquire/callbacks.ts)', () => {
  const running = { action: 'launch', pool: 'web', instanceId: a, volumeId: volume, bootUnit: true };

  function chain() {
    const { waits, items } = memoryWaits();
    const stored: unknown[] = [];
    (waits as unknown as { put: unknown }).put = async (...args: unknown[]) => {
      stored.push(args.slice(0, 4));
    };
    const attached: unknown[] = [];
    const deps = {
      detach: async (ctx: WorkflowCtx) => ctx,
      attach: async (ctx: WorkflowCtx) => {
        attached.push(ctx);
        return { ...ctx, device: '/dev/sdf' };
      },
      waits,
      sfn,
    };
    return { deps, stored, attached, items };
  }

  it('on the boot-unit path attaches and waits for the signal under the same token: no resume', async () => {
    const { deps, stored, attached } = chain();

    await afterRunning({ ...running, awaitUnit: true } as unknown as WorkflowCtx, 'token-1', deps);

    expect(attached).toEqual([running]);
    expect(stored).toEqual([
      ['boot', a, 'token-1', { ...running, device: '/dev/sdf', attachedForUnit: true }],
    ]);
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it('otherwise resumes the Task with the stored context', async () => {
    const { deps, attached } = chain();
    sfnMock.on(SendTaskSuccessCommand).resolves({});

    await afterRunning({ ...running, bootUnit: false } as unknown as WorkflowCtx, 'token-2', deps);

    expect(attached).toEqual([]);
    expect(sfnMock).toHaveReceivedCommandWith(SendTaskSuccessCommand, {
      taskToken: 'token-2',
      output: JSON.stringify({ ...running, bootUnit: false }),
    });
  });

  it('goes on to the unit only while the unit has not failed or been silent', () => {
    expect(unitChain({ ...running } as unknown as WorkflowCtx)).toBe(true);
    expect(
      unitChain({ ...running, bootUnitError: { Error: 'States.Timeout' } } as unknown as WorkflowCtx),
    ).toBe(false);
    expect(unitChain({ ...running, bootUnit: false } as unknown as WorkflowCtx)).toBe(false);
  });
});
