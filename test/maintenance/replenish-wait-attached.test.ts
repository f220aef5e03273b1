import { DescribeVolumesCommand, DetachVolumeCommand, EC2Client, type Volume } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ReplenishCtx, replenishSteps, workerAttachTimeoutMs } from '../../lambdas/replenish/steps.js';
import { VolumeNotReady } from '../../lambdas/shared/errors.js';
import type { Step } from '../../lambdas/shared/steps.js';
import { setTimeSource } from '../../lambdas/shared/time.js';

// WaitAttached of replenish, alone: EC2 mocked, the steps' clock set by the test.
const ec2Mock = mockClient(EC2Client);
const worker = 'i-0000000000000worker';
let now = 1_000_000;

type Deps = Parameters<Step<ReplenishCtx>>[1];
/** Device names the step recorded unusable, by worker (the repository's addUnusableDevices). */
let unusable: Record<string, string[]> = {};
const deps = () =>
  ({
    ec2: new EC2Client({ region: 'us-east-1' }),
    repo: {
      addUnusableDevices: async (instanceId: string, devices: readonly string[]) => {
        unusable[instanceId] = [...(unusable[instanceId] ?? []), ...devices];
      },
    },
  }) as unknown as Deps;
const waitAttached = replenishSteps.waitAttached as Step<ReplenishCtx>;

function volumes(byId: Record<string, Volume['Attachments']>) {
  ec2Mock.on(DescribeVolumesCommand).callsFake((input: { VolumeIds?: string[] }) => {
    const id = input.VolumeIds?.[0] ?? '';
    const attachments = byId[id] ?? [];
    return {
      Volumes: [
        { VolumeId: id, State: attachments.length ? 'in-use' : 'available', Attachments: attachments },
      ],
    };
  });
}

const ctx = (ids: string[]): ReplenishCtx => ({
  pool: 'web',
  az: 'us-east-1a',
  workerId: worker,
  volumes: ids.map((volumeId) => ({ volumeId, empty: true })),
  attachRequestedAt: now,
  again: false,
});

beforeEach(() => {
  ec2Mock.reset();
  ec2Mock.on(DetachVolumeCommand).resolves({});
  now = 1_000_000;
  unusable = {};
  setTimeSource(() => now);
});

afterEach(() => {
  setTimeSource(() => Date.now());
});

describe('replenish WaitAttached', () => {
  it('waits while an attach to the worker is under way', async () => {
    volumes({
      'vol-ok': [{ InstanceId: worker, State: 'attached', Device: '/dev/sdf' }],
      'vol-slow': [{ InstanceId: worker, State: 'attaching', Device: '/dev/sdg' }],
    });
    const start = ctx(['vol-ok', 'vol-slow']);
    now += workerAttachTimeoutMs - 1_000;
    await expect(waitAttached(start, deps())).rejects.toBeInstanceOf(VolumeNotReady);
    expect(ec2Mock.commandCalls(DetachVolumeCommand)).toHaveLength(0);
  });

  it('force-detaches an attach stuck past its bound, sets the volume aside and asks for another round', async () => {
    volumes({
      'vol-ok': [{ InstanceId: worker, State: 'attached', Device: '/dev/sdf' }],
      'vol-stuck': [{ InstanceId: worker, State: 'attaching', Device: '/dev/sdg' }],
    });
    const start = ctx(['vol-ok', 'vol-stuck']);
    now += workerAttachTimeoutMs + 1_000;
    const out = await waitAttached(start, deps());
    expect(out.volumes?.map((v) => v.volumeId)).toEqual(['vol-ok']);
    expect(out.setAside).toBe(1);
    expect(out.again).toBe(true);
    const detaches = ec2Mock.commandCalls(DetachVolumeCommand).map((c) => c.args[0].input);
    expect(detaches).toEqual([{ VolumeId: 'vol-stuck', InstanceId: worker, Force: true }]);
  });

  it("records the stuck attach's device as unusable on the worker, for this run and later ones", async () => {
    volumes({ 'vol-stuck': [{ InstanceId: worker, State: 'attaching', Device: '/dev/sdg' }] });
    const start = { ...ctx(['vol-stuck']), avoidDevices: ['/dev/sdh'] };
    now += workerAttachTimeoutMs + 1_000;

    const out = await waitAttached(start, deps());

    expect(out.avoidDevices).toEqual(['/dev/sdh', '/dev/sdg']);
    expect(unusable).toEqual({ [worker]: ['/dev/sdg'] });
  });

  it('sets aside, without detaching, a volume found on another instance', async () => {
    volumes({
      'vol-elsewhere': [{ InstanceId: 'i-0000000000000other', State: 'attached', Device: '/dev/sdf' }],
    });
    const start = ctx(['vol-elsewhere']);
    now += workerAttachTimeoutMs + 1_000;
    const out = await waitAttached(start, deps());
    expect(out.volumes).toEqual([]);
    expect(out.setAside).toBe(1);
    expect(ec2Mock.commandCalls(DetachVolumeCommand)).toHaveLength(0);
  });

  it('passes the context on unchanged when every volume is attached', async () => {
    volumes({ 'vol-ok': [{ InstanceId: worker, State: 'attached', Device: '/dev/sdf' }] });
    const start = ctx(['vol-ok']);
    now += workerAttachTimeoutMs + 1_000;
    expect(await waitAttached(start, deps())).toEqual(start);
  });
});
