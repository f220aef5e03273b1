import { appendFileSync, existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AttachVolumeCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DeleteTagsCommand,
  DeleteVolumeCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  EC2ServiceException,
  ModifyInstanceAttributeCommand,
} from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Harness, harness, rejection, runningInstance, untilConsistent } from './harness.js';

let h: Harness;

beforeEach(async () => {
  h = await harness();
});

afterEach(async () => {
  await h.dispose();
});

function volumeState(volumeId: string) {
  return h.cloud.snapshotState().volumes.find((v) => v.volumeId === volumeId);
}

async function availableVolume(az = 'us-east-1a', tags: Record<string, string> = {}): Promise<string> {
  const out = await h.ec2.send(
    new CreateVolumeCommand({
      AvailabilityZone: az,
      Size: 10,
      VolumeType: 'gp3',
      TagSpecifications: [
        { ResourceType: 'volume', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
      ],
    }),
  );
  const id = out.VolumeId ?? '';
  await h.cloud.waitFor(() => volumeState(id)?.state === 'available', 120, `${id} available`);
  return id;
}

async function attached(volumeId: string, instanceId: string, device = '/dev/sdf'): Promise<void> {
  await h.ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: device }));
  await h.cloud.waitFor(
    () => volumeState(volumeId)?.attachment?.state === 'attached',
    120,
    `${volumeId} attached`,
  );
}

/** Writes a /proc/mounts line as the sandbox's mount shim would. */
function mount(instanceId: string, nvmeDevice: string, mountPoint = '/srv/www'): void {
  appendFileSync(
    join(h.cloud.hostRoot(instanceId), 'proc', 'mounts'),
    `${nvmeDevice} ${mountPoint} xfs rw 0 0\n`,
  );
}

function unmountAll(instanceId: string): void {
  writeFileSync(join(h.cloud.hostRoot(instanceId), 'proc', 'mounts'), '');
}

describe('CreateVolume', () => {
  it('answers creating with the SDK shape and becomes available later', async () => {
    const out = await h.ec2.send(
      new CreateVolumeCommand({
        AvailabilityZone: 'us-east-1b',
        Size: 20,
        VolumeType: 'gp3',
        Encrypted: true,
        TagSpecifications: [{ ResourceType: 'volume', Tags: [{ Key: 'volsd:pool', Value: 'web' }] }],
      }),
    );

    expect(out).toMatchObject({
      State: 'creating',
      AvailabilityZone: 'us-east-1b',
      Size: 20,
      VolumeType: 'gp3',
      Encrypted: true,
      Iops: 3000,
      Throughput: 125,
      Tags: [{ Key: 'volsd:pool', Value: 'web' }],
      $metadata: { httpStatusCode: 200, attempts: 1 },
    });
    expect(out.VolumeId).toMatch(/^vol-[0-9a-f]{17}$/);
    expect(out.CreateTime).toBeInstanceOf(Date);
    await h.cloud.waitFor(() => volumeState(out.VolumeId ?? '')?.state === 'available', 120);
  });

  it('creates an empty data directory for the volume', async () => {
    const id = await availableVolume();

    expect(existsSync(h.cloud.volumeDataDir(id))).toBe(true);
  });

  it('returns the same volume for a repeated ClientToken', async () => {
    const input = { AvailabilityZone: 'us-east-1a', Size: 5, ClientToken: 'token-1' };
    const first = await h.ec2.send(new CreateVolumeCommand(input));

    const second = await h.ec2.send(new CreateVolumeCommand(input));

    expect(second.VolumeId).toBe(first.VolumeId);
  });

  it('refuses an unknown availability zone', async () => {
    const error = await rejection(
      h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1z', Size: 5 })),
    );

    expect(error.name).toBe('InvalidParameterValue');
    expect(error.message).toBe('Invalid availability zone: [us-east-1z]');
  });
});

describe('AttachVolume', () => {
  it('moves attaching -> attached and shows the NVMe device on the host', async () => {
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await availableVolume();

    const out = await h.ec2.send(
      new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' }),
    );
    await h.cloud.waitFor(() => volumeState(volumeId)?.attachment?.state === 'attached', 120);

    expect(out).toMatchObject({
      State: 'attaching',
      Device: '/dev/sdf',
      InstanceId: instanceId,
      VolumeId: volumeId,
    });
    const host = h.cloud.hostRoot(instanceId);
    const serial = volumeId.replace('-', '');
    expect(readFileSync(join(host, 'dev', 'nvme1n1'), 'utf8')).toBe(h.cloud.volumeDataDir(volumeId));
    expect(
      readlinkSync(join(host, 'dev', 'disk', 'by-id', `nvme-Amazon_Elastic_Block_Store_${serial}`)),
    ).toBe('../../nvme1n1');
  });

  it('numbers NVMe devices in discovery order, reusing the lowest free number', async () => {
    const instanceId = await runningInstance(h.cloud);
    const [a, b, c] = [await availableVolume(), await availableVolume(), await availableVolume()];
    await attached(a, instanceId, '/dev/sdf');
    await attached(b, instanceId, '/dev/sdg');
    await h.ec2.send(new DetachVolumeCommand({ VolumeId: a }));
    await h.cloud.waitFor(() => volumeState(a)?.state === 'available', 120);

    await attached(c, instanceId, '/dev/sdh');

    expect(h.cloud.ec2.devicesOf(instanceId).map((d) => [d.device, d.volumeId])).toEqual([
      ['/dev/nvme1n1', c],
      ['/dev/nvme2n1', b],
    ]);
  });

  it('shows the volume in-use while attaching', async () => {
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await availableVolume();
    h.cloud.faults.once('stuckAttach', { volumeId });

    await h.ec2.send(
      new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' }),
    );
    const out = await h.ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));

    expect(out.Volumes?.[0]?.State).toBe('in-use');
    expect(out.Volumes?.[0]?.Attachments?.[0]?.State).toBe('attaching');
  });

  it('fails with InvalidVolume.ZoneMismatch across AZs', async () => {
    const instanceId = await runningInstance(h.cloud, 'us-east-1a');
    const volumeId = await availableVolume('us-east-1b');

    const error = await rejection(
      h.ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' })),
    );

    expect(error).toBeInstanceOf(EC2ServiceException);
    expect(error.name).toBe('InvalidVolume.ZoneMismatch');
    expect(error.message).toBe(
      `The volume '${volumeId}' is not in the same availability zone as instance '${instanceId}'`,
    );
    expect(error.$fault).toBe('client');
    expect(error.$metadata).toMatchObject({ httpStatusCode: 400, attempts: 1 });
  });

  it('fails with VolumeInUse for an attached volume', async () => {
    const [first, second] = [await runningInstance(h.cloud), await runningInstance(h.cloud)];
    const volumeId = await availableVolume();
    await attached(volumeId, first);

    const error = await rejection(
      h.ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: second, Device: '/dev/sdf' })),
    );

    expect(error.name).toBe('VolumeInUse');
  });

  it('fails with InvalidParameterValue when the device name is in use', async () => {
    const instanceId = await runningInstance(h.cloud);
    const [a, b] = [await availableVolume(), await availableVolume()];
    await attached(a, instanceId, '/dev/sdf');

    const error = await rejection(
      h.ec2.send(new AttachVolumeCommand({ VolumeId: b, InstanceId: instanceId, Device: '/dev/sdf' })),
    );

    expect(error.name).toBe('InvalidParameterValue');
    expect(error.message).toContain('/dev/sdf is already in use');
  });

  it('fails with AttachmentLimitExceeded past the limit (root volume included)', async () => {
    const instanceId = await runningInstance(h.cloud, 'us-east-1a', {}, 3);
    const [a, b, c] = [await availableVolume(), await availableVolume(), await availableVolume()];
    await attached(a, instanceId, '/dev/sdf');
    await attached(b, instanceId, '/dev/sdg');

    const error = await rejection(
      h.ec2.send(new AttachVolumeCommand({ VolumeId: c, InstanceId: instanceId, Device: '/dev/sdh' })),
    );

    expect(error.name).toBe('AttachmentLimitExceeded');
  });

  it('allows 26 data volumes with the default limit of 27 and refuses the 27th', async () => {
    const instanceId = await runningInstance(h.cloud);
    const devices = 'fghijklmnopqrstuvwxyz'
      .split('')
      .map((l) => `/dev/sd${l}`)
      .concat(['/dev/xvdba', '/dev/xvdbb', '/dev/xvdbc', '/dev/xvdbd', '/dev/xvdbe', '/dev/xvdbf']);
    const volumes: string[] = [];
    for (let n = 0; n < 27; n++) volumes.push(await availableVolume());
    for (let n = 0; n < 26; n++) {
      await h.ec2.send(
        new AttachVolumeCommand({ VolumeId: volumes[n], InstanceId: instanceId, Device: devices[n] }),
      );
    }

    const error = await rejection(
      h.ec2.send(
        new AttachVolumeCommand({ VolumeId: volumes[26], InstanceId: instanceId, Device: devices[26] }),
      ),
    );

    expect(error.name).toBe('AttachmentLimitExceeded');
  });

  it('fails with IncorrectState while the volume is creating', async () => {
    await h.dispose();
    h = await harness({ latency: { volumeCreate: [600, 600] } });
    const instanceId = await runningInstance(h.cloud);
    const out = await h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 5 }));
    await untilConsistent(h.cloud);

    const error = await rejection(
      h.ec2.send(
        new AttachVolumeCommand({ VolumeId: out.VolumeId, InstanceId: instanceId, Device: '/dev/sdf' }),
      ),
    );

    expect(error.name).toBe('IncorrectState');
  });

  it('fails with IncorrectInstanceState for a terminated instance', async () => {
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await availableVolume();
    h.cloud.terminateInstance(instanceId);

    const error = await rejection(
      h.ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' })),
    );

    expect(error.name).toBe('IncorrectInstanceState');
  });

  it("fails with IncorrectState, AWS's message, while the instance is pending", async () => {
    const volumeId = await availableVolume();
    const instanceId = h.cloud.launchInstance({ az: 'us-east-1a', bootSeconds: 1000 });
    await untilConsistent(h.cloud);

    const error = await rejection(
      h.ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' })),
    );

    expect(error.name).toBe('IncorrectState');
    expect(error.message).toBe(`Instance '${instanceId}' is not 'running'.`);
  });

  it('accepts a pending instance only with rule attachRequiresRunning off', async () => {
    await h.dispose();
    h = await harness({ rules: { attachRequiresRunning: false } });
    const volumeId = await availableVolume();
    const instanceId = h.cloud.launchInstance({ az: 'us-east-1a', bootSeconds: 1000 });
    await untilConsistent(h.cloud);

    const out = await h.ec2.send(
      new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' }),
    );

    expect(out.State).toBe('attaching');
  });

  it('fails with InvalidVolume.NotFound and InvalidInstanceID.NotFound for unknown ids', async () => {
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await availableVolume();

    const noVolume = await rejection(
      h.ec2.send(
        new AttachVolumeCommand({
          VolumeId: 'vol-00000000000000000',
          InstanceId: instanceId,
          Device: '/dev/sdf',
        }),
      ),
    );
    const noInstance = await rejection(
      h.ec2.send(
        new AttachVolumeCommand({
          VolumeId: volumeId,
          InstanceId: 'i-00000000000000000',
          Device: '/dev/sdf',
        }),
      ),
    );

    expect([noVolume.name, noInstance.name]).toEqual([
      'InvalidVolume.NotFound',
      'InvalidInstanceID.NotFound',
    ]);
  });

  it('sticks in attaching on a stuckAttach fault until force-detached', async () => {
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await availableVolume();
    h.cloud.faults.once('stuckAttach', { volumeId });
    await h.ec2.send(
      new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' }),
    );
    await h.cloud.clock.sleep(30);
    const stuck = volumeState(volumeId)?.attachment?.state;

    await h.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, Force: true }));
    await h.cloud.waitFor(() => volumeState(volumeId)?.state === 'available', 120);

    expect(stuck).toBe('attaching');
    expect(h.cloud.faults.counts().stuckAttach).toBe(1);
  });
});

describe('DetachVolume', () => {
  it('moves detaching -> available and removes the device files', async () => {
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await availableVolume();
    await attached(volumeId, instanceId);

    const out = await h.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId }));
    await h.cloud.waitFor(() => volumeState(volumeId)?.state === 'available', 120);

    expect(out.State).toBe('detaching');
    expect(existsSync(join(h.cloud.hostRoot(instanceId), 'dev', 'nvme1n1'))).toBe(false);
    expect(
      existsSync(
        join(
          h.cloud.hostRoot(instanceId),
          'dev',
          'disk',
          'by-id',
          `nvme-Amazon_Elastic_Block_Store_${volumeId.replace('-', '')}`,
        ),
      ),
    ).toBe(false);
  });

  it('fails with InvalidAttachment.NotFound for another instance', async () => {
    const [first, second] = [await runningInstance(h.cloud), await runningInstance(h.cloud)];
    const volumeId = await availableVolume();
    await attached(volumeId, first);

    const error = await rejection(
      h.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: second })),
    );

    expect(error.name).toBe('InvalidAttachment.NotFound');
  });

  it('fails with IncorrectState for an available volume', async () => {
    const volumeId = await availableVolume();

    const error = await rejection(h.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId })));

    expect(error.name).toBe('IncorrectState');
    expect(error.message).toBe(`Volume '${volumeId}' is in the 'available' state.`);
  });

  it('stays busy while the volume is mounted, then detaches once unmounted', async () => {
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await availableVolume();
    await attached(volumeId, instanceId);
    mount(instanceId, '/dev/nvme1n1');

    await h.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId }));
    await h.cloud.clock.sleep(30);
    const whileMounted = volumeState(volumeId)?.attachment?.state;
    unmountAll(instanceId);
    await h.cloud.waitFor(() => volumeState(volumeId)?.state === 'available', 120);

    expect(whileMounted).toBe('busy');
  });

  it('detaches a busy (mounted) volume when forced', async () => {
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await availableVolume();
    await attached(volumeId, instanceId);
    mount(instanceId, `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volumeId.replace('-', '')}`);
    await h.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId }));
    await h.cloud.waitFor(() => volumeState(volumeId)?.attachment?.state === 'busy', 120);

    await h.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, Force: true }));
    await h.cloud.waitFor(() => volumeState(volumeId)?.state === 'available', 120);

    expect(volumeState(volumeId)?.attachment).toBeUndefined();
  });

  it('sticks in detaching on a stuckDetach fault until forced', async () => {
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await availableVolume();
    await attached(volumeId, instanceId);
    h.cloud.faults.once('stuckDetach', { volumeId });
    await h.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId }));
    await h.cloud.clock.sleep(30);
    const stuck = volumeState(volumeId)?.attachment?.state;

    await h.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, Force: true }));
    await h.cloud.waitFor(() => volumeState(volumeId)?.state === 'available', 120);

    expect(stuck).toBe('detaching');
  });

  it('fails once with IncorrectState on an incorrectState fault, then works', async () => {
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await availableVolume();
    await attached(volumeId, instanceId);
    h.cloud.faults.once('incorrectState', { action: 'DetachVolume' });

    const error = await rejection(h.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId })));
    const retry = await h.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId }));

    expect(error.name).toBe('IncorrectState');
    expect(retry.State).toBe('detaching');
  });
});

describe('DeleteVolume', () => {
  it('fails with VolumeInUse while attached', async () => {
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await availableVolume();
    await attached(volumeId, instanceId);

    const error = await rejection(h.ec2.send(new DeleteVolumeCommand({ VolumeId: volumeId })));

    expect(error.name).toBe('VolumeInUse');
  });

  it('deletes an available volume: deleting, then not found, data removed', async () => {
    await h.dispose();
    h = await harness({ latency: { volumeDelete: [100, 100] } });
    const volumeId = await availableVolume();

    await h.ec2.send(new DeleteVolumeCommand({ VolumeId: volumeId }));
    const during = volumeState(volumeId)?.state;
    await h.cloud.waitFor(() => volumeState(volumeId) === undefined, 120);
    const error = await rejection(h.ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] })));
    await h.cloud.close();

    expect(during).toBe('deleting');
    expect(error.name).toBe('InvalidVolume.NotFound');
    expect(existsSync(h.cloud.volumeDataDir(volumeId))).toBe(false);
  });
});

describe('DescribeVolumes', () => {
  it('filters by tag, status, AZ and attachment instance', async () => {
    const instanceId = await runningInstance(h.cloud);
    const pooled = await availableVolume('us-east-1a', { 'volsd:pool': 'web' });
    await availableVolume('us-east-1b', { 'volsd:pool': 'web' });
    await availableVolume('us-east-1a', { 'volsd:pool': 'other' });
    const attachedOne = await availableVolume('us-east-1a', { 'volsd:pool': 'web' });
    await attached(attachedOne, instanceId);

    const out = await h.ec2.send(
      new DescribeVolumesCommand({
        Filters: [
          { Name: 'tag:volsd:pool', Values: ['web'] },
          { Name: 'status', Values: ['available'] },
          { Name: 'availability-zone', Values: ['us-east-1a'] },
        ],
      }),
    );
    const byInstance = await h.ec2.send(
      new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: [instanceId] }] }),
    );

    expect(out.Volumes?.map((v) => v.VolumeId)).toEqual([pooled]);
    // The root volume is attached too, as on EC2.
    expect(byInstance.Volumes?.map((v) => v.VolumeId)).toContain(attachedOne);
    expect(byInstance.Volumes).toHaveLength(2);
  });

  it('supports wildcards in filter values', async () => {
    const id = await availableVolume('us-east-1a', { Name: 'volsd-web-1' });

    const out = await h.ec2.send(
      new DescribeVolumesCommand({ Filters: [{ Name: 'tag:Name', Values: ['volsd-*'] }] }),
    );

    expect(out.Volumes?.map((v) => v.VolumeId)).toEqual([id]);
  });

  it('pages with MaxResults and NextToken', async () => {
    for (let n = 0; n < 7; n++) await availableVolume('us-east-1c', { page: 'yes' });
    const filter = [{ Name: 'tag:page', Values: ['yes'] }];

    const first = await h.ec2.send(new DescribeVolumesCommand({ Filters: filter, MaxResults: 5 }));
    const second = await h.ec2.send(
      new DescribeVolumesCommand({ Filters: filter, MaxResults: 5, NextToken: first.NextToken }),
    );

    expect(first.Volumes).toHaveLength(5);
    expect(second.Volumes).toHaveLength(2);
    expect(second.NextToken).toBeUndefined();
  });

  it('refuses an unknown filter name', async () => {
    const error = await rejection(
      h.ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'colour', Values: ['x'] }] })),
    );

    expect(error.name).toBe('InvalidParameterValue');
  });
});

describe('tags and attributes', () => {
  it('adds and removes tags with CreateTags and DeleteTags', async () => {
    const volumeId = await availableVolume();

    await h.ec2.send(
      new CreateTagsCommand({
        Resources: [volumeId],
        Tags: [
          { Key: 'a', Value: '1' },
          { Key: 'b', Value: '2' },
        ],
      }),
    );
    await h.ec2.send(
      new DeleteTagsCommand({ Resources: [volumeId], Tags: [{ Key: 'a' }, { Key: 'b', Value: 'not-2' }] }),
    );

    expect(volumeState(volumeId)?.tags).toEqual({ b: '2' });
  });

  it('sets DeleteOnTermination with ModifyInstanceAttribute', async () => {
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await availableVolume();
    await attached(volumeId, instanceId, '/dev/sdf');

    await h.ec2.send(
      new ModifyInstanceAttributeCommand({
        InstanceId: instanceId,
        BlockDeviceMappings: [{ DeviceName: '/dev/sdf', Ebs: { DeleteOnTermination: true } }],
      }),
    );

    expect(volumeState(volumeId)?.attachment?.deleteOnTermination).toBe(true);
  });
});
