import { CreateVolumeCommand, DescribeVolumesCommand, DetachVolumeCommand } from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import {
  attachAtFreeDevice,
  attachVolume,
  candidateDevices,
  createPoolVolume,
  requireLiveInstance,
  requireVolume,
} from '../../lambdas/shared/ec2-ops.js';
import { type Harness, harness, rejection, runningInstance, untilConsistent } from '../sim/harness.js';

// The EC2 helpers the workflows use, against the simulator with its AWS-strict rules on: each rule
// that would fail a workflow is absorbed here (docs/sandbox.md, "AWS-strict rules").

let h: Harness;

afterEach(async () => {
  await h.dispose();
});

const spec = { VOLUME_SIZE_GIB: 10, VOLUME_TYPE: 'gp3' };

function volumeView(volumeId: string) {
  return h.cloud.snapshotState().volumes.find((v) => v.volumeId === volumeId);
}

async function availableVolume(): Promise<string> {
  const out = await h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 10 }));
  const id = out.VolumeId ?? '';
  await h.cloud.waitFor(() => volumeView(id)?.state === 'available', 600, `${id} available`);
  return id;
}

describe('attachRequiresRunning, as the workflows meet it', () => {
  it('turns an attach to a pending instance into InstanceNotReady, a wait', async () => {
    h = await harness();
    const volumeId = await availableVolume();
    const instanceId = h.cloud.launchInstance({ az: 'us-east-1a', bootSeconds: 1000 });
    await untilConsistent(h.cloud);

    const error = await rejection(attachVolume(h.ec2, volumeId, instanceId, '/dev/sdf'));

    expect(error.name).toBe('InstanceNotReady');
  });
});

describe('eventualConsistency, as the workflows meet it', () => {
  it('calls an instance EC2 does not know yet InstanceNotReady when it was just launched', async () => {
    h = await harness({ latency: { consistency: [60, 60] } });
    const instanceId = h.cloud.launchInstance({ az: 'us-east-1a' });

    const justLaunched = await rejection(requireLiveInstance(h.ec2, instanceId, { justLaunched: true }));
    const otherwise = await rejection(requireLiveInstance(h.ec2, instanceId));

    expect(justLaunched.name).toBe('InstanceNotReady');
    expect(otherwise.name).toBe('InstanceGone');
  });

  it('calls a volume EC2 does not know yet VolumeNotReady when it was just created', async () => {
    h = await harness({ latency: { consistency: [60, 60] } });
    const volumeId = await createPoolVolume(h.ec2, {
      pool: 'web',
      az: 'us-east-1a',
      clientToken: 't-1',
      spec,
    });

    const justCreated = await rejection(requireVolume(h.ec2, volumeId, { justCreated: true }));
    const otherwise = await rejection(requireVolume(h.ec2, volumeId));

    expect(justCreated.name).toBe('VolumeNotReady');
    expect(otherwise.name).toBe('VolumeNotFound');
  });

  it('never picks a device name an attach just took, while the instance mappings lag', async () => {
    h = await harness({ latency: { consistency: [60, 60], attach: [1, 1] } });
    const instanceId = await runningInstance(h.cloud);
    const first = await availableVolume();
    const second = await availableVolume();
    await untilConsistent(h.cloud);
    const instance = await requireLiveInstance(h.ec2, instanceId);

    const devices = [
      await attachAtFreeDevice(h.ec2, first, instance),
      await attachAtFreeDevice(h.ec2, second, instance),
    ];
    await h.cloud.waitFor(
      () => [first, second].every((v) => volumeView(v)?.attachment?.state === 'attached'),
      600,
      'both attached',
    );

    expect(new Set(devices).size).toBe(2);
  });
});

describe('attachTail, as the workflows meet it', () => {
  it('attaches at another name than the ones to avoid, and the attach completes', async () => {
    h = await harness({ latency: { attach: [1, 1], detach: [1, 1] } });
    const instanceId = await runningInstance(h.cloud);
    const first = await availableVolume();
    const second = await availableVolume();
    await untilConsistent(h.cloud);
    const atFirst = await attachAtFreeDevice(h.ec2, first, await requireLiveInstance(h.ec2, instanceId));
    await h.cloud.waitFor(() => volumeView(first)?.attachment?.state === 'attached', 600, 'attached');
    await h.ec2.send(new DetachVolumeCommand({ VolumeId: first, Force: true }));
    await h.cloud.waitFor(() => volumeView(first)?.state === 'available', 600, 'detached');
    await untilConsistent(h.cloud);

    const device = await attachAtFreeDevice(h.ec2, second, await requireLiveInstance(h.ec2, instanceId), [
      atFirst,
    ]);
    await h.cloud.waitFor(() => volumeView(second)?.attachment?.state === 'attached', 600, 'attached');

    expect(device).not.toBe(atFirst);
  });
});

describe('idempotencyMismatch, as the workflows meet it', () => {
  it('takes a new token when the old one was used with other parameters, and stays idempotent', async () => {
    h = await harness();
    const first = await createPoolVolume(h.ec2, { pool: 'web', az: 'us-east-1a', clientToken: 't-2', spec });
    const bigger = { ...spec, VOLUME_SIZE_GIB: 20 };

    const second = await createPoolVolume(h.ec2, {
      pool: 'web',
      az: 'us-east-1a',
      clientToken: 't-2',
      spec: bigger,
    });
    const again = await createPoolVolume(h.ec2, {
      pool: 'web',
      az: 'us-east-1a',
      clientToken: 't-2',
      spec: bigger,
    });
    await untilConsistent(h.cloud);
    const sizes = await h.ec2.send(new DescribeVolumesCommand({ VolumeIds: [first, second] }));

    expect(second).not.toBe(first);
    expect(again).toBe(second);
    expect(Object.fromEntries((sizes.Volumes ?? []).map((v) => [v.VolumeId, v.Size]))).toEqual({
      [first]: 10,
      [second]: 20,
    });
  });
});

describe('device names', () => {
  it('offer more names than a worker has data volumes, past those a forced detach spoiled', async () => {
    h = await harness({ latency: { attach: [1, 1] } });
    const instanceId = await runningInstance(h.cloud);
    const spoiled = candidateDevices.slice(0, 21);

    const volumeId = await availableVolume();
    await untilConsistent(h.cloud);
    const device = await attachAtFreeDevice(
      h.ec2,
      volumeId,
      await requireLiveInstance(h.ec2, instanceId),
      spoiled,
    );
    await h.cloud.waitFor(() => volumeView(volumeId)?.attachment?.state === 'attached', 600, 'attached');

    expect(candidateDevices.length).toBeGreaterThanOrEqual(26 + 21);
    expect(spoiled).not.toContain(device);
  });
});
