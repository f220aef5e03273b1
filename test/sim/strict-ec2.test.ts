import {
  AttachVolumeCommand,
  CreateSnapshotCommand,
  CreateVolumeCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
} from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultLatency, drawWithTail } from '../../sandbox/sim/latency.js';
import { Rng } from '../../sandbox/sim/rng.js';
import { type Harness, harness, rejection, runningInstance, untilConsistent } from './harness.js';

let h: Harness;

afterEach(async () => {
  await h?.dispose();
  h = undefined as unknown as Harness;
});

function volumeView(volumeId: string) {
  return h.cloud.snapshotState().volumes.find((v) => v.volumeId === volumeId);
}

async function createVolume(input: Partial<ConstructorParameters<typeof CreateVolumeCommand>[0]> = {}) {
  const out = await h.ec2.send(
    new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 10, VolumeType: 'gp3', ...input }),
  );
  return out.VolumeId ?? '';
}

async function availableVolume(): Promise<string> {
  const id = await createVolume();
  await h.cloud.waitFor(() => volumeView(id)?.state === 'available', 120, `${id} available`);
  return id;
}

async function attachAndWait(volumeId: string, instanceId: string, device: string) {
  await h.ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: device }));
  await h.cloud.waitFor(() => volumeView(volumeId)?.attachment?.state === 'attached', 600, 'attached');
}

function mappedVolumes(out: {
  Reservations?: { Instances?: { BlockDeviceMappings?: { Ebs?: { VolumeId?: string } }[] }[] }[];
}) {
  return (out.Reservations?.[0]?.Instances?.[0]?.BlockDeviceMappings ?? []).map((m) => m.Ebs?.VolumeId);
}

describe('rule eventualConsistency', () => {
  it('answers InvalidVolume.NotFound for a volume id right after CreateVolume, then knows it', async () => {
    h = await harness({ latency: { consistency: [60, 60] } });
    const volumeId = await createVolume();

    const early = await rejection(h.ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] })));
    await untilConsistent(h.cloud);
    const later = await h.ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));

    expect(early.name).toBe('InvalidVolume.NotFound');
    expect(early.message).toBe(`The volume '${volumeId}' does not exist.`);
    expect(later.Volumes?.[0]?.VolumeId).toBe(volumeId);
  });

  it('leaves a new volume out of filtered lists until it is known', async () => {
    h = await harness({ latency: { consistency: [60, 60] } });
    const volumeId = await createVolume();
    const byZone = new DescribeVolumesCommand({
      Filters: [{ Name: 'availability-zone', Values: ['us-east-1a'] }],
    });

    const early = await h.ec2.send(byZone);
    await untilConsistent(h.cloud);
    const later = await h.ec2.send(byZone);

    expect(early.Volumes?.map((v) => v.VolumeId)).not.toContain(volumeId);
    expect(later.Volumes?.map((v) => v.VolumeId)).toContain(volumeId);
  });

  it('answers InvalidSnapshot.NotFound for a snapshot id right after CreateSnapshot', async () => {
    h = await harness({ latency: { consistency: [60, 60] } });
    const volumeId = await availableVolume();
    await untilConsistent(h.cloud);
    const { SnapshotId } = await h.ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }));

    const error = await rejection(
      h.ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [SnapshotId ?? ''] })),
    );

    expect(error.name).toBe('InvalidSnapshot.NotFound');
    expect(error.message).toBe(`The snapshot '${SnapshotId}' does not exist.`);
  });

  it('answers InvalidInstanceID.NotFound for an instance right after launch', async () => {
    h = await harness({ latency: { consistency: [60, 60] } });
    const instanceId = h.cloud.launchInstance({ az: 'us-east-1a' });

    const error = await rejection(h.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] })));

    expect(error.name).toBe('InvalidInstanceID.NotFound');
    expect(error.message).toBe(`The instance ID '${instanceId}' does not exist`);
  });

  it('refuses a mutating call on an id it does not know yet', async () => {
    h = await harness({ latency: { consistency: [60, 60] } });
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await createVolume();

    const error = await rejection(
      h.ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' })),
    );

    expect(error.name).toBe('InvalidVolume.NotFound');
  });

  it('shows a new attachment in DescribeInstances block device mappings only after a lag', async () => {
    h = await harness({ latency: { consistency: [30, 30], attach: [1, 1] } });
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await availableVolume();
    await untilConsistent(h.cloud);
    await attachAndWait(volumeId, instanceId, '/dev/sdf');

    const volumes = await h.ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
    const instances = await h.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    await untilConsistent(h.cloud);
    const later = await h.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));

    expect(volumes.Volumes?.[0]?.Attachments?.[0]?.State).toBe('attached');
    expect(mappedVolumes(instances)).not.toContain(volumeId);
    expect(mappedVolumes(later)).toContain(volumeId);
  });

  it('keeps a detached volume in the block device mappings for a while', async () => {
    h = await harness({ latency: { consistency: [30, 30], attach: [1, 1], detach: [1, 1] } });
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await availableVolume();
    await untilConsistent(h.cloud);
    await attachAndWait(volumeId, instanceId, '/dev/sdf');
    await untilConsistent(h.cloud);
    await h.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId }));
    await h.cloud.waitFor(() => volumeView(volumeId)?.state === 'available', 600, 'detached');

    const stale = await h.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    await untilConsistent(h.cloud);
    const later = await h.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));

    expect(mappedVolumes(stale)).toContain(volumeId);
    expect(mappedVolumes(later)).not.toContain(volumeId);
  });

  it('is off only when switched off', async () => {
    h = await harness({ rules: { eventualConsistency: false } });
    const volumeId = await createVolume();

    const out = await h.ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));

    expect(out.Volumes?.[0]?.VolumeId).toBe(volumeId);
  });
});

describe('rule idempotencyMismatch', () => {
  it('answers IdempotentParameterMismatch for a client token reused with other parameters', async () => {
    h = await harness();
    await createVolume({ ClientToken: 'token-1', Size: 10 });

    const error = await rejection(createVolume({ ClientToken: 'token-1', Size: 20 }));

    expect(error.name).toBe('IdempotentParameterMismatch');
    expect(error.message).toBe(
      'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).',
    );
  });

  it('returns the same volume for the same token and parameters', async () => {
    h = await harness();
    const first = await createVolume({ ClientToken: 'token-2', Size: 10 });

    const again = await createVolume({ ClientToken: 'token-2', Size: 10 });

    expect(again).toBe(first);
  });
});

describe('rule attachRequiresRunning', () => {
  it('boots in order: running, then the OS, then the SSM agent', async () => {
    h = await harness();
    const events: string[] = [];
    h.cloud.ec2.onInstance((_id, event) => events.push(event));
    const instanceId = h.cloud.launchInstance({ az: 'us-east-1a' });

    await h.cloud.waitFor(() => h.cloud.ec2.agentOnline(instanceId), 600, 'agent');

    expect(events).toEqual(['running', 'os-ready', 'agent-online']);
  });
});

describe('rule attachTail', () => {
  it('gives attach durations a tail: the p99 is several times the median', async () => {
    const rng = new Rng(3);
    const draws = Array.from({ length: 4000 }, () =>
      drawWithTail(rng, defaultLatency.attach, defaultLatency.attachTail),
    );
    draws.sort((a, b) => a - b);
    const median = draws[2000] ?? 0;
    const p99 = draws[3960] ?? 0;

    expect(p99 / median).toBeGreaterThan(3);
    expect(draws[3999]).toBeGreaterThan(4);
  });

  it('leaves a force-detached device name unusable: an attach there stays attaching', async () => {
    h = await harness({ latency: { attach: [1, 1], detach: [1, 1] } });
    const instanceId = await runningInstance(h.cloud);
    const first = await availableVolume();
    const second = await availableVolume();
    await untilConsistent(h.cloud);
    await attachAndWait(first, instanceId, '/dev/sdf');
    await h.ec2.send(new DetachVolumeCommand({ VolumeId: first, Force: true }));
    await h.cloud.waitFor(() => volumeView(first)?.state === 'available', 600, 'detached');

    await h.ec2.send(
      new AttachVolumeCommand({ VolumeId: second, InstanceId: instanceId, Device: '/dev/sdf' }),
    );
    await h.cloud.clock.sleep(300);

    expect(volumeView(second)?.attachment?.state).toBe('attaching');
  });
});

describe('rule instanceTypeLimits', () => {
  it("limits an instance's attachments to its type's MaximumEbsAttachments, root included", async () => {
    h = await harness();
    const small = h.cloud.launchInstance({ az: 'us-east-1a', instanceType: 't4g.small' });
    const dedicated = h.cloud.launchInstance({ az: 'us-east-1a', instanceType: 'm7i.large' });

    const limits = Object.fromEntries(
      h.cloud.snapshotState().instances.map((i) => [i.instanceId, i.attachmentLimit]),
    );

    expect(limits[small]).toBe(27);
    expect(limits[dedicated]).toBe(32);
  });

  it('refuses to launch a type it has no EBS data for', async () => {
    h = await harness();

    expect(() => h.cloud.launchInstance({ az: 'us-east-1a', instanceType: 'x9.huge' })).toThrow(
      /no EBS data/,
    );
  });
});
