import { createHash } from 'node:crypto';
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
import { InstanceGone, InstanceNotReady, NoFreeDevice, VolumeNotFound, VolumeNotReady } from './errors.js';
import { logger } from './logger.js';
import { poolTag, Role, roleTag } from './tags.js';

/**
 * Device names Volsd attaches at: the range AWS recommends for EBS data volumes, then the rest of
 * `/dev/sd[f-z]`, then `/dev/xvd[b-c][a-z]` (EC2 User Guide, "Device names on Linux instances": available
 * for HVM). 73 names: more than the 26 data volumes a Nitro worker holds, with room for names a forced
 * detach left unusable. On Nitro the name is only a label; the scripts find a device by its NVMe serial.
 */
export const candidateDevices: readonly string[] = [
  ...'fghijklmnop'.split('').map((c) => `/dev/sd${c}`),
  ...'qrstuvwxyz'.split('').map((c) => `/dev/sd${c}`),
  ...['b', 'c'].flatMap((x) => 'abcdefghijklmnopqrstuvwxyz'.split('').map((c) => `/dev/xvd${x}${c}`)),
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

/**
 * Like describeVolume, but a missing volume is VolumeNotFound; or, with `justCreated` (a volume this
 * workflow created moments ago), VolumeNotReady: EC2 reads are eventually consistent, and a new id may
 * be unknown to DescribeVolumes for a while ("Eventual consistency in the Amazon EC2 API").
 */
export async function requireVolume(
  ec2: EC2Client,
  volumeId: string,
  options: { justCreated?: boolean } = {},
): Promise<Volume> {
  const volume = await describeVolume(ec2, volumeId);
  if (!volume && options.justCreated) throw new VolumeNotReady(`volume ${volumeId} is not visible yet`);
  if (!volume) throw new VolumeNotFound(`EC2 has no volume ${volumeId}`);
  return volume;
}

/** The volume's current attachment (there is at most one for a non-multi-attach volume). */
export function attachmentOf(volume: Volume) {
  return volume.Attachments?.find((a) => a.State !== 'detached');
}

/**
 * The instance as EC2 sees it; InstanceGone when it is terminated, shutting down or unknown. With
 * `justLaunched` (a lifecycle event about it arrived moments ago), an id EC2 does not know yet is
 * InstanceNotReady: DescribeInstances is eventually consistent right after launch (EC2 error codes,
 * InvalidInstanceID.NotFound), so the caller polls a bounded time before calling it gone.
 */
export async function requireLiveInstance(
  ec2: EC2Client,
  instanceId: string,
  options: { justLaunched?: boolean } = {},
): Promise<Instance> {
  let instance: Instance | undefined;
  try {
    const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    instance = out.Reservations?.[0]?.Instances?.[0];
  } catch (err) {
    if (errorName(err) !== 'InvalidInstanceID.NotFound') throw err;
    if (options.justLaunched) {
      throw new InstanceNotReady(`instance ${instanceId} is not known to EC2 yet`, { cause: err });
    }
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

/** The device names of the instance's block device mappings, as DescribeInstances gave them. */
export function mappedDevices(instance: Instance): string[] {
  return (instance.BlockDeviceMappings ?? []).flatMap((m) => (m.DeviceName ? [m.DeviceName] : []));
}

/** The first candidate device name not in `taken` (names in use on the instance, or to avoid). */
function freeDevice(instanceId: string | undefined, taken: ReadonlySet<string>): string {
  const device = candidateDevices.find((d) => !taken.has(d));
  if (!device) throw new NoFreeDevice(`instance ${instanceId} has no free device name`);
  return device;
}

/**
 * Device names in use on the instance: its block device mappings and the attachments DescribeVolumes
 * reports. The two are eventually consistent with each other (aws-ebs-csi-driver PR #2183: right after
 * an attach the instance's mappings may not list it yet), so a choice made from one alone can collide.
 */
export async function devicesInUse(ec2: EC2Client, instance: Instance): Promise<Set<string>> {
  return (await attachmentsOn(ec2, instance)).devices;
}

/**
 * {@link devicesInUse}, and the volumes DescribeVolumes lists as attached to the instance, by id with
 * their device: the same one call tells an attach that its volume is there already.
 */
export async function attachmentsOn(
  ec2: EC2Client,
  instance: Instance,
): Promise<{ devices: Set<string>; volumes: Map<string, string> }> {
  const used = new Set(mappedDevices(instance));
  const volumes = new Map<string, string>();
  let nextToken: string | undefined;
  do {
    const out = await ec2.send(
      new DescribeVolumesCommand({
        Filters: [{ Name: 'attachment.instance-id', Values: [instance.InstanceId ?? ''] }],
        NextToken: nextToken,
      }),
    );
    for (const v of out.Volumes ?? []) {
      for (const a of v.Attachments ?? []) {
        if (a.InstanceId !== instance.InstanceId || !a.Device) continue;
        used.add(a.Device);
        if (v.VolumeId && a.State !== 'detached' && a.State !== 'detaching')
          volumes.set(v.VolumeId, a.Device);
      }
    }
    nextToken = out.NextToken;
  } while (nextToken);
  return { devices: used, volumes };
}

/** How many device names one attach tries when EC2 says the chosen one is in use. */
const deviceTries = 3;

/**
 * Attaches at the first device name free on the instance (per {@link devicesInUse}, less `avoid`);
 * when EC2 answers that the name is in use (a mapping it had not shown yet), tries the next one.
 * Returns the device the attach was accepted at. `inUse`: the names {@link devicesInUse} gave, when
 * the caller has them already.
 */
export async function attachAtFreeDevice(
  ec2: EC2Client,
  volumeId: string,
  instance: Instance,
  avoid: Iterable<string> = [],
  inUse?: ReadonlySet<string>,
): Promise<string> {
  const skip = new Set([...(inUse ?? (await devicesInUse(ec2, instance))), ...avoid]);
  for (let tries = 1; ; tries++) {
    const device = freeDevice(instance.InstanceId, skip);
    try {
      await attachVolume(ec2, volumeId, instance.InstanceId ?? '', device);
      return device;
    } catch (err) {
      if (
        !(errorName(err) === 'InvalidParameterValue' && /in use/i.test(messageOf(err))) ||
        tries >= deviceTries
      )
        throw err;
      logger.info('device name in use on the instance, trying another', { volumeId, device });
      skip.add(device);
    }
  }
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Requests an attach; maps the instance's disappearance to InstanceGone. */
export async function attachVolume(ec2: EC2Client, volumeId: string, instanceId: string, device: string) {
  try {
    await ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: device }));
  } catch (err) {
    const name = errorName(err);
    // AWS refuses an attach while the instance is pending ("Instance 'i-...' is not 'running'."):
    // it will run in seconds, so this is a wait, not a failure.
    if (name === 'IncorrectState' && /is not 'running'/.test(messageOf(err))) {
      throw new InstanceNotReady(`cannot attach ${volumeId} yet: instance ${instanceId} is pending`, {
        cause: err,
      });
    }
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

/**
 * Detaches `volumeId` from `instanceId` without describing it first (the caller knows where it is).
 * True when EC2 accepted the detach; false when the volume is not attached there as EC2 can detach it
 * (detached already, attaching, elsewhere): the caller then describes it and decides.
 */
export async function detachFromInstance(ec2: EC2Client, volumeId: string, instanceId: string) {
  try {
    await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId }));
    return true;
  } catch (err) {
    const name = errorName(err);
    if (name === 'IncorrectState' || name === 'InvalidAttachment.NotFound') return false;
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

/**
 * Tag of a volume Volsd created: the random nonce of the creation record written to the table before
 * CreateVolume. Reconcile takes it as proof only while that record is open and bound to no volume, for
 * the one volume carrying it, created after the record (docs/decisions.md, "Volume provenance").
 */
export const creationTag = 'volsd:creation';

/** Where creations are recorded: the volume table (VolumeRepository). */
export interface CreationLedger {
  openCreation(input: { pool: string; az: string; key: string }): Promise<{ nonce: string }>;
  bindCreation(pool: string, key: string, volumeId: string): Promise<boolean>;
  /** The pool's grown volume size (GiB), when growth raised it (`growth.ts`); new volumes take it. */
  grownVolumeSizeGiB?(pool: string): Promise<number | undefined>;
}

/** The creation record's key for a client token: fixed length, the table's key alphabet. */
export const creationKey = (clientToken: string) =>
  createHash('sha256').update(clientToken).digest('hex').slice(0, 40);

/**
 * Creates a pool volume with its provenance: the creation is recorded in the table BEFORE CreateVolume
 * (a crash after CreateVolume then leaves a record reconcile can match the volume to by its tag), and
 * the volume id is bound to the record right after (from then on the id proves it). Only a volume so
 * recorded is ever adopted, wiped or deleted by reconcile; a volume anyone else tags with the pool is
 * not. Idempotent per client token, like createPoolVolume.
 */
export async function createRecordedVolume(
  ec2: EC2Client,
  ledger: CreationLedger,
  input: { pool: string; az: string; snapshotId?: string | undefined; clientToken: string; spec: VolumeSpec },
): Promise<string> {
  const key = creationKey(input.clientToken);
  const { nonce } = await ledger.openCreation({ pool: input.pool, az: input.az, key });
  // A pool that grew creates its volumes at the grown size, from a snapshot too (its file system is
  // grown by the first Volsd-Sync); never below the configured size.
  const grown = await ledger.grownVolumeSizeGiB?.(input.pool);
  const sizeGiB = grown !== undefined && grown > input.spec.VOLUME_SIZE_GIB ? grown : undefined;
  const volumeId = await createPoolVolume(ec2, {
    ...input,
    creation: nonce,
    ...(sizeGiB ? { sizeGiB } : {}),
  });
  if (!(await ledger.bindCreation(input.pool, key, volumeId)))
    logger.warn('creation record already names another volume', { volumeId, key });
  return volumeId;
}

/** The volume spec of the pool (the workflow configuration's VOLUME_* and KMS_KEY_ID). */
export interface VolumeSpec {
  VOLUME_SIZE_GIB: number;
  VOLUME_TYPE: string;
  VOLUME_IOPS?: number | undefined;
  VOLUME_THROUGHPUT?: number | undefined;
  KMS_KEY_ID?: string | undefined;
  /** `provisioned-rate`: snapshot-born volumes get VolumeInitializationRate = INITIALIZATION_RATE. */
  INITIALIZATION?: 'provisioned-rate' | 'default-rate' | undefined;
  INITIALIZATION_RATE?: number | undefined;
}

/**
 * Creates one encrypted pool volume in `az`, from `snapshotId` when given (else empty, of the pool's
 * size), tagged with the pool and the volume role at creation (the IAM policy requires both). The
 * client token makes a retried call return the volume it already created, not a second one.
 */
export async function createPoolVolume(
  ec2: EC2Client,
  input: {
    pool: string;
    az: string;
    snapshotId?: string | undefined;
    clientToken: string;
    spec: VolumeSpec;
    /** The nonce of the creation's record, tagged as `volsd:creation` (see createRecordedVolume). */
    creation?: string | undefined;
    /** Size in GiB, from a snapshot too (the pool grew). @default the spec's size, or the snapshot's */
    sizeGiB?: number | undefined;
  },
): Promise<string> {
  const { spec } = input;
  const request = {
    AvailabilityZone: input.az,
    Size: input.sizeGiB ?? (input.snapshotId ? undefined : spec.VOLUME_SIZE_GIB),
    SnapshotId: input.snapshotId,
    VolumeType: spec.VOLUME_TYPE as VolumeType,
    Iops: spec.VOLUME_IOPS,
    Throughput: spec.VOLUME_THROUGHPUT,
    Encrypted: true,
    KmsKeyId: spec.KMS_KEY_ID,
    // Only with a snapshot: CreateVolume refuses the rate for an empty volume (which needs none).
    VolumeInitializationRate:
      input.snapshotId && spec.INITIALIZATION === 'provisioned-rate' ? spec.INITIALIZATION_RATE : undefined,
  };
  let clientToken = input.clientToken.slice(-64);
  try {
    return await createTaggedVolume(ec2, input.pool, request, clientToken, input.creation);
  } catch (err) {
    if (errorName(err) !== 'IdempotentParameterMismatch') throw err;
    // The token was first used with other parameters (a retry after the pool's latest snapshot or
    // size changed): take a token bound to these parameters, so a retry of this call stays idempotent.
    // A volume the first call may have made is the reconcile's to find (tagged with the pool).
    clientToken = createHash('sha256')
      .update(`${clientToken}:${JSON.stringify(request)}`)
      .digest('hex')
      .slice(0, 64);
    logger.warn('client token reused with other parameters; taking a new one', { clientToken });
    return createTaggedVolume(ec2, input.pool, request, clientToken, input.creation);
  }
}

async function createTaggedVolume(
  ec2: EC2Client,
  pool: string,
  request: Omit<ConstructorParameters<typeof CreateVolumeCommand>[0], 'ClientToken' | 'TagSpecifications'>,
  clientToken: string,
  creation: string | undefined,
): Promise<string> {
  const created = await ec2.send(
    new CreateVolumeCommand({
      ...request,
      ClientToken: clientToken,
      TagSpecifications: [
        {
          ResourceType: 'volume',
          Tags: [
            { Key: poolTag, Value: pool },
            { Key: roleTag, Value: Role.Volume },
            { Key: 'Name', Value: `volsd-${pool}` },
            ...(creation ? [{ Key: creationTag, Value: creation }] : []),
          ],
        },
      ],
    }),
  );
  if (!created.VolumeId) throw new VolumeNotReady('CreateVolume returned no volume id');
  return created.VolumeId;
}
