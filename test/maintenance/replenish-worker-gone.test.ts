import {
  AttachVolumeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ReplenishCtx, replenishSteps } from '../../lambdas/replenish/steps.js';
import { VolumeState } from '../../lambdas/shared/model.js';
import type { Step } from '../../lambdas/shared/steps.js';

// AttachToWorker of replenish, alone, EC2 mocked: one of the round's two workers is terminated between
// Plan and the attach (its group replaced it).
const ec2Mock = mockClient(EC2Client);
const live = 'i-00000000000000live';
const gone = 'i-00000000000000gone';

type Deps = Parameters<Step<ReplenishCtx>>[1];
const deps = () =>
  ({
    ec2: new EC2Client({ region: 'us-east-1' }),
    repo: {
      getVolume: async (volumeId: string) => ({ volumeId, state: VolumeState.Syncing, holder: 'x' }),
      setHolder: async () => {},
      transition: async () => {},
      unusableDevices: async () => [],
    },
  }) as unknown as Deps;
const attachToWorker = replenishSteps.attachToWorker as Step<ReplenishCtx>;

/** A first round on the live worker with `volumes` (each on its own worker when it names one). */
const round = (volumes: NonNullable<ReplenishCtx['volumes']>): ReplenishCtx => ({
  pool: 'web',
  az: 'us-east-1a',
  workerId: live,
  round: 1,
  again: false,
  volumes,
});

beforeEach(() => {
  ec2Mock.on(DescribeVolumesCommand).callsFake((input: { VolumeIds?: string[] }) => ({
    Volumes: [{ VolumeId: input.VolumeIds?.[0], State: 'available', Attachments: [] }],
  }));
  ec2Mock.on(DescribeInstancesCommand).callsFake((input: { InstanceIds?: string[] }) => {
    const id = input.InstanceIds?.[0];
    const state = id === gone ? 'terminated' : 'running';
    return {
      Reservations: [
        {
          Instances: [
            {
              InstanceId: id,
              InstanceType: 't4g.small',
              State: { Name: state },
              Placement: { AvailabilityZone: 'us-east-1a' },
              BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeId: 'vol-root' } }],
            },
          ],
        },
      ],
    };
  });
  ec2Mock.on(AttachVolumeCommand).resolves({ State: 'attaching' });
});

afterEach(() => {
  ec2Mock.reset();
});

describe('replenish AttachToWorker with a worker gone mid-round', () => {
  it("sets the gone worker's volumes aside for the next round and attaches the others", async () => {
    const ctx = round([
      { volumeId: 'vol-a', empty: true, workerId: gone },
      { volumeId: 'vol-b', empty: true, workerId: live },
      { volumeId: 'vol-c', empty: true, workerId: gone },
    ]);

    const out = await attachToWorker(ctx, deps());

    expect(out.volumes?.map((v) => v.volumeId)).toEqual(['vol-b']);
    expect(out.setAside).toBe(2);
    expect(out.again).toBe(true);
    const attaches = ec2Mock.commandCalls(AttachVolumeCommand).map((c) => c.args[0].input);
    expect(attaches).toHaveLength(1);
    expect(attaches[0]).toMatchObject({ VolumeId: 'vol-b', InstanceId: live });
  });

  it('attaches every volume and changes nothing else when the workers live', async () => {
    const ctx = round([
      { volumeId: 'vol-a', empty: true },
      { volumeId: 'vol-b', empty: true },
    ]);

    const out = await attachToWorker(ctx, deps());

    expect(out.volumes).toEqual(ctx.volumes);
    expect(out.setAside).toBeUndefined();
    expect(out.again).toBe(false);
    expect(ec2Mock.commandCalls(AttachVolumeCommand)).toHaveLength(2);
  });
});
