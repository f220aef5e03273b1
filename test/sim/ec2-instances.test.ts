import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypesCommand,
  ModifyInstanceAttributeCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Harness, harness, rejection, runningInstance } from './harness.js';

let h: Harness;

beforeEach(async () => {
  h = await harness();
});

afterEach(async () => {
  await h.dispose();
});

function volume(volumeId: string) {
  return h.cloud.snapshotState().volumes.find((v) => v.volumeId === volumeId);
}

async function attachedVolume(instanceId: string, device: string): Promise<string> {
  const out = await h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 4 }));
  const id = out.VolumeId ?? '';
  await h.cloud.waitFor(() => volume(id)?.state === 'available', 120);
  await h.ec2.send(new AttachVolumeCommand({ VolumeId: id, InstanceId: instanceId, Device: device }));
  await h.cloud.waitFor(() => volume(id)?.attachment?.state === 'attached', 120);
  return id;
}

describe('instances', () => {
  it('boot pending -> running, then register their SSM agent', async () => {
    const id = h.cloud.launchInstance({ az: 'us-east-1a', bootSeconds: 30 });
    const first = h.cloud.ec2.instanceState(id);

    await h.cloud.waitFor(() => h.cloud.ec2.agentOnline(id), 200);

    expect(first).toBe('pending');
    expect(h.cloud.ec2.instanceState(id)).toBe('running');
  });

  it('DescribeInstances answers the SDK shape with placement, state, tags and block devices', async () => {
    const id = await runningInstance(h.cloud, 'us-east-1b', { 'volsd:pool': 'web' });

    const out = await h.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));

    const instance = out.Reservations?.[0]?.Instances?.[0];
    expect(instance).toMatchObject({
      InstanceId: id,
      Placement: { AvailabilityZone: 'us-east-1b' },
      State: { Code: 16, Name: 'running' },
      Tags: [{ Key: 'volsd:pool', Value: 'web' }],
      RootDeviceName: '/dev/xvda',
      BlockDeviceMappings: [
        { DeviceName: '/dev/xvda', Ebs: { Status: 'attached', DeleteOnTermination: true } },
      ],
    });
    expect(instance?.LaunchTime).toBeInstanceOf(Date);
  });

  it('DescribeInstances filters by tag, state and AZ', async () => {
    const tagged = await runningInstance(h.cloud, 'us-east-1a', { role: 'web' });
    await runningInstance(h.cloud, 'us-east-1b', { role: 'web' });
    await runningInstance(h.cloud, 'us-east-1a', { role: 'db' });

    const out = await h.ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: 'tag:role', Values: ['web'] },
          { Name: 'instance-state-name', Values: ['running', 'pending'] },
          { Name: 'availability-zone', Values: ['us-east-1a'] },
        ],
      }),
    );

    expect(out.Reservations?.flatMap((r) => r.Instances?.map((i) => i.InstanceId))).toEqual([tagged]);
  });

  it('DescribeInstances fails with InvalidInstanceID.NotFound for an unknown id', async () => {
    const error = await rejection(
      h.ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-0123456789abcdef0'] })),
    );

    expect(error.name).toBe('InvalidInstanceID.NotFound');
    expect(error.message).toBe("The instance ID 'i-0123456789abcdef0' does not exist");
  });

  it("DescribeInstanceTypes reports NVMe and each type's real EBS attachment limit", async () => {
    const out = await h.ec2.send(
      new DescribeInstanceTypesCommand({ InstanceTypes: ['m7g.large', 'm7i.large'] }),
    );

    const byType = Object.fromEntries((out.InstanceTypes ?? []).map((t) => [t.InstanceType, t.EbsInfo]));
    expect(byType['m7g.large']).toMatchObject({
      NvmeSupport: 'required',
      MaximumEbsAttachments: 27,
      AttachmentLimitType: 'shared',
    });
    expect(byType['m7i.large']).toMatchObject({
      MaximumEbsAttachments: 32,
      AttachmentLimitType: 'dedicated',
    });
  });

  it('DescribeInstanceTypes fails with InvalidInstanceType for an unknown type', async () => {
    const error = await rejection(
      h.ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: ['x9.huge' as 'm7g.large'] })),
    );

    expect(error.name).toBe('InvalidInstanceType');
  });
});

describe('termination', () => {
  it('deletes DeleteOnTermination volumes and detaches the others', async () => {
    const id = await runningInstance(h.cloud);
    const kept = await attachedVolume(id, '/dev/sdf');
    const doomed = await attachedVolume(id, '/dev/sdg');
    await h.ec2.send(
      new ModifyInstanceAttributeCommand({
        InstanceId: id,
        BlockDeviceMappings: [{ DeviceName: '/dev/sdg', Ebs: { DeleteOnTermination: true } }],
      }),
    );
    const root = h.cloud.snapshotState().instances.find((i) => i.instanceId === id)?.rootVolumeId ?? '';

    const out = await h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    await h.cloud.waitFor(() => h.cloud.ec2.instanceState(id) === 'terminated', 200);
    await h.cloud.waitFor(() => volume(doomed) === undefined && volume(root) === undefined, 200);

    expect(out.TerminatingInstances?.[0]).toMatchObject({
      InstanceId: id,
      PreviousState: { Name: 'running' },
      CurrentState: { Name: 'shutting-down' },
    });
    expect(volume(kept)).toMatchObject({ state: 'available' });
    expect(volume(kept)?.attachment).toBeUndefined();
    expect(h.cloud.ec2.devicesOf(id)).toEqual([]);
  });

  it('keeps a terminated instance visible as terminated', async () => {
    const id = await runningInstance(h.cloud);
    h.cloud.terminateInstance(id);
    await h.cloud.waitFor(() => h.cloud.ec2.instanceState(id) === 'terminated', 200);

    const out = await h.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));

    expect(out.Reservations?.[0]?.Instances?.[0]?.State).toEqual({ Code: 48, Name: 'terminated' });
  });

  it('terminates the instance right after an attach on a terminateOnAttach fault', async () => {
    const id = await runningInstance(h.cloud);
    const out = await h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 4 }));
    const volumeId = out.VolumeId ?? '';
    await h.cloud.waitFor(() => volume(volumeId)?.state === 'available', 120);
    h.cloud.faults.once('terminateOnAttach', { instanceId: id });

    const attach = await h.ec2.send(
      new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: id, Device: '/dev/sdf' }),
    );
    await h.cloud.waitFor(() => h.cloud.ec2.instanceState(id) === 'terminated', 200);

    expect(attach.State).toBe('attaching');
    expect(volume(volumeId)?.state).toBe('available');
    expect(h.cloud.faults.counts().terminateOnAttach).toBe(1);
  });
});
