/**
 * EBS Elastic Volumes in the simulator: `ModifyVolume` (size only; type, IOPS and throughput are
 * refused as not modelled) and `DescribeVolumesModifications`, with the rules AWS applies. Sources:
 * - States `modifying` -> `optimizing` -> `completed` (and `failed`, not injected here): EBS User Guide,
 *   "Monitor the progress of Amazon EBS volume modifications"; the enum `VolumeModificationState` in
 *   botocore's ec2 service-2.json (2016-11-15).
 * - "Size increases take effect once the volume modification reaches the optimizing state, which
 *   usually takes a few seconds" (same page), and the file system can be extended "as soon as the volume
 *   enters the optimizing state" (EBS User Guide, "Extend the file system after resizing"): the size the
 *   OS sees (`/sys/block/<dev>/size`, written by `devices.ts`) and the `Size` DescribeVolumes answers
 *   change when `optimizing` starts, not at the call.
 * - The target size must be at least the current size (botocore, ModifyVolumeRequest.Size: "greater than
 *   or equal to the existing size"); a smaller one is `InvalidParameterValue` (message assumed).
 * - One modification per volume per 6 hours: `VolumeModificationRateExceeded`, "You've reached the maximum
 *   modification rate per volume limit. Wait at least 6 hours between modifications per EBS volume." (the
 *   real answer, quoted in sodafoundation/strato issue #1094). Since January 2026 AWS documents "up to four
 *   times within a rolling 24-hour period ... as long as all previous modifications for that volume are
 *   completed" (botocore's ModifyVolume documentation; supabase/supabase PR #44071): every sequence the
 *   6-hour rule allows, that rule allows too, so the simulator keeps the 6-hour rule (the harsher).
 * - A volume whose last modification is not `completed` (or `failed`) cannot be modified again:
 *   `IncorrectModificationState`, "Volume vol-... cannot be modified in modification state OPTIMIZING"
 *   (the text seen in public operation logs; kubernetes-sigs/aws-ebs-csi-driver PR #1833 says a volume in
 *   optimizing "cannot be modified"). Checked before the 6-hour rule.
 * - The volume must be `available` or `in-use` (botocore's documentation of ModifyVolume); else
 *   `IncorrectState`.
 * Durations (`latency.volumeModifying`, `latency.volumeOptimizing`) are assumed: "a few seconds" to
 * optimizing, minutes to complete.
 */
import type {
  DescribeVolumesModificationsRequest,
  ModifyVolumeRequest,
  VolumeModification,
} from '@aws-sdk/client-ec2';
import type { SimContext } from './context.js';
import { fail } from './errors.js';
import { applyFilters, paginate, required } from './util.js';

/** Modification states (botocore `VolumeModificationState`). */
export type ModificationState = 'modifying' | 'optimizing' | 'completed' | 'failed';

/** Modelled seconds between two modifications of one volume (the 6-hour rule). */
export const modificationCooldownSeconds = 6 * 3600;

/** Largest size per volume type, GiB (botocore, ModifyVolumeRequest.Size). */
const maxSizeGiB: Record<string, number> = {
  gp2: 16384,
  gp3: 65536,
  io1: 16384,
  io2: 65536,
  st1: 16384,
  sc1: 16384,
  standard: 1024,
};

/** What the modifier needs of a volume (the Ec2Sim's own record). */
export interface ModifiableVolume {
  id: string;
  size: number;
  type: string;
  iops?: number;
  throughput?: number;
  state: string;
  root: boolean;
}

interface Modification {
  volumeId: string;
  state: ModificationState;
  originalSize: number;
  targetSize: number;
  volumeType: string;
  iops?: number;
  throughput?: number;
  startTime: Date;
  /** Modelled time of the call (the 6-hour rule counts from it). */
  startedAt: number;
  endTime?: Date;
  progress: number;
  cancel?: () => void;
}

/** A plain view of a modification, for tests and scenarios. */
export interface ModificationView {
  volumeId: string;
  state: ModificationState;
  originalSize: number;
  targetSize: number;
  startTime: string;
}

/**
 * The volume modifications of one EC2 model. `lookup` resolves a volume as the API does (NotFound
 * before it is known); `resized` is called when a size takes effect, so the hosts' view is rewritten.
 */
export class VolumeModifier {
  /** Every modification per volume, oldest first (DescribeVolumesModifications answers them all). */
  private readonly history = new Map<string, Modification[]>();

  constructor(
    private readonly ctx: SimContext,
    private readonly lookup: (volumeId: string) => ModifiableVolume,
    private readonly all: () => Iterable<ModifiableVolume>,
    private readonly resized: (volume: ModifiableVolume) => void,
  ) {}

  /** ModifyVolume (size only). */
  modifyVolume(input: ModifyVolumeRequest): { VolumeModification: VolumeModification } {
    const volume = this.lookup(required(input.VolumeId, 'VolumeId'));
    if (input.VolumeType !== undefined || input.Iops !== undefined || input.Throughput !== undefined) {
      fail('InvalidParameterValue', 'The simulator models ModifyVolume of Size only.');
    }
    if (input.MultiAttachEnabled !== undefined) {
      fail('InvalidParameterValue', 'The simulator models ModifyVolume of Size only.');
    }
    if (input.Size === undefined) {
      fail(
        'InvalidParameterValue',
        'Invalid input: Must specify at least one of size, type, iops, throughput, multi_attach_enabled',
      );
    }
    if (volume.state !== 'available' && volume.state !== 'in-use') {
      fail('IncorrectState', `Volume ${volume.id} must be in the available or in-use state to be modified.`);
    }
    const list = this.history.get(volume.id) ?? [];
    const last = list[list.length - 1];
    if (last && last.state !== 'completed' && last.state !== 'failed') {
      fail(
        'IncorrectModificationState',
        `Volume ${volume.id} cannot be modified in modification state ${last.state.toUpperCase()}`,
      );
    }
    if (last && this.ctx.clock.now() - last.startedAt < modificationCooldownSeconds) {
      fail(
        'VolumeModificationRateExceeded',
        "You've reached the maximum modification rate per volume limit. Wait at least 6 hours between modifications per EBS volume.",
      );
    }
    const size = input.Size;
    if (!Number.isInteger(size) || size < volume.size) {
      fail(
        'InvalidParameterValue',
        `New size ${size} GiB for volume ${volume.id} is smaller than its current size ${volume.size} GiB; a volume cannot shrink.`,
      );
    }
    const max = maxSizeGiB[volume.type] ?? 16384;
    if (size > max) fail('InvalidParameterValue', `Volume of ${size}GiB is out of range for ${volume.type}.`);
    if (size === volume.size) {
      // AWS refuses a modification that changes nothing (message assumed).
      fail('InvalidParameterValue', `New size ${size} GiB is the volume's current size: nothing to modify.`);
    }
    const m: Modification = {
      volumeId: volume.id,
      state: 'modifying',
      originalSize: volume.size,
      targetSize: size,
      volumeType: volume.type,
      ...(volume.iops !== undefined ? { iops: volume.iops } : {}),
      ...(volume.throughput !== undefined ? { throughput: volume.throughput } : {}),
      startTime: this.ctx.clock.date(),
      startedAt: this.ctx.clock.now(),
      progress: 0,
    };
    list.push(m);
    this.history.set(volume.id, list);
    m.cancel = this.ctx.clock.setTimer(this.ctx.delay(this.ctx.latency.volumeModifying), () => {
      m.state = 'optimizing';
      m.progress = 10;
      // Size increases take effect at optimizing: the volume and every host view of it grow now.
      volume.size = m.targetSize;
      this.resized(volume);
      m.cancel = this.ctx.clock.setTimer(this.ctx.delay(this.ctx.latency.volumeOptimizing), () => {
        m.state = 'completed';
        m.progress = 100;
        m.endTime = this.ctx.clock.date();
        this.ctx.notify();
      });
      this.ctx.notify();
    });
    this.ctx.notify();
    return { VolumeModification: this.output(m) };
  }

  /** DescribeVolumesModifications: every modification of the volumes named (or of all), filtered. */
  describeVolumesModifications(input: DescribeVolumesModificationsRequest): {
    VolumesModifications: VolumeModification[];
    NextToken?: string;
  } {
    let items: Modification[];
    if (input.VolumeIds?.length) {
      items = input.VolumeIds.flatMap((id) => {
        this.lookup(id); // InvalidVolume.NotFound as EC2 answers
        return this.history.get(id) ?? [];
      });
    } else {
      const known = new Set([...this.all()].map((v) => v.id));
      items = [...this.history.entries()].filter(([id]) => known.has(id)).flatMap(([, list]) => list);
    }
    const names = new Set([
      'modification-state',
      'original-size',
      'target-size',
      'original-volume-type',
      'target-volume-type',
      'original-iops',
      'target-iops',
      'start-time',
      'volume-id',
    ]);
    items = applyFilters(items, input.Filters, names, (name, m) => {
      switch (name) {
        case 'modification-state':
          return [m.state];
        case 'original-size':
          return [String(m.originalSize)];
        case 'target-size':
          return [String(m.targetSize)];
        case 'original-volume-type':
        case 'target-volume-type':
          return [m.volumeType];
        case 'original-iops':
        case 'target-iops':
          return [m.iops === undefined ? undefined : String(m.iops)];
        case 'start-time':
          return [m.startTime.toISOString()];
        case 'volume-id':
          return [m.volumeId];
        default:
          return [];
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
      VolumesModifications: page.map((m) => this.output(m)),
      ...(nextToken ? { NextToken: nextToken } : {}),
    };
  }

  /** Plain views of every modification, oldest first (ground truth for tests). */
  view(): ModificationView[] {
    return [...this.history.values()].flat().map((m) => ({
      volumeId: m.volumeId,
      state: m.state,
      originalSize: m.originalSize,
      targetSize: m.targetSize,
      startTime: m.startTime.toISOString(),
    }));
  }

  /** Cancels every pending transition. */
  close(): void {
    for (const list of this.history.values()) for (const m of list) m.cancel?.();
  }

  private output(m: Modification): VolumeModification {
    return {
      VolumeId: m.volumeId,
      ModificationState: m.state,
      TargetSize: m.targetSize,
      OriginalSize: m.originalSize,
      TargetVolumeType: m.volumeType as VolumeModification['TargetVolumeType'],
      OriginalVolumeType: m.volumeType as VolumeModification['OriginalVolumeType'],
      ...(m.iops !== undefined ? { TargetIops: m.iops, OriginalIops: m.iops } : {}),
      ...(m.throughput !== undefined
        ? { TargetThroughput: m.throughput, OriginalThroughput: m.throughput }
        : {}),
      TargetMultiAttachEnabled: false,
      OriginalMultiAttachEnabled: false,
      Progress: m.progress,
      StartTime: m.startTime,
      ...(m.endTime ? { EndTime: m.endTime } : {}),
    };
  }
}
