/**
 * EBS volume initialization (lazy loading of a snapshot's blocks from S3), modelled on the modelled clock.
 *
 * Source: EBS User Guide, "Initialize Amazon EBS volumes" (and its "Monitor volume initialization"),
 * the EC2 API reference of CreateVolume (`VolumeInitializationRate`), DescribeVolumeStatus and
 * InitializationStatusDetails, cross-checked with botocore's `ec2/2016-11-15/service-2.json` (FACTS §8):
 * - a volume created from a snapshot must have its blocks downloaded before they read at full speed;
 *   **empty volumes need no initialization** (and DescribeVolumeStatus gives them no
 *   InitializationStatusDetails: "Not available for empty volumes created without a snapshot");
 * - the **default rate "fluctuates ... which could make completion times unpredictable"**. AWS gives no
 *   number. Model (assumed, conservative): piecewise constant, a rate drawn per window of
 *   `defaultWindowSeconds` in `defaultRateMiBps`, seeded by volume and window so concurrency does not
 *   change it. The range sits well below the 100 MiB/s floor AWS sells as the predictable alternative;
 *   the low end is the conservative choice (a slow default makes cold handoffs likelier, never rarer);
 * - a **provisioned rate** (`VolumeInitializationRate`, 100-300 MiB/s, snapshot-born volumes only)
 *   downloads at exactly that rate after creation: type `provisioned-rate`, with
 *   `EstimatedTimeToCompleteInSeconds` (only for that type);
 * - **reading every block on an attached host** (the guide's manual initialization with `dd` or `fio`)
 *   fetches the blocks at the volume's throughput: while a host reads, the rate is the larger of the
 *   volume's throughput and its download rate. The host's own EBS bandwidth is not modelled;
 * - DescribeVolumeStatus: "It can take up to 5 minutes for the volume initialization information to be
 *   updated". Model: the reported figures are refreshed at intervals drawn in `statusRefreshSeconds`
 *   (60-300 s, assumed; the upper end is AWS's bound), so Progress 100 can show up to 5 minutes late;
 * - what is initialized is the snapshot's data (`dataGiB`), not the volume's size: EBS stores and
 *   downloads only written blocks. The simulator's files are tiny; a scenario states the content's size
 *   (`CloudOptions.contentGiB`), which every snapshot takes as its data size.
 * Fast snapshot restore is not modelled (the project has no FSR feature; docs/decisions.md).
 */
import { hash32, Rng } from './rng.js';

/** The parameters of the initialization model (modelled seconds, MiB/s). */
export interface InitializationModel {
  /** Default (unprovisioned) download rate, drawn per window. Assumed, conservative (see above). */
  defaultRateMiBps: readonly [min: number, max: number];
  /** Length of one window of the fluctuating default rate. Assumed. */
  defaultWindowSeconds: number;
  /** Interval between refreshes of what DescribeVolumeStatus reports (AWS: "up to 5 minutes"). */
  statusRefreshSeconds: readonly [min: number, max: number];
}

/** Defaults of {@link InitializationModel}. */
export const defaultInitializationModel: Readonly<InitializationModel> = {
  defaultRateMiBps: [8, 40],
  defaultWindowSeconds: 60,
  statusRefreshSeconds: [60, 300],
};

/** CreateVolume's `VolumeInitializationRate` range (API reference: "Valid range: 100 - 300 MiB/s"). */
export const provisionedRateRange = { min: 100, max: 300 } as const;

/** InitializationStatusDetails.InitializationType values the model produces. */
export type InitializationType = 'default' | 'provisioned-rate';

/** What DescribeVolumeStatus reports for one volume (the SDK's InitializationStatusDetails shape). */
export interface InitializationStatus {
  InitializationType: InitializationType;
  Progress: number;
  EstimatedTimeToCompleteInSeconds?: number;
}

const MiB_PER_GiB = 1024;

/**
 * The initialization of one snapshot-born volume. Progress is integrated lazily: every query and every
 * change of readers first advances the state to `now`.
 */
export class VolumeInitialization {
  readonly type: InitializationType;
  readonly totalMiB: number;
  private doneMiB = 0;
  /** Modelled time the download started (the volume became available); undefined before. */
  private startedAt?: number;
  private asOf = 0;
  /** Hosts reading every block now, with the throughput they read at. */
  private readonly readers = new Map<string, number>();
  private completedAtTime?: number;
  private stoppedAt?: number;
  /** DescribeVolumeStatus's view: refreshed at intervals. */
  private reported = { at: Number.NEGATIVE_INFINITY, progress: 0, doneMiB: 0 };
  private nextRefresh = 0;
  private refreshes = 0;

  constructor(
    readonly volumeId: string,
    dataGiB: number,
    private readonly model: Readonly<InitializationModel>,
    private readonly seed: number,
    /** VolumeInitializationRate, MiB/s. */
    readonly provisionedRate?: number,
  ) {
    this.type = provisionedRate === undefined ? 'default' : 'provisioned-rate';
    this.totalMiB = Math.max(0, dataGiB * MiB_PER_GiB);
  }

  /** The volume became available: blocks start to download. */
  start(now: number): void {
    if (this.startedAt !== undefined) return;
    this.startedAt = now;
    this.asOf = now;
    this.nextRefresh = now;
    if (this.totalMiB === 0) this.completedAtTime = now;
    this.advance(now);
  }

  /** The download rate with no reader, at modelled time `t` (MiB/s). */
  backgroundRate(t: number): number {
    if (this.provisionedRate !== undefined) return this.provisionedRate;
    const window = Math.floor((t - (this.startedAt ?? 0)) / this.model.defaultWindowSeconds);
    const [min, max] = this.model.defaultRateMiBps;
    const draw = new Rng(hash32(`${this.seed}:init-rate:${this.volumeId}:${window}`)).next();
    return min + (max - min) * draw;
  }

  private rateAt(t: number): number {
    const read = this.readers.size ? Math.max(...this.readers.values()) : 0;
    return Math.max(read, this.backgroundRate(t));
  }

  /** The end of the default-rate window holding `t`: always after `t` (floating point can land on a boundary). */
  private windowEnd(t: number): number {
    const start = this.startedAt ?? 0;
    const window = this.model.defaultWindowSeconds;
    const end = start + (Math.floor((t - start) / window) + 1) * window;
    return end > t ? end : end + window;
  }

  /**
   * Integrates the download from `asOf` to `now`, window by window, and takes DescribeVolumeStatus's
   * reports at their refresh times on the way (so a report shows the state of its own time).
   */
  private advance(at: number): void {
    if (this.startedAt === undefined) return;
    const now = Math.min(at, this.stoppedAt ?? at);
    for (;;) {
      if (this.nextRefresh <= this.asOf) {
        this.takeReport();
        continue;
      }
      if (this.asOf >= now) return;
      const until = Math.min(now, this.nextRefresh, this.windowEnd(this.asOf));
      if (this.completedAtTime === undefined) {
        const rate = this.rateAt(this.asOf);
        const left = this.totalMiB - this.doneMiB;
        if (rate * (until - this.asOf) >= left) {
          this.completedAtTime = this.asOf + left / rate;
          this.doneMiB = this.totalMiB;
        } else {
          this.doneMiB += rate * (until - this.asOf);
        }
      }
      this.asOf = until;
    }
  }

  private takeReport(): void {
    const complete = this.completedAtTime !== undefined;
    const exact = this.totalMiB === 0 ? 100 : (100 * this.doneMiB) / this.totalMiB;
    this.reported = {
      at: this.nextRefresh,
      progress: complete ? 100 : Math.min(99, Math.floor(exact)),
      doneMiB: this.doneMiB,
    };
    this.refreshes += 1;
    if (complete) {
      this.nextRefresh = Number.POSITIVE_INFINITY; // nothing left to report
      return;
    }
    const [min, max] = this.model.statusRefreshSeconds;
    const draw = new Rng(hash32(`${this.seed}:init-status:${this.volumeId}:${this.refreshes}`)).next();
    this.nextRefresh += min + (max - min) * draw;
  }

  /** Exact progress at `now`, 0-100 (ground truth, not what the API reports). */
  progress(now: number): number {
    this.advance(now);
    if (this.completedAtTime !== undefined) return 100;
    return this.totalMiB === 0 ? 100 : (100 * this.doneMiB) / this.totalMiB;
  }

  /** True once every block is downloaded (at `now`). */
  complete(now: number): boolean {
    return this.progress(now) >= 100;
  }

  /** Modelled time the volume became fully initialized, if it has by `now`. */
  completedAt(now: number): number | undefined {
    this.advance(now);
    return this.completedAtTime;
  }

  /** The volume is being deleted: nothing downloads after `now`. */
  stop(now: number): void {
    this.advance(now);
    this.stoppedAt ??= now;
  }

  /** True once the download started (the volume became available). */
  get started(): boolean {
    return this.startedAt !== undefined;
  }

  /** Seconds from `startedAt` to completion, if complete by `now`. */
  durationSeconds(now: number): number | undefined {
    const done = this.completedAt(now);
    return done === undefined || this.startedAt === undefined ? undefined : done - this.startedAt;
  }

  /**
   * Modelled seconds from `now` until complete if nothing changes (readers stay, the default rate
   * follows its windows). 0 when complete; Infinity before the download started.
   */
  secondsToComplete(now: number): number {
    this.advance(now);
    if (this.completedAtTime !== undefined) return 0;
    if (this.startedAt === undefined) return Number.POSITIVE_INFINITY;
    let t = now;
    let left = this.totalMiB - this.doneMiB;
    for (;;) {
      const windowEnd = this.windowEnd(t);
      const rate = this.rateAt(t);
      if (rate * (windowEnd - t) >= left) return t + left / rate - now;
      left -= rate * (windowEnd - t);
      t = windowEnd;
    }
  }

  /** A host starts reading every block at `throughputMiBps`. */
  startReading(now: number, instanceId: string, throughputMiBps: number): void {
    this.advance(now);
    this.readers.set(instanceId, throughputMiBps);
  }

  /** The host stopped reading (done, detached, gone). */
  stopReading(now: number, instanceId: string): void {
    this.advance(now);
    this.readers.delete(instanceId);
  }

  /**
   * What DescribeVolumeStatus answers at `now`: the state of the last refresh (see the model), with
   * EstimatedTimeToCompleteInSeconds for the provisioned rate only. Progress is a whole percentage,
   * 100 only once complete.
   */
  status(now: number): InitializationStatus {
    this.advance(now);
    const progress = this.reported.progress;
    const out: InitializationStatus = { InitializationType: this.type, Progress: progress };
    if (this.type === 'provisioned-rate' && this.provisionedRate !== undefined) {
      const left = (this.totalMiB - this.reported.doneMiB) / this.provisionedRate;
      const sinceReport = Math.max(0, now - this.reported.at);
      out.EstimatedTimeToCompleteInSeconds = progress >= 100 ? 0 : Math.max(1, Math.ceil(left - sinceReport));
    }
    return out;
  }
}
