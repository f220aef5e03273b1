import { Duration, Token } from 'aws-cdk-lib';
import { InstanceArchitecture, InstanceType } from 'aws-cdk-lib/aws-ec2';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { atRestDollarsPerMonth, gp3VolumeDollarsPerMonth } from '../lambdas/shared/adaptive-sizing.js';
import { defaultGrowThresholdPercent } from '../lambdas/shared/growth.js';
import { poolNameSchema } from '../lambdas/shared/validate.js';
import { defaultWorkerInstanceType } from './sync-workers.js';
import { maxIdlePerAzBound, resolveMaxWorkersPerAz, volumesPerWorker } from './worker-capacity.js';

/** What happens to a volume its instance gives back. */
export type ReleasePolicy = 'delete' | 'recycle';
/** Lifecycle result when acquire fails or times out. */
export type AcquireFailureResult = 'ABANDON' | 'CONTINUE';

/** The EBS volumes of the pool. */
export interface VolumeSpec {
  /**
   * Size in GiB (1..16384). Must hold the whole content tree with room to grow.
   * @default 20
   */
  readonly sizeGiB?: number;
  /**
   * Grow every pool volume (online: ModifyVolume, then xfs_growfs) once the content fills this share
   * of a volume, in percent (10..90). 80 leaves room for a push of a quarter of the content while
   * the growth waits out EBS's 6-hour rule between modifications (docs/decisions.md, "A pool that
   * grows with its content"). Raising `sizeGiB` grows every existing volume too.
   * @default 80
   */
  readonly growThresholdPercent?: number;
  /**
   * EBS volume type. gp3 only: baseline performance independent of size, cheapest per GiB.
   * @default 'gp3'
   */
  readonly type?: 'gp3';
  /**
   * Provisioned IOPS (3000..80000; above 3000 at most 500 per GiB). 3000 are included in the price.
   * @default 3000
   */
  readonly iops?: number;
  /**
   * Provisioned throughput in MiB/s (125..2000; above 125 at most 0.25 per provisioned IOPS).
   * 125 are included in the price.
   * @default 125
   */
  readonly throughputMiBps?: number;
  /**
   * Customer managed KMS key of the volumes and snapshots. The workflow permissions then include
   * its use through EC2 only.
   * @default the account's default EBS key (aws/ebs)
   */
  readonly kmsKey?: IKey;
  /**
   * The account's default EBS encryption key in this Region, when it is a customer managed key
   * (`aws ec2 get-ebs-default-kms-key-id`): volumes created without `kmsKey` use it, so the workflow
   * functions are allowed its use through EC2, and the sync workers' launches need it in their key
   * policy (`lib/volume-key.ts`). Also give it when `kmsKey` replaces it, while
   * snapshots made under it remain.
   * @default none: the default key is AWS managed (aws/ebs), which needs no permission
   */
  readonly accountDefaultKmsKey?: IKey;
}

/** How often the maintenance workflows run. */
export interface PoolSchedules {
  /**
   * Replenish: bring idle volumes per AZ back to the target (1 minute..1 day).
   * @default Duration.minutes(5)
   */
  readonly replenish?: Duration;
  /**
   * Snapshot: snapshot a current idle volume, prune beyond retention (1 hour..30 days).
   * @default Duration.hours(6)
   */
  readonly snapshot?: Duration;
  /**
   * Reconcile: compare EC2 with the table and repair drift (5 minutes..1 day).
   * @default Duration.minutes(15)
   */
  readonly reconcile?: Duration;
}

/** Rate control of the push fan-out's SSM SendCommand. */
export interface FanOutSettings {
  /**
   * Instances running Volsd-Sync at once: a count (e.g. 10) or a percentage (e.g. '25%'), as SSM
   * SendCommand's MaxConcurrency takes it (1-9999999 or 1%-100%, no leading zeros).
   * @default '25%'
   */
  readonly maxConcurrency?: number | string;
  /**
   * Failures after which SSM stops sending the push to more instances: a count or a percentage, as
   * SendCommand's MaxErrors takes it (0-9999999 or 0%-100%, no leading zeros).
   * @default '25%'
   */
  readonly maxErrors?: number | string;
}

/** Who may write to the push bucket, and how large a pushed object may be. */
export interface PushSettings {
  /**
   * IAM principals allowed to write (PutObject, DeleteObject, DeleteObjectVersion) to the push
   * bucket, besides the pool's own publisher role (`pool.push.publisherRole`), which is always
   * allowed. ARNs of roles or users as `aws:PrincipalArn` carries them (a role's ARN with its path,
   * never an assumed-role session ARN); `*` and `?` match as in `ArnLike`, e.g.
   * `arn:aws:iam::111122223333:role/ci-*`. The bucket policy denies every other principal of any
   * account, whatever its own IAM policies allow.
   * @default [] (only the publisher role)
   */
  readonly writerArns?: readonly string[];
  /**
   * Largest object a push may carry, in bytes (1 B..5 TiB). S3 bucket policies cannot limit the size
   * of a PutObject, so the fan-out refuses a larger key (reason `too-large`, reported like any
   * refused key) and makes no push for it.
   * @default 1 GiB (1073741824)
   */
  readonly maxObjectBytes?: number;
}

/** Default of {@link PushSettings.maxObjectBytes}: 1 GiB, far above a web asset, far below a volume. */
export const defaultMaxPushObjectBytes = 1024 ** 3;
/** S3's largest object: 5 TiB. */
const maxS3ObjectBytes = 5 * 1024 ** 4;

/** The settings of a pool that are plain values (no constructs): what the context file can carry. */
export interface PoolSettingsProps {
  /** Pool name: tags, SSM parameter path, hook and document names. `^[a-z][a-z0-9-]{0,31}$`. */
  readonly poolName: string;
  /**
   * Idle volumes kept ready in each AZ (0..1000). Each AZ runs as many sync workers as they need (a
   * worker holds its instance type's EBS attachment limit less its root volume: 26 on t4g.small);
   * replenish starts and retires workers as the target moves.
   * @default 2
   */
  readonly idlePerAz?: number;
  /**
   * Largest number of sync workers per AZ (their Auto Scaling group's maximum). Must hold the target.
   * @default as many as `idlePerAz` needs on `workerInstanceType`
   */
  readonly maxWorkersPerAz?: number;
  /**
   * Adaptive sizing: the idle target per AZ follows the served groups' launches (the 95th percentile of
   * the launches of the busiest AZ in the two hours starting at this time of day, over the past days)
   * within [minPerAz, maxPerAz] and never above the monthly at-rest budget. `idlePerAz` is then the
   * starting target. Replenish's schedule moves the target and explains each change (log, `IdleTarget`
   * metric, `volsd-client pool`).
   * @default off: the fixed `idlePerAz`
   */
  readonly adaptive?: AdaptiveSizingProps;
  /**
   * The pool's volumes.
   * @default 20 GiB gp3, 3000 IOPS, 125 MiB/s, encrypted with the account's default EBS key
   */
  readonly volume?: VolumeSpec;
  /**
   * Where the volume is mounted on a served instance: an absolute path outside system directories.
   * @default '/srv/volsd'
   */
  readonly mountPath?: string;
  /**
   * Mount options (comma separated, [a-z0-9_=,-]).
   * @default 'noatime'
   */
  readonly mountOptions?: string;
  /**
   * What happens to a released volume: 'delete' (a new one comes from the latest snapshot) or
   * 'recycle' (back to the sync worker for a full resync; saves a creation, costs a resync).
   * @default 'delete'
   */
  readonly releasePolicy?: ReleasePolicy;
  /**
   * Launch lifecycle result when acquire fails or times out: ABANDON (replace the instance) or
   * CONTINUE (serve without a volume).
   * @default 'ABANDON'
   */
  readonly acquireFailureResult?: AcquireFailureResult;
  /**
   * Lifecycle hook heartbeat timeout (30 s..2 h). Acquire sends heartbeats if it needs longer.
   * @default Duration.minutes(10)
   */
  readonly heartbeatTimeout?: Duration;
  /**
   * How often the maintenance workflows run.
   * @default replenish 5 min, snapshot 6 h, reconcile 15 min
   */
  readonly schedules?: PoolSchedules;
  /**
   * Completed snapshots kept (1..100); older ones are deleted unless a creating volume uses them.
   * @default 3
   */
  readonly snapshotRetention?: number;
  /**
   * When an AZ has no idle volume, the acquire creates one from the latest snapshot straight for the
   * instance (attached there, brought current by a delta sync) instead of waiting for the pool to be
   * replenished. Needs a snapshot; without one the acquire waits. Costs nothing at rest.
   * @default true
   */
  readonly directCreate?: boolean;
  /**
   * How a pool volume made from a snapshot is fully initialized (its blocks loaded from S3) before it
   * is marked IDLE: `provisioned-rate` creates it with a VolumeInitializationRate (predictable time,
   * billed per GiB), `default-rate` waits for EBS's own lazy loading (free, unpredictable). The pool
   * never hands out a volume before DescribeVolumeStatus reports it initialized (docs/decisions.md,
   * "Warm volumes").
   * @default { method: 'provisioned-rate', rateMiBps: 300 }
   */
  readonly initialization?: InitializationSettings;
  /**
   * A directly created volume is still initializing when the instance could go InService: `hold` keeps
   * the launch in Pending:Wait (with lifecycle heartbeats) until it is initialized, at most one hour;
   * `continue` lets the instance serve at once from a slower, lazily loading volume. Counted either way
   * (metrics ColdHandoffs, InitializationHeldSeconds).
   * @default 'hold'
   */
  readonly coldDirectVolume?: 'hold' | 'continue';
  /**
   * Rate control of the push fan-out.
   * @default maxConcurrency '25%', maxErrors '25%'
   */
  readonly fanOut?: FanOutSettings;
  /**
   * Writers of the push bucket and the push object size limit.
   * @default only the pool's publisher role writes; objects up to 1 GiB
   */
  readonly push?: PushSettings;
  /**
   * Instance type of the sync workers; must be arm64 (Graviton).
   * @default t4g.small
   */
  readonly workerInstanceType?: InstanceType;
}

/** How snapshot-born volumes are initialized (see {@link PoolSettingsProps.initialization}). */
export type InitializationMethod = 'provisioned-rate' | 'default-rate';

/** {@link PoolSettingsProps.initialization}. */
export interface InitializationSettings {
  /** @default 'provisioned-rate' */
  readonly method?: InitializationMethod;
  /** VolumeInitializationRate for `provisioned-rate`, MiB/s, 100..300 (CreateVolume's range). @default 300 */
  readonly rateMiBps?: number;
}

/** Adaptive sizing of the idle target (see {@link PoolSettingsProps.adaptive}). */
export interface AdaptiveSizingProps {
  /** Smallest target per AZ. */
  readonly minPerAz: number;
  /** Largest target per AZ (the worker groups are sized for it). */
  readonly maxPerAz: number;
  /** Monthly at-rest budget in dollars: idle volumes, sync workers and their root volumes (docs/cost.md). */
  readonly budgetDollarsPerMonth: number;
  /** Past days whose launches count. @default 7 */
  readonly lookbackDays?: number;
  /**
   * One sync worker a month with its root volume, in dollars.
   * @default 13.54 for t4g.small ($0.0168/h x 730 h + 16 GiB gp3 root); required for another type
   */
  readonly workerDollarsPerMonth?: number;
}

/** t4g.small a month (730 h at $0.0168) with its 16 GiB gp3 root volume ($0.08/GB-month). */
const t4gSmallWorkerDollarsPerMonth = 13.54;

/** {@link PoolSettingsProps} with every default applied: what the workflows are configured with. */
export interface PoolSettings {
  readonly poolName: string;
  readonly idlePerAz: number;
  readonly volume: Required<Omit<VolumeSpec, 'kmsKey' | 'accountDefaultKmsKey'>> & {
    readonly kmsKey?: IKey;
    readonly accountDefaultKmsKey?: IKey;
  };
  readonly mountPath: string;
  readonly mountOptions: string;
  readonly releasePolicy: ReleasePolicy;
  readonly acquireFailureResult: AcquireFailureResult;
  readonly heartbeatTimeout: Duration;
  readonly schedules: Required<PoolSchedules>;
  readonly snapshotRetention: number;
  readonly directCreate: boolean;
  readonly initialization: { readonly method: InitializationMethod; readonly rateMiBps: number };
  readonly coldDirectVolume: 'hold' | 'continue';
  readonly fanOut: { readonly maxConcurrency: string; readonly maxErrors: string };
  readonly push: { readonly writerArns: readonly string[]; readonly maxObjectBytes: number };
  readonly workerInstanceType: InstanceType;
  readonly maxWorkersPerAz: number;
  readonly adaptive?: Required<AdaptiveSizingProps>;
}

/** Invalid pool configuration: every problem found, one per line. */
export class VolsdConfigError extends Error {
  override name = 'VolsdConfigError';
  constructor(
    poolName: string,
    public readonly problems: readonly string[],
  ) {
    super(`Invalid Volsd pool "${poolName}":\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Directories a pool volume must never be mounted over (or under). */
const systemDirectories = [
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/lib',
  '/lib64',
  '/proc',
  '/root',
  '/run',
  '/sbin',
  '/sys',
  '/usr',
  '/var/lib',
  '/tmp',
];
// Same as the MountPath parameter of Volsd-Mount (lambdas/shared/documents.ts): no hidden or dot segments.
const mountPathPattern = /^(?:\/[A-Za-z0-9_][A-Za-z0-9._-]*)+$/;
// What aws:PrincipalArn holds for an IAM principal: a role or user ARN (path included), or the root.
const writerArnPattern = /^arn:aws[a-z-]*:iam::\d{12}:(?:root|(?:role|user)\/[\w+=,.@/*?-]+)$/;
// The workflow functions accept [a-z0-9=,_-] (lambdas/shared/workflow-config.ts).
const mountOptionsPattern = /^[a-z0-9_=-]+(?:,[a-z0-9_=-]+)*$/;
// SSM's own patterns and length for SendCommand's MaxConcurrency and MaxErrors (the service model):
// no leading zeros, at most 7 characters. Anything else passes synth and fails every push.
const maxConcurrencyPattern = /^(?:[1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$/;
const maxErrorsPattern = /^(?:[1-9][0-9]*|0|[1-9][0-9]%|[0-9]%|100%)$/;
const maxRateLength = 7;

const isSet = (value: number): boolean => !Token.isUnresolved(value);

function checkInteger(
  problems: string[],
  name: string,
  value: number,
  min: number,
  max: number,
  why = '',
): void {
  if (!isSet(value)) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.push(`${name} must be an integer in ${min}..${max}${why}, got ${value}`);
  }
}

function checkDuration(
  problems: string[],
  name: string,
  value: Duration,
  min: Duration,
  max: Duration,
): void {
  if (value.isUnresolved()) return;
  const seconds = value.toSeconds();
  if (seconds < min.toSeconds() || seconds > max.toSeconds()) {
    problems.push(
      `${name} must be between ${min.toHumanString()} and ${max.toHumanString()}, got ${value.toHumanString()}`,
    );
  }
}

function checkRate(problems: string[], name: string, value: string, allowZero: boolean): void {
  const min = allowZero ? 0 : 1;
  const pattern = allowZero ? maxErrorsPattern : maxConcurrencyPattern;
  if (!pattern.test(value) || value.length > maxRateLength) {
    problems.push(
      `${name} must be a count >= ${min} or a percentage ${min}%..100%, without leading zeros, at most ${maxRateLength} characters (SSM SendCommand), got "${value}"`,
    );
  }
}

/**
 * Applies the defaults to `props` and validates every value, so a bad configuration fails at synth
 * with all its problems listed instead of at deploy or, worse, at the first scale-out.
 * @throws VolsdConfigError listing every problem
 */
export function resolvePoolSettings(props: PoolSettingsProps): PoolSettings {
  const settings: PoolSettings = {
    poolName: props.poolName,
    idlePerAz: props.idlePerAz ?? 2,
    volume: {
      sizeGiB: props.volume?.sizeGiB ?? 20,
      growThresholdPercent: props.volume?.growThresholdPercent ?? defaultGrowThresholdPercent,
      type: props.volume?.type ?? 'gp3',
      iops: props.volume?.iops ?? 3000,
      throughputMiBps: props.volume?.throughputMiBps ?? 125,
      kmsKey: props.volume?.kmsKey,
      accountDefaultKmsKey: props.volume?.accountDefaultKmsKey,
    },
    mountPath: props.mountPath ?? '/srv/volsd',
    mountOptions: props.mountOptions ?? 'noatime',
    releasePolicy: props.releasePolicy ?? 'delete',
    acquireFailureResult: props.acquireFailureResult ?? 'ABANDON',
    heartbeatTimeout: props.heartbeatTimeout ?? Duration.minutes(10),
    schedules: {
      replenish: props.schedules?.replenish ?? Duration.minutes(5),
      snapshot: props.schedules?.snapshot ?? Duration.hours(6),
      reconcile: props.schedules?.reconcile ?? Duration.minutes(15),
    },
    snapshotRetention: props.snapshotRetention ?? 3,
    directCreate: props.directCreate ?? true,
    initialization: {
      method: props.initialization?.method ?? 'provisioned-rate',
      rateMiBps: props.initialization?.rateMiBps ?? 300,
    },
    coldDirectVolume: props.coldDirectVolume ?? 'hold',
    fanOut: {
      maxConcurrency: String(props.fanOut?.maxConcurrency ?? '25%'),
      maxErrors: String(props.fanOut?.maxErrors ?? '25%'),
    },
    push: {
      writerArns: [...(props.push?.writerArns ?? [])],
      maxObjectBytes: props.push?.maxObjectBytes ?? defaultMaxPushObjectBytes,
    },
    workerInstanceType: props.workerInstanceType ?? new InstanceType(defaultWorkerInstanceType),
    maxWorkersPerAz: props.maxWorkersPerAz ?? 1,
  };

  const problems: string[] = [];
  if (!poolNameSchema.safeParse(settings.poolName).success) {
    problems.push(
      `poolName must match ^[a-z][a-z0-9-]{0,31}$ (it names tags, parameters and documents), got "${settings.poolName}"`,
    );
  }
  checkInteger(problems, 'idlePerAz', settings.idlePerAz, 0, maxIdlePerAzBound);

  const { sizeGiB, type, iops, throughputMiBps } = settings.volume;
  if (type !== 'gp3') problems.push(`volume.type must be 'gp3', got "${type}"`);
  checkInteger(problems, 'volume.sizeGiB', sizeGiB, 1, 16384);
  checkInteger(problems, 'volume.growThresholdPercent', settings.volume.growThresholdPercent, 10, 90);
  checkInteger(problems, 'volume.iops', iops, 3000, 80000, ' (gp3)');
  checkInteger(problems, 'volume.throughputMiBps', throughputMiBps, 125, 2000, ' (gp3)');
  if (isSet(iops) && isSet(sizeGiB) && iops > 3000 && iops > 500 * sizeGiB) {
    problems.push(
      `volume.iops above 3000 may be at most 500 per GiB (${500 * sizeGiB} for ${sizeGiB} GiB), got ${iops}`,
    );
  }
  if (isSet(iops) && isSet(throughputMiBps) && throughputMiBps > 125 && throughputMiBps > iops / 4) {
    problems.push(
      `volume.throughputMiBps above 125 may be at most 0.25 per IOPS (${iops / 4} for ${iops} IOPS), got ${throughputMiBps}`,
    );
  }

  const { mountPath, mountOptions } = settings;
  if (!mountPathPattern.test(mountPath) || mountPath.length > 200) {
    problems.push(
      `mountPath must be an absolute path of at most 200 characters, each segment [A-Za-z0-9_][A-Za-z0-9._-]*, got "${mountPath}"`,
    );
  } else if (systemDirectories.some((dir) => mountPath === dir || mountPath.startsWith(`${dir}/`))) {
    problems.push(
      `mountPath must not be in a system directory (${systemDirectories.join(' ')}), got "${mountPath}"`,
    );
  }
  if (!mountOptionsPattern.test(mountOptions)) {
    problems.push(`mountOptions must be comma-separated options of [a-z0-9_=-], got "${mountOptions}"`);
  }
  if (settings.releasePolicy !== 'delete' && settings.releasePolicy !== 'recycle') {
    problems.push(`releasePolicy must be 'delete' or 'recycle', got "${settings.releasePolicy}"`);
  }
  if (settings.acquireFailureResult !== 'ABANDON' && settings.acquireFailureResult !== 'CONTINUE') {
    problems.push(
      `acquireFailureResult must be 'ABANDON' or 'CONTINUE', got "${settings.acquireFailureResult}"`,
    );
  }
  checkDuration(
    problems,
    'heartbeatTimeout',
    settings.heartbeatTimeout,
    Duration.seconds(30),
    Duration.seconds(7200),
  );
  if (!settings.heartbeatTimeout.isUnresolved() && settings.heartbeatTimeout.toSeconds() % 1 !== 0) {
    problems.push('heartbeatTimeout must be whole seconds');
  }
  const { replenish, snapshot, reconcile } = settings.schedules;
  checkDuration(problems, 'schedules.replenish', replenish, Duration.minutes(1), Duration.days(1));
  checkDuration(problems, 'schedules.snapshot', snapshot, Duration.hours(1), Duration.days(30));
  checkDuration(problems, 'schedules.reconcile', reconcile, Duration.minutes(5), Duration.days(1));
  for (const [name, rate] of Object.entries(settings.schedules)) {
    if (!rate.isUnresolved() && rate.toSeconds() % 60 !== 0) {
      problems.push(
        `schedules.${name} must be whole minutes (an EventBridge rate), got ${rate.toHumanString()}`,
      );
    }
  }
  checkInteger(problems, 'snapshotRetention', settings.snapshotRetention, 1, 100);
  if (
    settings.initialization.method !== 'provisioned-rate' &&
    settings.initialization.method !== 'default-rate'
  ) {
    problems.push(
      `initialization.method must be 'provisioned-rate' or 'default-rate', got "${settings.initialization.method}"`,
    );
  }
  checkInteger(
    problems,
    'initialization.rateMiBps',
    settings.initialization.rateMiBps,
    100,
    300,
    ' (CreateVolume VolumeInitializationRate)',
  );
  if (settings.coldDirectVolume !== 'hold' && settings.coldDirectVolume !== 'continue') {
    problems.push(`coldDirectVolume must be 'hold' or 'continue', got "${settings.coldDirectVolume}"`);
  }
  checkRate(problems, 'fanOut.maxConcurrency', settings.fanOut.maxConcurrency, false);
  checkRate(problems, 'fanOut.maxErrors', settings.fanOut.maxErrors, true);
  checkInteger(problems, 'push.maxObjectBytes', settings.push.maxObjectBytes, 1, maxS3ObjectBytes);
  for (const arn of settings.push.writerArns) {
    // A session ARN (sts) never equals aws:PrincipalArn, and a bare `*` would re-open the bucket.
    if (!Token.isUnresolved(arn) && !writerArnPattern.test(arn)) {
      problems.push(
        `push.writerArns: "${arn}" is not an IAM role, user or account root ARN (arn:<partition>:iam::<account>:role/<name>, user/<name> or root)`,
      );
    }
  }
  if (settings.workerInstanceType.architecture !== InstanceArchitecture.ARM_64) {
    problems.push(
      `workerInstanceType must be arm64 (Graviton, e.g. t4g.small), got ${settings.workerInstanceType}`,
    );
  }

  const adaptive = resolveAdaptive(problems, props, settings);
  const maxWorkersPerAz = resolveMaxWorkersPerAz(problems, {
    instanceType: settings.workerInstanceType.toString(),
    largestTargetPerAz: Math.max(
      Number.isInteger(settings.idlePerAz) ? settings.idlePerAz : 0,
      adaptive && Number.isInteger(adaptive.maxPerAz) ? adaptive.maxPerAz : 0,
    ),
    ...(props.maxWorkersPerAz !== undefined ? { maxWorkersPerAz: props.maxWorkersPerAz } : {}),
    what: 'idlePerAz',
  });

  if (problems.length > 0) throw new VolsdConfigError(settings.poolName, problems);
  return { ...settings, maxWorkersPerAz, ...(adaptive ? { adaptive } : {}) };
}

/** Defaults and checks of adaptive sizing: bounds in order, a budget that affords the minimum. */
function resolveAdaptive(
  problems: string[],
  props: PoolSettingsProps,
  settings: Pick<PoolSettings, 'workerInstanceType' | 'volume'>,
): Required<AdaptiveSizingProps> | undefined {
  const a = props.adaptive;
  if (!a) return undefined;
  const type = settings.workerInstanceType.toString();
  const workerDollarsPerMonth =
    a.workerDollarsPerMonth ?? (type === 't4g.small' ? t4gSmallWorkerDollarsPerMonth : Number.NaN);
  if (Number.isNaN(workerDollarsPerMonth))
    problems.push(
      `adaptive.workerDollarsPerMonth is required with workerInstanceType ${type} (the default prices t4g.small)`,
    );
  const resolved = { lookbackDays: 7, ...a, workerDollarsPerMonth };
  checkInteger(problems, 'adaptive.minPerAz', resolved.minPerAz, 0, maxIdlePerAzBound);
  checkInteger(problems, 'adaptive.maxPerAz', resolved.maxPerAz, 0, maxIdlePerAzBound);
  checkInteger(problems, 'adaptive.lookbackDays', resolved.lookbackDays, 1, 60);
  if (resolved.minPerAz > resolved.maxPerAz)
    problems.push(
      `adaptive.minPerAz (${resolved.minPerAz}) is above adaptive.maxPerAz (${resolved.maxPerAz})`,
    );
  const perWorker = volumesPerWorker(type);
  const { sizeGiB, iops, throughputMiBps } = settings.volume;
  if (
    perWorker !== undefined &&
    !Number.isNaN(workerDollarsPerMonth) &&
    [sizeGiB, iops, throughputMiBps].every(Number.isFinite)
  ) {
    const prices = {
      volumeDollarsPerMonth: gp3VolumeDollarsPerMonth(sizeGiB, iops, throughputMiBps),
      workerDollarsPerMonth,
      perWorker,
    };
    // Per AZ: the budget is the pool's, the AZ count is known only to the construct; one AZ at least.
    const floor = atRestDollarsPerMonth(resolved.minPerAz, 1, prices);
    if (!(resolved.budgetDollarsPerMonth >= floor))
      problems.push(
        `adaptive.budgetDollarsPerMonth (${resolved.budgetDollarsPerMonth}) cannot hold adaptive.minPerAz ${resolved.minPerAz} even in one AZ: that is $${floor.toFixed(2)} a month at rest`,
      );
  }
  return resolved;
}
