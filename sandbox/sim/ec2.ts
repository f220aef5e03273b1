import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type {
  AttachVolumeRequest,
  CreateSnapshotRequest,
  CreateTagsRequest,
  CreateVolumeRequest,
  DeleteSnapshotRequest,
  DeleteTagsRequest,
  DeleteVolumeRequest,
  DescribeInstancesRequest,
  DescribeInstanceTypesRequest,
  DescribeSnapshotsRequest,
  DescribeVolumeStatusRequest,
  DescribeVolumesModificationsRequest,
  DescribeVolumesRequest,
  DetachVolumeRequest,
  Instance as Ec2Instance,
  Snapshot as Ec2Snapshot,
  Volume as Ec2Volume,
  InstanceTypeInfo,
  ModifyInstanceAttributeRequest,
  ModifyVolumeRequest,
  Reservation,
  TerminateInstancesRequest,
  VolumeAttachment,
  VolumeStatusItem,
} from '@aws-sdk/client-ec2';
import type { SimContext } from './context.js';
import { type HostDevice, isMounted, materializeDevices, nvmeSerial } from './devices.js';
import { fail, UnsupportedCommandError } from './errors.js';
import {
  defaultInitializationModel,
  type InitializationModel,
  provisionedRateRange,
  VolumeInitialization,
} from './initialization.js';
import { VolumeModifier } from './modify.js';
import { applyFilters, paginate, required, tagFilter, tagList, tagsFromSpecifications } from './util.js';

/** EBS volume states (FACTS §2). */
export type VolumeState = 'creating' | 'available' | 'in-use' | 'deleting' | 'deleted' | 'error';
/** Attachment states (FACTS §2). */
export type AttachmentState = 'attaching' | 'attached' | 'detaching' | 'detached' | 'busy';
/** Instance states the simulator models. */
export type InstanceStateName = 'pending' | 'running' | 'shutting-down' | 'terminated';

const stateCodes: Record<InstanceStateName, number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
};

interface Attachment {
  instanceId: string;
  device: string;
  state: AttachmentState;
  deleteOnTermination: boolean;
  attachTime: Date;
  /** N of /dev/nvme<N>n1 once the OS discovered the device. */
  nvmeIndex?: number;
  /** Fault: the current attach or detach never completes unless forced. */
  stuck: boolean;
  /** Cancels the pending transition timer. */
  cancel?: () => void;
  /** Modelled time from which DescribeInstances' block device mappings show it (eventual consistency). */
  mappedFrom: number;
}

/** A block device mapping DescribeInstances still shows after its detach (eventual consistency). */
interface StaleMapping {
  volumeId: string;
  device: string;
  attachTime: Date;
  deleteOnTermination: boolean;
  /** Modelled time until which it is still shown. */
  until: number;
}

interface Volume {
  id: string;
  az: string;
  size: number;
  type: string;
  iops?: number;
  throughput?: number;
  encrypted: boolean;
  kmsKeyId?: string;
  snapshotId?: string;
  state: VolumeState;
  createTime: Date;
  tags: Map<string, string>;
  attachment?: Attachment;
  /** The instance's root volume: never materialised as a data device. */
  root: boolean;
  /** creating: waits for both the modelled delay and the data copy. */
  pendingReady: number;
  cancel?: () => void;
  /** Modelled time of the last CreateSnapshot, for the per-volume rate limit. */
  lastSnapshotAt?: number;
  /** Every instance the volume was ever attached to, in order (ground truth for tests). */
  attachedTo: string[];
  /** Modelled time from which Describe* knows it (eventual consistency). */
  visibleFrom: number;
  /** The CreateVolume parameters its client token was given with (IdempotentParameterMismatch). */
  request?: string;
  /** CreateVolume's VolumeInitializationRate (MiB/s), when given. */
  initializationRate?: number;
  /** Lazy loading of a snapshot-born volume (rule volumeInitialization; initialization.ts). */
  initialization?: VolumeInitialization;
  /** Exact initialization progress (0-100) at each AttachVolume, in the order of `attachedTo`. */
  progressAtAttach: number[];
}

interface Instance {
  id: string;
  az: string;
  type: string;
  state: InstanceStateName;
  tags: Map<string, string>;
  launchTime: Date;
  attachmentLimit: number;
  agentOnline: boolean;
  rootVolumeId: string;
  reservationId: string;
  privateIp: string;
  /** Volumes with an attachment to this instance (any attachment state). */
  volumes: Set<string>;
  timers: (() => void)[];
  terminatedAt?: Date;
  /** The OS has booted (after running; the SSM agent registers after it). */
  osReady: boolean;
  /** Modelled time from which Describe* knows it (eventual consistency). */
  visibleFrom: number;
  /**
   * Device names a forced detach left unusable until the instance reboots (rule attachTail, EBS user
   * guide, "Detach an Amazon EBS volume"): an attach at one of them stays `attaching`.
   */
  unusableDevices: Set<string>;
  /** Mappings of detached volumes DescribeInstances still shows for a while. */
  staleMappings: StaleMapping[];
}

interface Snapshot {
  id: string;
  volumeId: string;
  volumeSize: number;
  state: 'pending' | 'completed' | 'error';
  startTime: Date;
  description: string;
  encrypted: boolean;
  kmsKeyId?: string;
  tags: Map<string, string>;
  cancel?: () => void;
  /** Modelled time from which Describe* knows it (eventual consistency). */
  visibleFrom: number;
  /** Modelled GiB of data: what a volume created from it has to initialize. */
  dataGiB: number;
}

/** Options of `Ec2Sim` beyond the shared context. */
export interface Ec2SimOptions {
  /**
   * Modelled size of the content a data volume holds, in GiB: every snapshot of a data volume takes it
   * as its data size (the simulator's files are tiny). @default 1
   */
  contentGiB?: number;
  /** The initialization model (initialization.ts). */
  initialization?: Partial<InitializationModel>;
}

/** Options of `launchInstance`. */
export interface LaunchOptions {
  az: string;
  tags?: Record<string, string>;
  /** @default 'm7g.large' */
  instanceType?: string;
  /** Modelled seconds from launch to running. @default drawn from latency.instanceBoot */
  bootSeconds?: number;
  /**
   * EBS attachments allowed, root volume included. @default the instance type's MaximumEbsAttachments
   * (rule instanceTypeLimits), else the cloud's attachmentLimit
   */
  attachmentLimit?: number;
}

/** What an instance goes through; `Ec2Sim.onInstance` listeners get these. */
export type InstanceEvent = 'running' | 'os-ready' | 'agent-online' | 'shutting-down' | 'terminated';

/** A plain view of a volume for invariant checks. */
export interface VolumeView {
  volumeId: string;
  az: string;
  state: VolumeState;
  size: number;
  volumeType: string;
  snapshotId?: string;
  encrypted: boolean;
  tags: Record<string, string>;
  root: boolean;
  /** Every instance the volume was ever attached to, in order. */
  attachedTo: string[];
  /** Exact initialization progress (0-100) when each of those attaches was accepted. */
  progressAtAttach: number[];
  /**
   * Ground truth of the lazy loading of a snapshot-born volume (absent for empty volumes, which need
   * none, and when rule volumeInitialization is off).
   */
  initialization?: {
    type: 'default' | 'provisioned-rate';
    provisionedRate?: number;
    dataGiB: number;
    /** Exact progress now, 0-100. */
    progress: number;
    /** Modelled seconds from available to fully initialized, once it is. */
    seconds?: number;
  };
  attachment?: {
    instanceId: string;
    device: string;
    state: AttachmentState;
    deleteOnTermination: boolean;
    /** When AttachVolume was accepted (ISO time on the modelled clock). */
    attachTime: string;
    nvmeDevice?: string;
    stuck: boolean;
  };
  dataDir: string;
}

/** A plain view of an instance. */
export interface InstanceView {
  instanceId: string;
  az: string;
  instanceType: string;
  state: InstanceStateName;
  tags: Record<string, string>;
  agentOnline: boolean;
  /** The OS has booted (the moment the web server could start). */
  osReady: boolean;
  attachmentLimit: number;
  rootVolumeId: string;
  hostRoot: string;
  devices: HostDevice[];
}

/** A plain view of a snapshot. */
export interface SnapshotView {
  snapshotId: string;
  volumeId: string;
  state: Snapshot['state'];
  volumeSize: number;
  tags: Record<string, string>;
  startTime: string;
  dataDir: string;
}

const volumeTypes = new Set(['gp2', 'gp3', 'io1', 'io2', 'st1', 'sc1', 'standard']);
const deviceName = /^\/dev\/(sd[a-z]([1-9][0-5]?)?|xvd[a-z]{1,2})$/;
const defaultInstanceType = 'm7g.large';
const rootDevice = '/dev/xvda';

/**
 * Instance types DescribeInstanceTypes knows (all Nitro, NVMe EBS). `ebs` is EbsInfo's
 * MaximumEbsAttachments and AttachmentLimitType as EC2 reports them (moto's dump of real
 * DescribeInstanceTypes data, `moto/ec2/resources/instance_types.json.gz`; FACTS §8): a `shared` limit
 * is what is left of the 28 Nitro slots with one network interface; `dedicated` counts EBS alone. The
 * root volume counts towards either.
 */
const instanceTypeCatalog: Record<
  string,
  {
    vcpus: number;
    memoryMiB: number;
    arch: 'arm64' | 'x86_64';
    ebs: { max: number; type: 'shared' | 'dedicated' };
  }
> = {
  't4g.small': { vcpus: 2, memoryMiB: 2048, arch: 'arm64', ebs: { max: 27, type: 'shared' } },
  't4g.medium': { vcpus: 2, memoryMiB: 4096, arch: 'arm64', ebs: { max: 27, type: 'shared' } },
  'm7g.large': { vcpus: 2, memoryMiB: 8192, arch: 'arm64', ebs: { max: 27, type: 'shared' } },
  'm7g.xlarge': { vcpus: 4, memoryMiB: 16384, arch: 'arm64', ebs: { max: 27, type: 'shared' } },
  'c7g.large': { vcpus: 2, memoryMiB: 4096, arch: 'arm64', ebs: { max: 27, type: 'shared' } },
  't3.medium': { vcpus: 2, memoryMiB: 4096, arch: 'x86_64', ebs: { max: 27, type: 'shared' } },
  'm7i.large': { vcpus: 2, memoryMiB: 8192, arch: 'x86_64', ebs: { max: 32, type: 'dedicated' } },
  'm8g.large': { vcpus: 2, memoryMiB: 8192, arch: 'arm64', ebs: { max: 32, type: 'dedicated' } },
};

/**
 * The throughput a host reads a volume at, MiB/s: gp3 its provisioned Throughput; gp2 250 (its maximum,
 * reached from 334 GiB; smaller volumes are slower: assumed at the maximum); others 125 (assumed).
 */
function volumeThroughputMiBps(v: { type: string; throughput?: number }): number {
  if (v.type === 'gp3') return v.throughput ?? 125;
  if (v.type === 'gp2') return 250;
  return 125;
}

function tagsOf(map: ReadonlyMap<string, string>): Record<string, string> {
  return Object.fromEntries(map);
}

function withTags<T extends object>(
  out: T,
  tags: ReadonlyMap<string, string>,
): T & { Tags?: { Key: string; Value: string }[] } {
  return tags.size > 0 ? { ...out, Tags: tagList(tags) } : out;
}

/**
 * The EC2 model: volumes, instances, snapshots and tags, with the states, transitions, limits and
 * errors Volsd depends on. Every handler runs synchronously, so each call sees and leaves a
 * consistent state; transitions happen later on the modelled clock.
 */
export class Ec2Sim {
  private readonly volumes = new Map<string, Volume>();
  private readonly instances = new Map<string, Instance>();
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly clientTokens = new Map<string, string>();
  private readonly listeners: ((instanceId: string, event: InstanceEvent) => void)[] = [];
  private readonly contentGiB: number;
  private readonly initializationModel: InitializationModel;
  /** Every initialization ever started, deleted volumes' included (ground truth for reports). */
  private readonly initializations: VolumeInitialization[] = [];

  /** ModifyVolume and DescribeVolumesModifications (`modify.ts`). */
  readonly modifications: VolumeModifier;

  constructor(
    private readonly ctx: SimContext,
    options: Ec2SimOptions = {},
  ) {
    this.contentGiB = options.contentGiB ?? 1;
    if (!(this.contentGiB >= 0)) throw new RangeError(`contentGiB must be >= 0, got ${options.contentGiB}`);
    this.initializationModel = { ...defaultInitializationModel, ...options.initialization };
    this.modifications = new VolumeModifier(
      ctx,
      (id) => this.volume(id),
      () => [...this.volumes.values()].filter((v) => this.visible(v)),
      (v) => {
        const holder = this.volumes.get(v.id)?.attachment?.instanceId;
        if (holder) this.materialize(holder);
      },
    );
  }

  /** The EC2 commands the simulator answers, by operation name. */
  readonly commands: Record<string, (input: never) => object> = {
    AttachVolume: (i: AttachVolumeRequest) => this.attachVolume(i),
    DetachVolume: (i: DetachVolumeRequest) => this.detachVolume(i),
    CreateVolume: (i: CreateVolumeRequest) => this.createVolume(i),
    DeleteVolume: (i: DeleteVolumeRequest) => this.deleteVolume(i),
    DescribeVolumes: (i: DescribeVolumesRequest) => this.describeVolumes(i),
    DescribeVolumeStatus: (i: DescribeVolumeStatusRequest) => this.describeVolumeStatus(i),
    DescribeInstances: (i: DescribeInstancesRequest) => this.describeInstances(i),
    DescribeInstanceTypes: (i: DescribeInstanceTypesRequest) => this.describeInstanceTypes(i),
    ModifyInstanceAttribute: (i: ModifyInstanceAttributeRequest) => this.modifyInstanceAttribute(i),
    CreateTags: (i: CreateTagsRequest) => this.createTags(i),
    DeleteTags: (i: DeleteTagsRequest) => this.deleteTags(i),
    CreateSnapshot: (i: CreateSnapshotRequest) => this.createSnapshot(i),
    DescribeSnapshots: (i: DescribeSnapshotsRequest) => this.describeSnapshots(i),
    DeleteSnapshot: (i: DeleteSnapshotRequest) => this.deleteSnapshot(i),
    TerminateInstances: (i: TerminateInstancesRequest) => this.terminateInstances(i),
    ModifyVolume: (i: ModifyVolumeRequest) => this.modifications.modifyVolume(i),
    DescribeVolumesModifications: (i: DescribeVolumesModificationsRequest) =>
      this.modifications.describeVolumesModifications(i),
  };

  /** Calls `listener` on every instance transition (Auto Scaling and SSM follow instances this way). */
  onInstance(listener: (instanceId: string, event: InstanceEvent) => void): void {
    this.listeners.push(listener);
  }

  // ---------------------------------------------------------------- helpers for scenarios and peers

  /** Launches an instance (pending, then running after its boot time, then its SSM agent registers). */
  launchInstance(o: LaunchOptions): string {
    if (!this.ctx.azs.includes(o.az))
      throw new RangeError(`unknown AZ ${o.az}; the cloud has ${this.ctx.azs.join(', ')}`);
    const id = `i-${this.ctx.ids.hex(17)}`;
    const hostRoot = this.ctx.hostRoot(id);
    mkdirSync(join(hostRoot, 'dev', 'disk', 'by-id'), { recursive: true });
    mkdirSync(join(hostRoot, 'proc'), { recursive: true });
    // Every Linux host has /proc/mounts; the mount shims of the sandbox maintain it from here on.
    writeFileSync(join(hostRoot, 'proc', 'mounts'), '', { flag: 'a' });
    const now = this.ctx.clock.date();
    const root: Volume = {
      id: `vol-${this.ctx.ids.hex(17)}`,
      az: o.az,
      size: 8,
      type: 'gp3',
      iops: 3000,
      throughput: 125,
      encrypted: false,
      state: 'in-use',
      createTime: now,
      tags: new Map(),
      root: true,
      pendingReady: 0,
      attachedTo: [id],
      progressAtAttach: [100],
      attachment: {
        instanceId: id,
        device: rootDevice,
        state: 'attached',
        deleteOnTermination: true,
        attachTime: now,
        nvmeIndex: 0,
        stuck: false,
        mappedFrom: 0,
      },
      visibleFrom: 0,
    };
    this.volumes.set(root.id, root);
    const type = o.instanceType ?? defaultInstanceType;
    const catalogued = instanceTypeCatalog[type];
    if (this.ctx.rules.instanceTypeLimits && !catalogued && o.attachmentLimit === undefined) {
      throw new RangeError(
        `instance type ${type} has no EBS data in the simulator (known: ${Object.keys(instanceTypeCatalog).join(', ')})`,
      );
    }
    const instance: Instance = {
      id,
      az: o.az,
      type,
      state: 'pending',
      tags: new Map(Object.entries(o.tags ?? {})),
      launchTime: now,
      attachmentLimit:
        o.attachmentLimit ??
        (this.ctx.rules.instanceTypeLimits && catalogued ? catalogued.ebs.max : this.ctx.attachmentLimit),
      agentOnline: false,
      osReady: false,
      visibleFrom: this.ctx.visibleFrom(),
      unusableDevices: new Set(),
      staleMappings: [],
      rootVolumeId: root.id,
      reservationId: `r-${this.ctx.ids.hex(17)}`,
      privateIp: `10.0.${this.ctx.ids.int(0, 255)}.${this.ctx.ids.int(1, 254)}`,
      volumes: new Set([root.id]),
      timers: [],
    };
    this.instances.set(id, instance);
    const boot = o.bootSeconds ?? this.ctx.delay(this.ctx.latency.instanceBoot);
    instance.timers.push(
      this.ctx.clock.setTimer(boot, () => {
        if (instance.state !== 'pending') return;
        instance.state = 'running';
        this.changed(id, 'running');
        // The OS boots once the instance runs; its SSM agent registers after the OS is up.
        instance.timers.push(
          this.ctx.clock.setTimer(this.ctx.delay(this.ctx.latency.osBoot), () => {
            if (instance.state !== 'running') return;
            instance.osReady = true;
            this.changed(id, 'os-ready');
            instance.timers.push(
              this.ctx.clock.setTimer(this.ctx.delay(this.ctx.latency.agentRegistration), () => {
                if (instance.state !== 'running') return;
                instance.agentOnline = true;
                this.changed(id, 'agent-online');
              }),
            );
          }),
        );
      }),
    );
    this.ctx.notify();
    return id;
  }

  /** Starts terminating an instance (shutting-down, then terminated; volumes detach or are deleted). */
  terminateInstance(instanceId: string): void {
    const instance = this.known(instanceId);
    if (instance.state === 'shutting-down' || instance.state === 'terminated') return;
    for (const cancel of instance.timers.splice(0)) cancel();
    instance.state = 'shutting-down';
    instance.agentOnline = false;
    instance.osReady = false;
    this.changed(instanceId, 'shutting-down');
    instance.timers.push(
      this.ctx.clock.setTimer(this.ctx.delay(this.ctx.latency.instanceShutdown), () =>
        this.finishTermination(instance),
      ),
    );
  }

  /** True when the instance exists and its SSM agent answers. */
  agentOnline(instanceId: string): boolean {
    return this.instances.get(instanceId)?.agentOnline ?? false;
  }

  /** The instance's state, or undefined when unknown. */
  instanceState(instanceId: string): InstanceStateName | undefined {
    return this.instances.get(instanceId)?.state;
  }

  /** Tags of an instance (empty when unknown). */
  instanceTags(instanceId: string): ReadonlyMap<string, string> {
    return this.instances.get(instanceId)?.tags ?? new Map();
  }

  /** Ids of instances whose tags satisfy `predicate`. */
  instanceIds(predicate: (tags: ReadonlyMap<string, string>, state: InstanceStateName) => boolean): string[] {
    return [...this.instances.values()].filter((i) => predicate(i.tags, i.state)).map((i) => i.id);
  }

  /** The AZ of an instance. */
  instanceAz(instanceId: string): string {
    return this.known(instanceId).az;
  }

  /** Sets a tag on an instance without the API (Auto Scaling's own tags use this). */
  tagInstance(instanceId: string, key: string, value: string): void {
    this.known(instanceId).tags.set(key, value);
  }

  /** The devices the instance's OS sees now (data volumes only, in NVMe order). */
  devicesOf(instanceId: string): HostDevice[] {
    const instance = this.instances.get(instanceId);
    if (!instance) return [];
    const devices: HostDevice[] = [];
    for (const volumeId of instance.volumes) {
      const v = this.volumes.get(volumeId);
      const a = v?.attachment;
      if (!v || !a || v.root || a.nvmeIndex === undefined) continue;
      devices.push({
        device: `/dev/nvme${a.nvmeIndex}n1`,
        serial: nvmeSerial(v.id),
        volumeId: v.id,
        attachDevice: a.device,
        dataDir: this.ctx.volumeDataDir(v.id),
        sizeBytes: v.size * this.ctx.gibBytes,
      });
    }
    return devices.sort((x, y) => x.device.localeCompare(y.device, 'en', { numeric: true }));
  }

  /** Rewrites the instance's /dev view from its attachments. */
  materialize(instanceId: string): void {
    if (!this.instances.has(instanceId)) return;
    materializeDevices(this.ctx.hostRoot(instanceId), this.devicesOf(instanceId));
  }

  /** Plain views of every volume, instance and snapshot. */
  view(): { volumes: VolumeView[]; instances: InstanceView[]; snapshots: SnapshotView[] } {
    return {
      volumes: [...this.volumes.values()].map((v) => this.volumeView(v)),
      instances: [...this.instances.values()].map((i) => ({
        instanceId: i.id,
        az: i.az,
        instanceType: i.type,
        state: i.state,
        tags: tagsOf(i.tags),
        agentOnline: i.agentOnline,
        osReady: i.osReady,
        attachmentLimit: i.attachmentLimit,
        rootVolumeId: i.rootVolumeId,
        hostRoot: this.ctx.hostRoot(i.id),
        devices: this.devicesOf(i.id),
      })),
      snapshots: [...this.snapshots.values()].map((s) => ({
        snapshotId: s.id,
        volumeId: s.volumeId,
        state: s.state,
        volumeSize: s.volumeSize,
        tags: tagsOf(s.tags),
        startTime: s.startTime.toISOString(),
        dataDir: this.ctx.snapshotDataDir(s.id),
      })),
    };
  }

  /** Cancels every pending transition (the clock's close() also drops them). */
  close(): void {
    for (const v of this.volumes.values()) {
      v.cancel?.();
      v.attachment?.cancel?.();
    }
    for (const i of this.instances.values()) for (const cancel of i.timers.splice(0)) cancel();
    for (const s of this.snapshots.values()) s.cancel?.();
    this.modifications.close();
  }

  // ---------------------------------------------------------------- volumes

  private createVolume(input: CreateVolumeRequest): Ec2Volume {
    // The parameters a client token is bound to ("Ensuring idempotency": the same token with other
    // parameters is IdempotentParameterMismatch); tags and the token itself are not compared.
    const { ClientToken: _token, TagSpecifications: _tags, DryRun: _dry, ...bound } = input;
    const request = JSON.stringify(bound, Object.keys(bound).sort());
    if (input.ClientToken) {
      const existing = this.volumes.get(this.clientTokens.get(input.ClientToken) ?? '');
      if (existing) {
        if (this.ctx.rules.idempotencyMismatch && existing.request !== request) {
          fail(
            'IdempotentParameterMismatch',
            'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).',
          );
        }
        return this.describeVolume(existing);
      }
    }
    const az = required(input.AvailabilityZone, 'AvailabilityZone');
    if (!this.ctx.azs.includes(az)) fail('InvalidParameterValue', `Invalid availability zone: [${az}]`);
    const type = input.VolumeType ?? 'gp2';
    if (!volumeTypes.has(type))
      fail('InvalidParameterValue', `Value (${type}) for parameter volumeType is invalid.`);
    let snapshot: Snapshot | undefined;
    if (input.SnapshotId) {
      snapshot = this.snapshot(input.SnapshotId);
      if (snapshot.state !== 'completed')
        fail('IncorrectState', `Snapshot is in invalid state - ${snapshot.state}`);
    }
    const size = input.Size ?? snapshot?.volumeSize;
    if (size === undefined) fail('MissingParameter', 'The request must contain the parameter size/snapshot');
    if (snapshot && size < snapshot.volumeSize) {
      fail(
        'InvalidParameterValue',
        `Volume of ${size}GiB is too small; minimum is ${snapshot.volumeSize}GiB.`,
      );
    }
    if (size < 1 || size > 65536) fail('InvalidParameterValue', `Volume of ${size}GiB is out of range.`);
    if (input.Throughput !== undefined && type !== 'gp3') {
      fail('InvalidParameterCombination', `The parameter throughput is not supported for ${type} volumes.`);
    }
    if ((type === 'io1' || type === 'io2') && input.Iops === undefined) {
      fail('MissingParameter', 'The request must contain the parameter iops');
    }
    const rate = input.VolumeInitializationRate;
    if (rate !== undefined) {
      // CreateVolume API reference: "supported only for volumes created from snapshots", "Valid range:
      // 100 - 300 MiB/s". The error codes are EC2's generic ones; the texts are not confirmed (n.c.).
      if (!snapshot) {
        fail(
          'InvalidParameterCombination',
          'The parameter VolumeInitializationRate is supported only for volumes created from a snapshot.',
        );
      }
      if (!Number.isInteger(rate) || rate < provisionedRateRange.min || rate > provisionedRateRange.max) {
        fail(
          'InvalidParameterValue',
          `Value (${rate}) for parameter volumeInitializationRate is invalid. Valid range: ${provisionedRateRange.min} - ${provisionedRateRange.max} MiB/s.`,
        );
      }
    }
    const encrypted = input.Encrypted ?? snapshot?.encrypted ?? false;
    const volume: Volume = {
      id: `vol-${this.ctx.ids.hex(17)}`,
      az,
      size,
      type,
      iops:
        type === 'gp3'
          ? (input.Iops ?? 3000)
          : type === 'gp2'
            ? Math.min(16000, Math.max(100, 3 * size))
            : input.Iops,
      throughput: type === 'gp3' ? (input.Throughput ?? 125) : undefined,
      encrypted,
      kmsKeyId: encrypted ? (input.KmsKeyId ?? snapshot?.kmsKeyId ?? this.defaultKmsKey()) : undefined,
      snapshotId: snapshot?.id,
      state: 'creating',
      createTime: this.ctx.clock.date(),
      tags: tagsFromSpecifications(input.TagSpecifications, 'volume'),
      attachedTo: [],
      root: false,
      pendingReady: snapshot ? 2 : 1,
      visibleFrom: this.ctx.visibleFrom(),
      request,
      ...(rate !== undefined ? { initializationRate: rate } : {}),
      progressAtAttach: [],
    };
    if (snapshot && this.ctx.rules.volumeInitialization) {
      volume.initialization = new VolumeInitialization(
        volume.id,
        snapshot.dataGiB,
        this.initializationModel,
        this.ctx.seed,
        rate,
      );
      this.initializations.push(volume.initialization);
    }
    this.volumes.set(volume.id, volume);
    if (input.ClientToken) this.clientTokens.set(input.ClientToken, volume.id);
    const dataDir = this.ctx.volumeDataDir(volume.id);
    mkdirSync(dataDir, { recursive: true });
    const ready = () => {
      volume.pendingReady -= 1;
      if (volume.pendingReady === 0 && volume.state === 'creating') {
        volume.state = 'available';
        volume.initialization?.start(this.ctx.clock.now());
        this.ctx.notify();
      }
    };
    const latency = snapshot ? this.ctx.latency.volumeCreateFromSnapshot : this.ctx.latency.volumeCreate;
    // Never `available` before Describe* knows it: a poll sees NotFound, then creating or available.
    const known = volume.visibleFrom - this.ctx.clock.now();
    volume.cancel = this.ctx.clock.setTimer(Math.max(this.ctx.delay(latency), known), ready);
    if (snapshot) {
      const from = this.ctx.snapshotDataDir(snapshot.id);
      this.ctx.track(
        cp(from, dataDir, {
          recursive: true,
          preserveTimestamps: true,
          verbatimSymlinks: true,
          force: true,
        }).then(ready, () => {
          volume.state = 'error';
          this.ctx.notify();
        }),
      );
    }
    this.ctx.notify();
    return this.describeVolume(volume);
  }

  private deleteVolume(input: DeleteVolumeRequest): object {
    const volume = this.volume(required(input.VolumeId, 'VolumeId'));
    if (volume.attachment) {
      fail('VolumeInUse', `Volume ${volume.id} is currently attached to ${volume.attachment.instanceId}`);
    }
    if (volume.state === 'deleting') return {};
    if (volume.state !== 'available' && volume.state !== 'error') {
      fail('IncorrectState', `The volume '${volume.id}' is '${volume.state}'`);
    }
    this.startDeletion(volume);
    return {};
  }

  private startDeletion(volume: Volume): void {
    volume.state = 'deleting';
    volume.initialization?.stop(this.ctx.clock.now());
    volume.cancel?.();
    volume.cancel = this.ctx.clock.setTimer(this.ctx.delay(this.ctx.latency.volumeDelete), () => {
      volume.state = 'deleted';
      this.volumes.delete(volume.id);
      this.ctx.track(rm(this.ctx.volumeDataDir(volume.id), { recursive: true, force: true }));
      this.ctx.notify();
    });
    this.ctx.notify();
  }

  private attachVolume(input: AttachVolumeRequest): VolumeAttachment {
    const device = required(input.Device, 'Device');
    const instanceId = required(input.InstanceId, 'InstanceId');
    const volume = this.volume(required(input.VolumeId, 'VolumeId'));
    const instance = this.instance(instanceId);
    if (!deviceName.test(device)) {
      fail(
        'InvalidParameterValue',
        `Value (${device}) for parameter device is invalid. ${device} is not a valid EBS device name.`,
      );
    }
    if (instance.state === 'pending' && this.ctx.rules.attachRequiresRunning) {
      // AttachVolume API reference: "to a running or stopped instance"; the code and message as AWS
      // answers while the instance is pending (ansible-collections/amazon.aws PR #497).
      fail('IncorrectState', `Instance '${instance.id}' is not 'running'.`);
    }
    if (instance.state !== 'running' && instance.state !== 'pending') {
      fail('IncorrectInstanceState', `Instance '${instance.id}' is not 'running'.`);
    }
    if (volume.az !== instance.az) {
      fail(
        'InvalidVolume.ZoneMismatch',
        `The volume '${volume.id}' is not in the same availability zone as instance '${instance.id}'`,
      );
    }
    if (volume.attachment) fail('VolumeInUse', `${volume.id} is already attached to an instance`);
    if (volume.state !== 'available') fail('IncorrectState', `The volume '${volume.id}' is not 'available'.`);
    const site = { action: 'AttachVolume', volumeId: volume.id, instanceId: instance.id };
    if (this.ctx.faults.strike('incorrectState', site)) {
      fail('IncorrectState', `The volume '${volume.id}' is not 'available'.`);
    }
    const onInstance = [...instance.volumes]
      .map((id) => this.volumes.get(id)?.attachment)
      .filter((a) => a !== undefined);
    if (onInstance.some((a) => a.device === device)) {
      fail(
        'InvalidParameterValue',
        `Invalid value '${device}' for unixDevice. Attachment point ${device} is already in use`,
      );
    }
    if (onInstance.length >= instance.attachmentLimit) {
      fail(
        'AttachmentLimitExceeded',
        `The maximum number of attachments for instance '${instance.id}' has been reached.`,
      );
    }
    const attachment: Attachment = {
      instanceId: instance.id,
      device,
      state: 'attaching',
      deleteOnTermination: false,
      attachTime: this.ctx.clock.date(),
      // A device name a forced detach left in use by the OS: the attach never completes.
      stuck: this.ctx.faults.strike('stuckAttach', site) || instance.unusableDevices.has(device),
      mappedFrom: this.ctx.visibleFrom(),
    };
    volume.attachment = attachment;
    volume.attachedTo.push(attachment.instanceId);
    volume.progressAtAttach.push(volume.initialization?.progress(this.ctx.clock.now()) ?? 100);
    volume.state = 'in-use';
    instance.volumes.add(volume.id);
    if (!attachment.stuck) {
      attachment.cancel = this.ctx.clock.setTimer(this.ctx.attachDelay(this.ctx.latency.attach), () => {
        if (volume.attachment !== attachment || attachment.state !== 'attaching') return;
        attachment.state = 'attached';
        attachment.nvmeIndex = this.freeNvmeIndex(instance);
        this.materialize(instance.id);
        this.ctx.notify();
      });
    }
    if (this.ctx.faults.strike('terminateOnAttach', site)) this.terminateInstance(instance.id);
    this.ctx.notify();
    return this.attachmentOutput(volume, attachment);
  }

  private detachVolume(input: DetachVolumeRequest): VolumeAttachment {
    const volume = this.volume(required(input.VolumeId, 'VolumeId'));
    const attachment = volume.attachment;
    if (!attachment) fail('IncorrectState', `Volume '${volume.id}' is in the '${volume.state}' state.`);
    if (input.InstanceId !== undefined && input.InstanceId !== attachment.instanceId) {
      fail(
        'InvalidAttachment.NotFound',
        `The volume '${volume.id}' is not attached to instance '${input.InstanceId}'.`,
      );
    }
    if (input.Device !== undefined && input.Device !== attachment.device) {
      fail('InvalidAttachment.NotFound', `The volume '${volume.id}' is not attached at '${input.Device}'.`);
    }
    const instance = this.instance(attachment.instanceId);
    if (volume.root && (instance.state === 'running' || instance.state === 'pending')) {
      fail(
        'UnsupportedOperation',
        `Unable to detach root volume '${volume.id}' from instance '${instance.id}'`,
      );
    }
    const site = { action: 'DetachVolume', volumeId: volume.id, instanceId: instance.id };
    if (this.ctx.faults.strike('incorrectState', site)) {
      fail('IncorrectState', `Volume '${volume.id}' is in the '${attachment.state}' state.`);
    }
    if (input.Force) {
      attachment.cancel?.();
      attachment.stuck = false;
      // "the device name may be unusable until reboot" (FACTS §2): only when the OS saw the device, or
      // was still waiting for it (an attach that did not complete).
      if (this.ctx.rules.attachTail) instance.unusableDevices.add(attachment.device);
      this.startDetach(volume, attachment, true);
    } else if (attachment.state === 'attaching') {
      fail('IncorrectState', `Volume '${volume.id}' is in the 'attaching' state.`);
    } else if (attachment.state === 'attached') {
      attachment.stuck = this.ctx.faults.strike('stuckDetach', site);
      this.startDetach(volume, attachment, false);
    }
    // A repeated detach while detaching/busy changes nothing and answers like the first.
    return { ...this.attachmentOutput(volume, attachment), State: 'detaching' };
  }

  private startDetach(volume: Volume, attachment: Attachment, force: boolean): void {
    attachment.cancel?.();
    attachment.cancel = undefined;
    if (!force && this.mounted(volume, attachment)) {
      this.waitUntilUnmounted(volume, attachment);
      return;
    }
    attachment.state = 'detaching';
    this.ctx.notify();
    if (attachment.stuck) return;
    attachment.cancel = this.ctx.clock.setTimer(this.ctx.attachDelay(this.ctx.latency.detach), () => {
      if (volume.attachment !== attachment) return;
      // A mount that appeared while detaching holds the device, as on AWS.
      if (!force && this.mounted(volume, attachment)) this.waitUntilUnmounted(volume, attachment);
      else this.finishDetach(volume, attachment);
    });
  }

  private waitUntilUnmounted(volume: Volume, attachment: Attachment): void {
    attachment.state = 'busy';
    this.ctx.notify();
    const poll = () => {
      if (volume.attachment !== attachment || attachment.state !== 'busy') return;
      if (this.mounted(volume, attachment)) {
        attachment.cancel = this.ctx.clock.setTimer(this.ctx.latency.busyPoll, poll);
        return;
      }
      this.startDetach(volume, attachment, false);
    };
    attachment.cancel = this.ctx.clock.setTimer(this.ctx.latency.busyPoll, poll);
  }

  private mounted(volume: Volume, attachment: Attachment): boolean {
    if (attachment.nvmeIndex === undefined || volume.root) return false;
    return isMounted(this.ctx.hostRoot(attachment.instanceId), {
      device: `/dev/nvme${attachment.nvmeIndex}n1`,
      serial: nvmeSerial(volume.id),
      volumeId: volume.id,
      attachDevice: attachment.device,
    });
  }

  private finishDetach(volume: Volume, attachment: Attachment): void {
    attachment.cancel?.();
    volume.initialization?.stopReading(this.ctx.clock.now(), attachment.instanceId);
    attachment.state = 'detached';
    volume.attachment = undefined;
    if (volume.state === 'in-use') volume.state = 'available';
    const instance = this.instances.get(attachment.instanceId);
    instance?.volumes.delete(volume.id);
    if (instance && this.ctx.rules.eventualConsistency && !volume.root) {
      instance.staleMappings.push({
        volumeId: volume.id,
        device: attachment.device,
        attachTime: attachment.attachTime,
        deleteOnTermination: attachment.deleteOnTermination,
        until: this.ctx.visibleFrom(),
      });
    }
    this.materialize(attachment.instanceId);
    this.ctx.notify();
  }

  private freeNvmeIndex(instance: Instance): number {
    const used = new Set<number>();
    for (const id of instance.volumes) {
      const n = this.volumes.get(id)?.attachment?.nvmeIndex;
      if (n !== undefined) used.add(n);
    }
    let n = 1;
    while (used.has(n)) n++;
    return n;
  }

  private describeVolumes(input: DescribeVolumesRequest): { Volumes: Ec2Volume[]; NextToken?: string } {
    if (input.VolumeIds?.length && input.MaxResults !== undefined) {
      fail(
        'InvalidParameterCombination',
        'The parameter volumeSet cannot be used with the parameter maxResults',
      );
    }
    // One id (every poll of Volsd's) is a lookup: scanning every volume ever created made long runs slow.
    const one = input.VolumeIds?.length === 1 ? this.volumes.get(input.VolumeIds[0] ?? '') : undefined;
    let items = (one ? [one] : [...this.volumes.values()]).filter((v) => this.visible(v));
    if (input.VolumeIds?.length) {
      const missing = input.VolumeIds.filter((id) => !this.visible(this.volumes.get(id)));
      if (missing.length)
        fail('InvalidVolume.NotFound', `The volume '${missing.join(', ')}' does not exist.`);
      const wanted = new Set(input.VolumeIds);
      items = items.filter((v) => wanted.has(v.id));
    }
    const known = new Set([
      'tag-key',
      'tag-value',
      'status',
      'availability-zone',
      'attachment.instance-id',
      'attachment.status',
      'attachment.device',
      'attachment.delete-on-termination',
      'attachment.attach-time',
      'volume-id',
      'volume-type',
      'snapshot-id',
      'size',
      'encrypted',
      'create-time',
    ]);
    items = applyFilters(items, input.Filters, known, (name, v) => {
      const a = v.attachment;
      switch (name) {
        case 'status':
          return [v.state];
        case 'availability-zone':
          return [v.az];
        case 'attachment.instance-id':
          return [a?.instanceId];
        case 'attachment.status':
          return [a?.state];
        case 'attachment.device':
          return [a?.device];
        case 'attachment.delete-on-termination':
          return [a ? String(a.deleteOnTermination) : undefined];
        case 'attachment.attach-time':
          return [a?.attachTime.toISOString()];
        case 'volume-id':
          return [v.id];
        case 'volume-type':
          return [v.type];
        case 'snapshot-id':
          return [v.snapshotId ?? ''];
        case 'size':
          return [String(v.size)];
        case 'encrypted':
          return [String(v.encrypted)];
        case 'create-time':
          return [v.createTime.toISOString()];
        default:
          return tagFilter(name, v.tags);
      }
    });
    const { page, nextToken } = paginate(items, {
      maxResults: input.MaxResults,
      nextToken: input.NextToken,
      defaultSize: Number.POSITIVE_INFINITY,
      min: 5,
      max: 500,
      badTokenCode: 'InvalidParameterValue',
    });
    return {
      Volumes: page.map((v) => this.describeVolume(v)),
      ...(nextToken ? { NextToken: nextToken } : {}),
    };
  }

  private describeVolume(v: Volume): Ec2Volume {
    const a = v.attachment;
    return withTags(
      {
        VolumeId: v.id,
        Size: v.size,
        SnapshotId: v.snapshotId ?? '',
        AvailabilityZone: v.az,
        State: v.state,
        CreateTime: v.createTime,
        Attachments: a ? [this.attachmentOutput(v, a)] : [],
        Encrypted: v.encrypted,
        ...(v.kmsKeyId ? { KmsKeyId: v.kmsKeyId } : {}),
        VolumeType: v.type as Ec2Volume['VolumeType'],
        ...(v.iops !== undefined ? { Iops: v.iops } : {}),
        ...(v.throughput !== undefined ? { Throughput: v.throughput } : {}),
        ...(v.initializationRate !== undefined ? { VolumeInitializationRate: v.initializationRate } : {}),
        MultiAttachEnabled: false,
      },
      v.tags,
    );
  }

  private attachmentOutput(v: Volume, a: Attachment): VolumeAttachment {
    return {
      AttachTime: a.attachTime,
      Device: a.device,
      InstanceId: a.instanceId,
      State: a.state,
      VolumeId: v.id,
      DeleteOnTermination: a.deleteOnTermination,
    };
  }

  private volumeView(v: Volume): VolumeView {
    const a = v.attachment;
    return {
      volumeId: v.id,
      az: v.az,
      state: v.state,
      size: v.size,
      volumeType: v.type,
      ...(v.snapshotId ? { snapshotId: v.snapshotId } : {}),
      encrypted: v.encrypted,
      tags: tagsOf(v.tags),
      root: v.root,
      attachedTo: [...v.attachedTo],
      progressAtAttach: [...v.progressAtAttach],
      ...(v.initialization ? { initialization: this.initializationView(v.initialization) } : {}),
      ...(a
        ? {
            attachment: {
              instanceId: a.instanceId,
              device: a.device,
              state: a.state,
              deleteOnTermination: a.deleteOnTermination,
              attachTime: a.attachTime.toISOString(),
              ...(a.nvmeIndex !== undefined ? { nvmeDevice: `/dev/nvme${a.nvmeIndex}n1` } : {}),
              stuck: a.stuck,
            },
          }
        : {}),
      dataDir: this.ctx.volumeDataDir(v.id),
    };
  }

  private initializationView(init: VolumeInitialization): NonNullable<VolumeView['initialization']> {
    const now = this.ctx.clock.now();
    const seconds = init.durationSeconds(now);
    return {
      type: init.type,
      ...(init.provisionedRate !== undefined ? { provisionedRate: init.provisionedRate } : {}),
      dataGiB: init.totalMiB / 1024,
      progress: init.progress(now),
      ...(seconds !== undefined ? { seconds } : {}),
    };
  }

  /**
   * DescribeVolumeStatus: status checks always pass (the model has no impaired volumes); snapshot-born
   * volumes carry InitializationStatusDetails as refreshed by the model (initialization.ts), empty ones
   * none. Only `VolumeIds` and pagination; any filter is refused as unsupported by the model.
   */
  private describeVolumeStatus(input: DescribeVolumeStatusRequest): {
    VolumeStatuses: VolumeStatusItem[];
    NextToken?: string;
  } {
    if (input.Filters?.length) {
      throw new UnsupportedCommandError(
        "the simulator's DescribeVolumeStatus takes VolumeIds and pagination, no Filters",
      );
    }
    if (input.VolumeIds?.length && input.MaxResults !== undefined) {
      fail(
        'InvalidParameterCombination',
        'The parameter volumeSet cannot be used with the parameter maxResults',
      );
    }
    let items = [...this.volumes.values()].filter((v) => this.visible(v) && !v.root);
    if (input.VolumeIds?.length) {
      const missing = input.VolumeIds.filter((id) => !this.visible(this.volumes.get(id)));
      if (missing.length)
        fail('InvalidVolume.NotFound', `The volume '${missing.join(', ')}' does not exist.`);
      items = input.VolumeIds.map((id) => this.volumes.get(id)).filter((v) => v !== undefined);
    }
    const { page, nextToken } = paginate(items, {
      maxResults: input.MaxResults,
      nextToken: input.NextToken,
      defaultSize: Number.POSITIVE_INFINITY,
      min: 5,
      max: 1000,
      badTokenCode: 'InvalidParameterValue',
    });
    const now = this.ctx.clock.now();
    return {
      VolumeStatuses: page.map((v) => ({
        VolumeId: v.id,
        AvailabilityZone: v.az,
        VolumeStatus: {
          Status: 'ok',
          Details: [
            { Name: 'io-enabled', Status: 'passed' },
            { Name: 'io-performance', Status: 'not-applicable' },
          ],
        },
        Actions: [],
        Events: [],
        ...(v.attachment
          ? { AttachmentStatuses: [{ InstanceId: v.attachment.instanceId, IoPerformance: 'not-applicable' }] }
          : {}),
        ...this.initializationDetails(v, now),
      })),
      ...(nextToken ? { NextToken: nextToken } : {}),
    };
  }

  /** InitializationStatusDetails of a snapshot-born volume (initialized at creation without the rule). */
  private initializationDetails(
    v: Volume,
    now: number,
  ): Pick<VolumeStatusItem, 'InitializationStatusDetails'> {
    if (v.initialization) {
      return v.initialization.started ? { InitializationStatusDetails: v.initialization.status(now) } : {};
    }
    if (!v.snapshotId) return {};
    const rated = v.initializationRate !== undefined;
    return {
      InitializationStatusDetails: {
        InitializationType: rated ? 'provisioned-rate' : 'default',
        Progress: 100,
        ...(rated ? { EstimatedTimeToCompleteInSeconds: 0 } : {}),
      },
    };
  }

  /**
   * Seconds from available to fully initialized of every snapshot-born volume that completed its
   * initialization, deleted ones included (ground truth for the scenarios' initializationSeconds).
   */
  initializationDurations(): number[] {
    const now = this.ctx.clock.now();
    return this.initializations.flatMap((i) => {
      const seconds = i.totalMiB > 0 ? i.durationSeconds(now) : undefined;
      return seconds === undefined ? [] : [seconds];
    });
  }

  /** Every instance a volume was attached to, in order (empty for an unknown volume). */
  attachmentHistory(volumeId: string): string[] {
    return [...(this.volumes.get(volumeId)?.attachedTo ?? [])];
  }

  /**
   * Exact initialization progress of a volume, 0-100 (ground truth for scenarios and tests; 100 for an
   * empty volume or with rule volumeInitialization off). Undefined for an unknown volume.
   */
  initializationProgress(volumeId: string): number | undefined {
    const v = this.volumes.get(volumeId);
    if (!v) return undefined;
    return v.initialization?.progress(this.ctx.clock.now()) ?? 100;
  }

  /**
   * A host reads every block of an attached volume (the EBS guide's manual initialization, `dd` or
   * `fio`): blocks download at the larger of the volume's throughput and its own rate until done or
   * detached. Returns the modelled seconds the read takes from now (0 when nothing is left).
   */
  readAllBlocks(instanceId: string, volumeId: string): number {
    const v = this.volumes.get(volumeId);
    const a = v?.attachment;
    if (!v || a?.instanceId !== instanceId || a.state !== 'attached') {
      throw new RangeError(`volume ${volumeId} is not attached to ${instanceId}`);
    }
    const init = v.initialization;
    if (!init) return 0;
    const now = this.ctx.clock.now();
    init.startReading(now, instanceId, volumeThroughputMiBps(v));
    const seconds = init.secondsToComplete(now);
    const reader = a;
    this.ctx.clock.setTimer(seconds, () => {
      if (v.attachment === reader) init.stopReading(this.ctx.clock.now(), instanceId);
      this.ctx.notify();
    });
    return seconds;
  }

  // ---------------------------------------------------------------- instances

  private describeInstances(input: DescribeInstancesRequest): {
    Reservations: Reservation[];
    NextToken?: string;
  } {
    if (input.InstanceIds?.length && input.MaxResults !== undefined) {
      fail(
        'InvalidParameterCombination',
        'The parameter instancesSet cannot be used with the parameter maxResults',
      );
    }
    const one = input.InstanceIds?.length === 1 ? this.instances.get(input.InstanceIds[0] ?? '') : undefined;
    let items = (one ? [one] : [...this.instances.values()]).filter((i) => this.visible(i));
    if (input.InstanceIds?.length) {
      const missing = input.InstanceIds.filter((id) => !this.visible(this.instances.get(id)));
      if (missing.length === 1)
        fail('InvalidInstanceID.NotFound', `The instance ID '${missing[0]}' does not exist`);
      if (missing.length > 1)
        fail('InvalidInstanceID.NotFound', `The instance IDs '${missing.join(', ')}' do not exist`);
      const wanted = new Set(input.InstanceIds);
      items = items.filter((i) => wanted.has(i.id));
    }
    const known = new Set([
      'tag-key',
      'tag-value',
      'instance-state-name',
      'instance-state-code',
      'availability-zone',
      'instance-id',
      'instance-type',
      'private-ip-address',
      'reservation-id',
      'block-device-mapping.volume-id',
    ]);
    items = applyFilters(items, input.Filters, known, (name, i) => {
      switch (name) {
        case 'instance-state-name':
          return [i.state];
        case 'instance-state-code':
          return [String(stateCodes[i.state])];
        case 'availability-zone':
          return [i.az];
        case 'instance-id':
          return [i.id];
        case 'instance-type':
          return [i.type];
        case 'private-ip-address':
          return [i.privateIp];
        case 'reservation-id':
          return [i.reservationId];
        case 'block-device-mapping.volume-id':
          return [...i.volumes];
        default:
          return tagFilter(name, i.tags);
      }
    });
    const { page, nextToken } = paginate(items, {
      maxResults: input.MaxResults,
      nextToken: input.NextToken,
      defaultSize: Number.POSITIVE_INFINITY,
      min: 5,
      max: 1000,
      badTokenCode: 'InvalidParameterValue',
    });
    return {
      Reservations: page.map((i) => ({
        ReservationId: i.reservationId,
        OwnerId: this.ctx.accountId,
        Groups: [],
        Instances: [this.describeInstance(i)],
      })),
      ...(nextToken ? { NextToken: nextToken } : {}),
    };
  }

  private describeInstance(i: Instance): Ec2Instance {
    const arch = instanceTypeCatalog[i.type]?.arch ?? 'arm64';
    const now = this.ctx.clock.now();
    // Eventual consistency: a new attachment shows only from `mappedFrom`; a detached one lingers
    // as attached until `until` (aws-ebs-csi-driver PR #2183 met both).
    i.staleMappings = i.staleMappings.filter((m) => m.until > now && !i.volumes.has(m.volumeId));
    const stale = i.staleMappings.map(
      (m) =>
        ({
          DeviceName: m.device,
          Ebs: {
            AttachTime: m.attachTime,
            DeleteOnTermination: m.deleteOnTermination,
            Status: 'attached',
            VolumeId: m.volumeId,
          },
        }) as const,
    );
    const mappings = [...i.volumes]
      .map((id) => this.volumes.get(id))
      .filter((v) => v?.attachment !== undefined && v.attachment.mappedFrom <= now)
      .map((v) => {
        const a = v?.attachment as Attachment;
        return {
          DeviceName: a.device,
          Ebs: {
            AttachTime: a.attachTime,
            DeleteOnTermination: a.deleteOnTermination,
            // The instance API has no 'busy': a busy detach shows as detaching.
            Status: a.state === 'busy' ? 'detaching' : a.state,
            VolumeId: v?.id,
          },
        } as const;
      })
      .concat(stale);
    return withTags(
      {
        InstanceId: i.id,
        ImageId: 'ami-0123456789abcdef0',
        InstanceType: i.type as Ec2Instance['InstanceType'],
        LaunchTime: i.launchTime,
        AmiLaunchIndex: 0,
        Placement: { AvailabilityZone: i.az, Tenancy: 'default', GroupName: '' },
        PrivateIpAddress: i.privateIp,
        State: { Code: stateCodes[i.state], Name: i.state },
        StateTransitionReason: i.terminatedAt ? `User initiated (${i.terminatedAt.toISOString()})` : '',
        ...(i.state === 'shutting-down' || i.state === 'terminated'
          ? {
              StateReason: {
                Code: 'Client.UserInitiatedShutdown',
                Message: 'Client.UserInitiatedShutdown: User initiated shutdown',
              },
            }
          : {}),
        Architecture: arch,
        BlockDeviceMappings: mappings,
        RootDeviceName: rootDevice,
        RootDeviceType: 'ebs',
        EbsOptimized: true,
        EnaSupport: true,
        Hypervisor: 'xen',
        VirtualizationType: 'hvm',
        Monitoring: { State: 'disabled' },
        PlatformDetails: 'Linux/UNIX',
      },
      i.tags,
    );
  }

  private describeInstanceTypes(input: DescribeInstanceTypesRequest): { InstanceTypes: InstanceTypeInfo[] } {
    const names = input.InstanceTypes?.length ? input.InstanceTypes : Object.keys(instanceTypeCatalog);
    const unknown = names.filter((n) => !(n in instanceTypeCatalog));
    if (unknown.length)
      fail(
        'InvalidInstanceType',
        `The following supplied instance types do not exist: [${unknown.join(', ')}]`,
      );
    return {
      InstanceTypes: names.map((name) => {
        const t = instanceTypeCatalog[name] ?? {
          vcpus: 2,
          memoryMiB: 8192,
          arch: 'arm64' as const,
          ebs: { max: 27, type: 'shared' as const },
        };
        const real = this.ctx.rules.instanceTypeLimits;
        return {
          InstanceType: name as InstanceTypeInfo['InstanceType'],
          CurrentGeneration: true,
          BareMetal: false,
          Hypervisor: 'nitro',
          ProcessorInfo: { SupportedArchitectures: [t.arch] },
          VCpuInfo: { DefaultVCpus: t.vcpus },
          MemoryInfo: { SizeInMiB: t.memoryMiB },
          EbsInfo: {
            EbsOptimizedSupport: 'default',
            EncryptionSupport: 'supported',
            NvmeSupport: 'required',
            // Rule instanceTypeLimits: the type's real EbsInfo. Off: the old uniform model (28 slots
            // shared, of which the cloud's attachmentLimit are EBS).
            MaximumEbsAttachments: real ? t.ebs.max : this.ctx.attachmentLimit + 1,
            AttachmentLimitType: real ? t.ebs.type : 'shared',
          },
          NetworkInfo: { MaximumNetworkInterfaces: 3 },
        };
      }),
    };
  }

  private modifyInstanceAttribute(input: ModifyInstanceAttributeRequest): object {
    const instance = this.instance(required(input.InstanceId, 'InstanceId'));
    const { InstanceId: _id, DryRun: _dry, BlockDeviceMappings, ...rest } = input;
    const others = Object.entries(rest).filter(([, v]) => v !== undefined);
    if (others.length > 0 || !BlockDeviceMappings) {
      throw new UnsupportedCommandError(
        `the simulator's ModifyInstanceAttribute only changes BlockDeviceMappings[].Ebs.DeleteOnTermination (got ${others.map(([k]) => k).join(', ') || 'nothing'})`,
      );
    }
    for (const m of BlockDeviceMappings) {
      const device = required(m.DeviceName, 'BlockDeviceMapping.DeviceName');
      const attachment = [...instance.volumes]
        .map((id) => this.volumes.get(id)?.attachment)
        .find((a) => a?.device === device);
      if (!attachment) fail('InvalidInstanceAttributeValue', `No device is currently mapped at ${device}`);
      if (m.Ebs?.DeleteOnTermination !== undefined)
        attachment.deleteOnTermination = m.Ebs.DeleteOnTermination;
    }
    this.ctx.notify();
    return {};
  }

  private terminateInstances(input: TerminateInstancesRequest): object {
    const ids = required(input.InstanceIds, 'InstanceIds');
    const missing = ids.filter((id) => !this.visible(this.instances.get(id)));
    if (missing.length === 1)
      fail('InvalidInstanceID.NotFound', `The instance ID '${missing[0]}' does not exist`);
    if (missing.length > 1)
      fail('InvalidInstanceID.NotFound', `The instance IDs '${missing.join(', ')}' do not exist`);
    return {
      TerminatingInstances: ids.map((id) => {
        const instance = this.instance(id);
        const previous = instance.state;
        this.terminateInstance(id);
        return {
          InstanceId: id,
          PreviousState: { Code: stateCodes[previous], Name: previous },
          CurrentState: { Code: stateCodes[instance.state], Name: instance.state },
        };
      }),
    };
  }

  private finishTermination(instance: Instance): void {
    instance.state = 'terminated';
    instance.terminatedAt = this.ctx.clock.date();
    for (const volumeId of [...instance.volumes]) {
      const volume = this.volumes.get(volumeId);
      const attachment = volume?.attachment;
      if (!volume || !attachment) continue;
      attachment.cancel?.();
      const deleteIt = attachment.deleteOnTermination;
      this.finishDetach(volume, attachment);
      if (deleteIt) this.startDeletion(volume);
    }
    instance.volumes.clear();
    this.materialize(instance.id);
    this.changed(instance.id, 'terminated');
  }

  // ---------------------------------------------------------------- tags

  private createTags(input: CreateTagsRequest): object {
    const resources = required(input.Resources, 'ResourceId');
    const tags = required(input.Tags, 'Tag');
    for (const t of tags) {
      if (t.Key?.startsWith('aws:'))
        fail('InvalidParameterValue', "Tag keys starting with 'aws:' are reserved for internal use");
    }
    const targets = resources.map((id) => this.taggable(id));
    for (const target of targets) {
      const keys = new Set([...target.keys(), ...tags.map((t) => t.Key ?? '')]);
      if (keys.size > 50)
        fail('TagLimitExceeded', 'The maximum number of Tags for a resource has been reached.');
    }
    for (const target of targets)
      for (const t of tags) if (t.Key !== undefined) target.set(t.Key, t.Value ?? '');
    this.ctx.notify();
    return {};
  }

  private deleteTags(input: DeleteTagsRequest): object {
    const targets = required(input.Resources, 'ResourceId').map((id) => this.taggable(id));
    for (const target of targets) {
      if (!input.Tags) {
        for (const key of [...target.keys()]) if (!key.startsWith('aws:')) target.delete(key);
        continue;
      }
      for (const t of input.Tags) {
        if (t.Key === undefined) continue;
        if (t.Value === undefined || target.get(t.Key) === t.Value) target.delete(t.Key);
      }
    }
    this.ctx.notify();
    return {};
  }

  private taggable(id: string): Map<string, string> {
    if (id.startsWith('vol-')) return this.volume(id).tags;
    if (id.startsWith('i-')) return this.instance(id).tags;
    if (id.startsWith('snap-')) return this.snapshot(id).tags;
    return fail('InvalidID', `The ID '${id}' is not valid`);
  }

  // ---------------------------------------------------------------- snapshots

  private createSnapshot(input: CreateSnapshotRequest): Ec2Snapshot {
    const volume = this.volume(required(input.VolumeId, 'VolumeId'));
    if (volume.state !== 'available' && volume.state !== 'in-use') {
      fail('IncorrectState', `Volume '${volume.id}' is in the '${volume.state}' state.`);
    }
    const pending = [...this.snapshots.values()].filter(
      (s) => s.volumeId === volume.id && s.state === 'pending',
    );
    const maxPending = volume.type === 'st1' || volume.type === 'sc1' ? 1 : 5;
    if (pending.length >= maxPending) {
      fail(
        'ConcurrentSnapshotLimitExceeded',
        `The maximum number of concurrent snapshots for volume '${volume.id}' (${maxPending}) has been reached.`,
      );
    }
    const now = this.ctx.clock.now();
    if (volume.lastSnapshotAt !== undefined && now - volume.lastSnapshotAt < 15) {
      fail(
        'SnapshotCreationPerVolumeRateExceeded',
        'The maximum per volume CreateSnapshot request rate has been exceeded. Use an increasing or variable sleep interval between requests.',
      );
    }
    volume.lastSnapshotAt = now;
    const snapshot: Snapshot = {
      id: `snap-${this.ctx.ids.hex(17)}`,
      volumeId: volume.id,
      volumeSize: volume.size,
      state: 'pending',
      startTime: this.ctx.clock.date(),
      description: input.Description ?? '',
      encrypted: volume.encrypted,
      kmsKeyId: volume.kmsKeyId,
      tags: tagsFromSpecifications(input.TagSpecifications, 'snapshot'),
      visibleFrom: this.ctx.visibleFrom(),
      // A root volume holds no pool content; a data volume holds the scenario's content.
      dataGiB: volume.root ? 0 : this.contentGiB,
    };
    // The snapshot is point-in-time: the tree is captured now, while the API call runs.
    const dataDir = this.ctx.snapshotDataDir(snapshot.id);
    mkdirSync(dataDir, { recursive: true });
    cpSync(this.ctx.volumeDataDir(volume.id), dataDir, {
      recursive: true,
      preserveTimestamps: true,
      verbatimSymlinks: true,
      force: true,
    });
    this.snapshots.set(snapshot.id, snapshot);
    snapshot.cancel = this.ctx.clock.setTimer(this.ctx.delay(this.ctx.latency.snapshot), () => {
      snapshot.state = 'completed';
      this.ctx.notify();
    });
    this.ctx.notify();
    return this.describeSnapshot(snapshot);
  }

  private describeSnapshots(input: DescribeSnapshotsRequest): {
    Snapshots: Ec2Snapshot[];
    NextToken?: string;
  } {
    let items = [...this.snapshots.values()].filter((s) => this.visible(s));
    if (input.SnapshotIds?.length) {
      const missing = input.SnapshotIds.filter((id) => !this.visible(this.snapshots.get(id)));
      if (missing.length)
        fail('InvalidSnapshot.NotFound', `The snapshot '${missing.join(', ')}' does not exist.`);
      const wanted = new Set(input.SnapshotIds);
      items = items.filter((s) => wanted.has(s.id));
    }
    if (input.OwnerIds?.length && !input.OwnerIds.some((o) => o === 'self' || o === this.ctx.accountId))
      items = [];
    const known = new Set([
      'tag-key',
      'tag-value',
      'status',
      'volume-id',
      'snapshot-id',
      'owner-id',
      'description',
      'encrypted',
      'volume-size',
      'progress',
    ]);
    items = applyFilters(items, input.Filters, known, (name, s) => {
      switch (name) {
        case 'status':
          return [s.state];
        case 'volume-id':
          return [s.volumeId];
        case 'snapshot-id':
          return [s.id];
        case 'owner-id':
          return [this.ctx.accountId];
        case 'description':
          return [s.description];
        case 'encrypted':
          return [String(s.encrypted)];
        case 'volume-size':
          return [String(s.volumeSize)];
        case 'progress':
          return [s.state === 'completed' ? '100%' : '0%'];
        default:
          return tagFilter(name, s.tags);
      }
    });
    const { page, nextToken } = paginate(items, {
      maxResults: input.MaxResults,
      nextToken: input.NextToken,
      defaultSize: Number.POSITIVE_INFINITY,
      min: 5,
      max: 1000,
      badTokenCode: 'InvalidParameterValue',
    });
    return {
      Snapshots: page.map((s) => this.describeSnapshot(s)),
      ...(nextToken ? { NextToken: nextToken } : {}),
    };
  }

  private describeSnapshot(s: Snapshot): Ec2Snapshot {
    return withTags(
      {
        SnapshotId: s.id,
        VolumeId: s.volumeId,
        State: s.state,
        StartTime: s.startTime,
        Progress: s.state === 'completed' ? '100%' : '0%',
        OwnerId: this.ctx.accountId,
        Description: s.description,
        VolumeSize: s.volumeSize,
        Encrypted: s.encrypted,
        ...(s.kmsKeyId ? { KmsKeyId: s.kmsKeyId } : {}),
        StorageTier: 'standard',
      },
      s.tags,
    );
  }

  private deleteSnapshot(input: DeleteSnapshotRequest): object {
    const snapshot = this.snapshot(required(input.SnapshotId, 'SnapshotId'));
    const user = [...this.volumes.values()].find(
      (v) => v.snapshotId === snapshot.id && v.state === 'creating',
    );
    if (user) fail('InvalidSnapshot.InUse', `The snapshot ${snapshot.id} is currently in use by ${user.id}`);
    snapshot.cancel?.();
    this.snapshots.delete(snapshot.id);
    this.ctx.track(rm(this.ctx.snapshotDataDir(snapshot.id), { recursive: true, force: true }));
    this.ctx.notify();
    return {};
  }

  // ---------------------------------------------------------------- lookups

  /** Describe* and every API call know a resource from its `visibleFrom` on (eventual consistency). */
  private visible(r: { visibleFrom: number } | undefined): boolean {
    return r !== undefined && r.visibleFrom <= this.ctx.clock.now();
  }

  private volume(id: string): Volume {
    const v = this.volumes.get(id);
    if (!v || !this.visible(v)) {
      if (!/^vol-[0-9a-f]+$/.test(id))
        fail('InvalidParameterValue', `Invalid id: "${id}" (expecting "vol-...")`);
      fail('InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
    }
    return v;
  }

  private instance(id: string): Instance {
    const i = this.instances.get(id);
    if (!i || !this.visible(i)) {
      if (!/^i-[0-9a-f]+$/.test(id)) fail('InvalidInstanceID.Malformed', `Invalid id: "${id}"`);
      fail('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
    }
    return i;
  }

  /** An instance by id, whether or not the API knows it yet (for the simulator's own helpers). */
  private known(id: string): Instance {
    const i = this.instances.get(id);
    if (!i) throw new RangeError(`unknown instance ${id}`);
    return i;
  }

  private snapshot(id: string): Snapshot {
    const s = this.snapshots.get(id);
    if (!s || !this.visible(s)) {
      if (!/^snap-[0-9a-f]+$/.test(id))
        fail('InvalidSnapshotID.Malformed', `Invalid id: "${id}" (expecting "snap-...")`);
      fail('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`);
    }
    return s;
  }

  private defaultKmsKey(): string {
    return `arn:aws:kms:${this.ctx.region}:${this.ctx.accountId}:key/00000000-0000-4000-8000-00000000ebs0`;
  }

  private changed(instanceId: string, event: InstanceEvent): void {
    for (const listener of this.listeners) listener(instanceId, event);
    // EventBridge "EC2 Instance State-change Notification" for the EC2 states among these (EC2 user
    // guide, "EC2 instance state change events"); OS boot and agent registration are not EC2 states.
    if (event === 'running' || event === 'shutting-down' || event === 'terminated') {
      this.ctx.emit(
        this.ctx.envelope(
          'aws.ec2',
          'EC2 Instance State-change Notification',
          [`arn:aws:ec2:${this.ctx.region}:${this.ctx.accountId}:instance/${instanceId}`],
          { 'instance-id': instanceId, state: event },
        ),
      );
    }
    this.ctx.notify();
  }
}
