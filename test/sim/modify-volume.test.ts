import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DescribeVolumesCommand,
  DescribeVolumesModificationsCommand,
  ModifyVolumeCommand,
} from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import { modificationCooldownSeconds } from '../../sandbox/sim/modify.js';
import { type Harness, harness, rejection, runningInstance, untilConsistent } from './harness.js';

let h: Harness | undefined;

afterEach(async () => {
  await h?.dispose();
  h = undefined;
});

/**
 * A cloud whose modifications take known times: 20 s to optimizing (200 ms of wall time: room for the
 * calls a test makes meanwhile on a loaded machine), 100 s to completed.
 */
async function cloudWithVolume(size = 10, timeScale = 0.01): Promise<{ h: Harness; volumeId: string }> {
  h = await harness({
    timeScale,
    latency: { volumeModifying: [20, 20], volumeOptimizing: [100, 100] },
    gibBytes: 1 << 20,
  });
  const created = await h.ec2.send(
    new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: size, VolumeType: 'gp3' }),
  );
  const volumeId = created.VolumeId ?? '';
  await untilConsistent(h.cloud);
  await h.cloud.waitFor(
    () => h?.cloud.ec2.view().volumes.find((v) => v.volumeId === volumeId)?.state === 'available',
    60,
  );
  return { h, volumeId };
}

const modificationOf = async (harnessed: Harness, volumeId: string) =>
  (await harnessed.ec2.send(new DescribeVolumesModificationsCommand({ VolumeIds: [volumeId] })))
    .VolumesModifications ?? [];

describe('ModifyVolume', () => {
  it('goes modifying, optimizing, completed, and DescribeVolumes shows the new size from optimizing on', async () => {
    // Prepare
    const { h, volumeId } = await cloudWithVolume();
    const size = async () =>
      (await h.ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }))).Volumes?.[0]?.Size;
    // Act
    const out = await h.ec2.send(new ModifyVolumeCommand({ VolumeId: volumeId, Size: 30 }));
    const atCall = { state: out.VolumeModification?.ModificationState, size: await size() };
    await h.cloud.clock.sleep(21);
    const optimizing = {
      state: (await modificationOf(h, volumeId))[0]?.ModificationState,
      size: await size(),
    };
    await h.cloud.clock.sleep(100);
    const completed = (await modificationOf(h, volumeId))[0];
    // Assess
    expect(atCall).toEqual({ state: 'modifying', size: 10 });
    expect(optimizing).toEqual({ state: 'optimizing', size: 30 });
    expect(completed).toMatchObject({
      ModificationState: 'completed',
      OriginalSize: 10,
      TargetSize: 30,
      Progress: 100,
    });
    expect(completed?.EndTime).toBeInstanceOf(Date);
  });

  it('refuses a smaller size: a volume cannot shrink', async () => {
    // Prepare
    const { h, volumeId } = await cloudWithVolume(20);
    // Act
    const error = await rejection(h.ec2.send(new ModifyVolumeCommand({ VolumeId: volumeId, Size: 10 })));
    // Assess
    expect(error.name).toBe('InvalidParameterValue');
    expect(h.cloud.ec2.view().volumes.find((v) => v.volumeId === volumeId)?.size).toBe(20);
  });

  it('refuses a second modification while the first is optimizing: IncorrectModificationState', async () => {
    // Prepare
    const { h, volumeId } = await cloudWithVolume();
    await h.ec2.send(new ModifyVolumeCommand({ VolumeId: volumeId, Size: 20 }));
    await h.cloud.clock.sleep(21);
    // Act
    const error = await rejection(h.ec2.send(new ModifyVolumeCommand({ VolumeId: volumeId, Size: 40 })));
    // Assess
    expect(error.name).toBe('IncorrectModificationState');
    expect(error.message).toBe(`Volume ${volumeId} cannot be modified in modification state OPTIMIZING`);
  });

  it('refuses a second modification within 6 hours of the first, completed or not: VolumeModificationRateExceeded', async () => {
    // Prepare
    const { h, volumeId } = await cloudWithVolume();
    await h.ec2.send(new ModifyVolumeCommand({ VolumeId: volumeId, Size: 20 }));
    await h.cloud.clock.sleep(200);
    // Act
    const error = await rejection(h.ec2.send(new ModifyVolumeCommand({ VolumeId: volumeId, Size: 40 })));
    // Assess
    expect((await modificationOf(h, volumeId))[0]?.ModificationState).toBe('completed');
    expect(error.name).toBe('VolumeModificationRateExceeded');
    expect(error.message).toContain('Wait at least 6 hours between modifications per EBS volume');
  });

  it('accepts the next modification once 6 hours have passed, and lists both', async () => {
    // Prepare
    // 6 modelled hours in about a fifth of a second.
    const { h, volumeId } = await cloudWithVolume(10, 0.00001);
    await h.ec2.send(new ModifyVolumeCommand({ VolumeId: volumeId, Size: 20 }));
    await h.cloud.clock.sleep(modificationCooldownSeconds + 1);
    // Act
    const out = await h.ec2.send(new ModifyVolumeCommand({ VolumeId: volumeId, Size: 40 }));
    // Assess
    expect(out.VolumeModification).toMatchObject({
      OriginalSize: 20,
      TargetSize: 40,
      ModificationState: 'modifying',
    });
    expect((await modificationOf(h, volumeId)).map((m) => m.TargetSize)).toEqual([20, 40]);
  });

  it('shows the attached host the new size in /sys/block only once the modification is optimizing', async () => {
    // Prepare
    const { h, volumeId } = await cloudWithVolume();
    const instanceId = await runningInstance(h.cloud);
    await h.ec2.send(
      new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' }),
    );
    await h.cloud.waitFor(
      () =>
        h?.cloud.ec2.view().volumes.find((v) => v.volumeId === volumeId)?.attachment?.state === 'attached',
      60,
    );
    const device = h.cloud.ec2.devicesOf(instanceId).find((d) => d.volumeId === volumeId)?.device ?? '';
    const sectors = () =>
      Number(
        readFileSync(
          join(h.cloud.rootDir, 'hosts', instanceId, 'sys', 'block', device.slice(5), 'size'),
          'utf8',
        ),
      );
    const before = sectors();
    // Act
    await h.ec2.send(new ModifyVolumeCommand({ VolumeId: volumeId, Size: 30 }));
    const modifying = sectors();
    await h.cloud.clock.sleep(21);
    // Assess
    expect(before).toBe((10 * (1 << 20)) / 512);
    expect(modifying).toBe(before);
    expect(sectors()).toBe((30 * (1 << 20)) / 512);
  });

  it('filters modifications by state', async () => {
    // Prepare
    const { h, volumeId } = await cloudWithVolume();
    await h.ec2.send(new ModifyVolumeCommand({ VolumeId: volumeId, Size: 20 }));
    // Act
    const modifying = await h.ec2.send(
      new DescribeVolumesModificationsCommand({
        Filters: [{ Name: 'modification-state', Values: ['modifying'] }],
      }),
    );
    const completed = await h.ec2.send(
      new DescribeVolumesModificationsCommand({
        Filters: [{ Name: 'modification-state', Values: ['completed'] }],
      }),
    );
    // Assess
    expect(modifying.VolumesModifications?.map((m) => m.VolumeId)).toEqual([volumeId]);
    expect(completed.VolumesModifications).toEqual([]);
  });
});
