import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DeleteVolumeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  type EC2Client,
  type Instance,
  ModifyInstanceAttributeCommand,
  type Volume,
  type VolumeType,
} from '@aws-sdk/client-ec2';
import { InstanceGone, NoFreeDevice, VolumeNotFound, VolumeNotReady } from './errors.js';
import { poolTag, Role, roleTag } from './tags.js';

/** Device names Volsd attaches at: the range AWS recommends for EBS data volumes, then the rest. */
export const candidateDevices: readonly string[] = [
  ...'fghijklmnop'.split('').map((c) => `/dev/sd${c}`),
  ...'qrstuvwxyz'.split('').map((c) => `/dev/sd${c}`),
];

const errorName = (err: unknown) => (err instanceof Error ? err.name : '');

/** The EC2 view of a volume, or undefined when EC2 no longer knows it. */
export async function describeVolume(ec2: EC2Client, volumeId: string): Promise<Volume | undefined> {
  try {
    const out = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
    const volume = out.Volumes?.[0];
    return volume && volume.State !== 'deleted' ? volume : undefined;
  } catch (err) {
    if (errorName(err) === 'InvalidVolume.NotFound') return undefined;
    throw err;
  }
}

/** Like describeVolume, but a missing volume is VolumeNotFound. */
export async function requireVolume(ec2: EC2Client, volumeId: string): Promise<Volume> {
  const volume = await describeVolume(ec2, volumeId);
  if (!volume) throw new VolumeNotFound(`EC2 has no volume ${volumeId}`);
  return volume;
}

/** The volume's current attachment (there is at most one for a non-multi-attach volume). */
export function attachmentOf(volume: Volume) {
  return volume.Attachments?.find((a) => a.State !== 'detached');
}

/** The instance as EC2 sees it; InstanceGone when it is terminated, shutting down or unknown. */
export async function requireLiveInstance(ec2: EC2Client, instanceId: string): Promise<Instance> {
  let instance: Instance | undefined;
  try {
    const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    instance = out.Reservations?.[0]?.Instances?.[0];
  } catch (err) {
    if (errorName(err) !== 'InvalidInstanceID.NotFound') throw err;
  }
  const state = instance?.State?.Name;
  if (
    !instance ||
    state === 'terminated' ||
    state === 'shutting-down' ||
    state === 'stopping' ||
    state === 'stopped'
  ) {
    throw new InstanceGone(`instance ${instanceId} is ${state ?? 'unknown to EC2'}`);
  }
  return instance;
}

/** The first candidate device name that the instance does not use. */
export function freeDevice(instance: Instance): string {
  const used = new Set((instance.BlockDeviceMappings ?? []).map((m) => m.DeviceName));
  const device = candidateDevices.find((d) => !used.has(d));
  if (!device) throw new NoFreeDevice(`instance ${instance.InstanceId} has no free device name`);
  return device;
}

/** Requests an attach; maps the instance's disappearance to InstanceGone. */
export async function attachVolume(ec2: EC2Client, volumeId: string, instanceId: string, device: string) {
  try {
    await ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: device }));
  } catch (err) {
    const name = errorName(err);
    if (name === 'IncorrectInstanceState' || name === 'InvalidInstanceID.NotFound') {
      throw new InstanceGone(`cannot attach ${volumeId}: instance ${instanceId} is not running`, {
        cause: err,
      });
    }
    if (name === 'AttachmentLimitExceeded') {
      throw new NoFreeDevice(`instance ${instanceId} reached its attachment limit`, { cause: err });
    }
    throw err;
  }
}

/** Requests a detach unless the volume is already detached or detaching from that instance. */
export async function detachVolume(ec2: EC2Client, volume: Volume, options: { force?: boolean } = {}) {
  const attachment = attachmentOf(volume);
  if (!attachment) return;
  if (attachment.State === 'detaching' && !options.force) return;
  try {
    await ec2.send(
      new DetachVolumeCommand({
        VolumeId: volume.VolumeId,
        InstanceId: attachment.InstanceId,
        Force: options.force ?? false,
      }),
    );
  } catch (err) {
    // Detached meanwhile (or the instance went away with it): nothing left to detach.
    if (errorName(err) === 'InvalidAttachment.NotFound' || errorName(err) === 'InvalidVolume.NotFound')
      return;
    throw err;
  }
}

/** Deletes a volume; a volume that is already gone is fine. */
export async function deleteVolume(ec2: EC2Client, volumeId: string) {
  try {
    await ec2.send(new DeleteVolumeCommand({ VolumeId: volumeId }));
  } catch (err) {
    if (errorName(err) === 'InvalidVolume.NotFound') return;
    throw err;
  }
}

/** Marks the attachment DeleteOnTermination, so a volume never outlives its instance unnoticed. */
export async function setDeleteOnTermination(ec2: EC2Client, instanceId: string, device: string) {
  try {
    await ec2.send(
      new ModifyInstanceAttributeCommand({
        InstanceId: instanceId,
        BlockDeviceMappings: [{ DeviceName: device, Ebs: { DeleteOnTermination: true } }],
      }),
    );
  } catch (err) {
    if (errorName(err) === 'InvalidInstanceID.NotFound' || errorName(err) === 'IncorrectInstanceState') {
      throw new InstanceGone(`instance ${instanceId} went away`, { cause: err });
    }
    throw err;
  }
}

/** The volume spec of the pool (the workflow configuration's VOLUME_* and KMS_KEY_ID). */
export interface VolumeSpec {
  VOLUME_SIZE_GIB: number;
  VOLUME_TYPE: string;
  VOLUME_IOPS?: number | undefined;
  VOLUME_THROUGHPUT?: number | undefined;
  KMS_KEY_ID?: string | undefined;
}

/**
 * Creates one encrypted pool volume in `az`, from `snapshotId` when given (else empty, of the pool's
 * size), tagged with the pool and the volume role at creation (the IAM policy requires both). The
 * client token makes a retried call return the volume it already created, not a second one.
 */
export async function createPoolVolume(
  ec2: EC2Client,
  input: { pool: string; az: string; snapshotId?: string | undefined; clientToken: string; spec: VolumeSpec },
): Promise<string> {
  const { spec } = input;
  const created = await ec2.send(
    new CreateVolumeCommand({
      AvailabilityZone: input.az,
      Size: input.snapshotId ? undefined : spec.VOLUME_SIZE_GIB,
      SnapshotId: input.snapshotId,
      VolumeType: spec.VOLUME_TYPE as VolumeType,
      Iops: spec.VOLUME_IOPS,
      Throughput: spec.VOLUME_THROUGHPUT,
      Encrypted: true,
      KmsKeyId: spec.KMS_KEY_ID,
      ClientToken: input.clientToken.slice(-64),
      TagSpecifications: [
        {
          ResourceType: 'volume',
          Tags: [
            { Key: poolTag, Value: input.pool },
            { Key: roleTag, Value: Role.Volume },
            { Key: 'Name', Value: `volsd-${input.pool}` },
          ],
        },
      ],
    }),
  );
  if (!created.VolumeId) throw new VolumeNotReady('CreateVolume returned no volume id');
  return created.VolumeId;
}
