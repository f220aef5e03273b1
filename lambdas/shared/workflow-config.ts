import { z } from 'zod';
import { env, loadConfig } from './config.js';

/**
 * Configuration shared by the acquire and release workflow functions, from their environment (set by
 * the CDK construct). Read once at cold start.
 */
export const workflowConfigShape = {
  TABLE_NAME: env.tableName,
  POOL_NAME: env.poolName,
  /** Where the pool's volume is mounted on a web instance. */
  MOUNT_PATH: z
    .string()
    .regex(/^\/[A-Za-z0-9._/-]{0,200}$/)
    .default('/srv/www'),
  /**
   * Space-separated roots a manual acquire's mount path must lie under (the pool's mount path is always
   * one). Unset: the mount path alone.
   */
  MOUNT_ROOTS: z
    .string()
    .regex(/^((\/[A-Za-z0-9_][A-Za-z0-9._-]*)+( (\/[A-Za-z0-9_][A-Za-z0-9._-]*)+)*)?$/)
    .optional(),
  MOUNT_OPTIONS: z
    .string()
    .regex(/^[a-z0-9=,_-]{1,200}$/)
    .default('noatime'),
  /** Root under which the sync worker mounts idle volumes, one folder per volume id. */
  WORKER_MOUNT_ROOT: z
    .string()
    .regex(/^\/[A-Za-z0-9._/-]{0,200}$/)
    .default('/var/lib/volsd/pool'),
  PUSH_BUCKET: z.string().min(3),
  PUSH_PREFIX: z.string().default('live/'),
  /** Objects larger than this are refused by the fan-out and skipped by every Volsd-Sync (bytes). */
  PUSH_MAX_OBJECT_BYTES: z
    .string()
    .regex(/^[1-9][0-9]{0,15}$/)
    .optional(),
  ACQUIRE_FAILURE_RESULT: z.enum(['ABANDON', 'CONTINUE']).default('ABANDON'),
  RELEASE_POLICY: z.enum(['delete', 'recycle']).default('delete'),
  HEARTBEAT_TIMEOUT: env.seconds(3600),
  REPLENISH_STATE_MACHINE_ARN: env.optionalArn,
  MOUNT_DOCUMENT: z.string().default('Volsd-Mount'),
  UNMOUNT_DOCUMENT: z.string().default('Volsd-Unmount'),
  SYNC_DOCUMENT: z.string().default('Volsd-Sync'),
  FORMAT_DOCUMENT: z.string().default('Volsd-Format'),
  FREEZE_DOCUMENT: z.string().default('Volsd-Freeze'),
  /** Spec of the pool's volumes. */
  VOLUME_SIZE_GIB: z.coerce.number().int().min(1).max(65536).default(20),
  VOLUME_TYPE: z.enum(['gp3', 'gp2', 'io1', 'io2']).default('gp3'),
  VOLUME_IOPS: z.coerce.number().int().positive().optional(),
  VOLUME_THROUGHPUT: z.coerce.number().int().positive().optional(),
  KMS_KEY_ID: z.string().optional(),
  /** EBS attachments a sync worker may hold (root included); unset: from DescribeInstanceTypes. */
  WORKER_ATTACHMENT_LIMIT: z.coerce.number().int().min(2).max(128).optional(),
  /**
   * No idle volume in the AZ: the acquire creates one from the latest snapshot straight for the
   * instance instead of waiting for replenish (the DESIGN's fast path).
   */
  DIRECT_CREATE: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
  /**
   * How a pool volume made from a snapshot becomes fully initialized before replenish marks it IDLE:
   * `provisioned-rate` creates it with VolumeInitializationRate = INITIALIZATION_RATE (predictable,
   * billed); `default-rate` waits for EBS's own lazy loading (free, unpredictable). Either way the
   * volume is IDLE only once DescribeVolumeStatus reports it initialized (docs/decisions.md, "Warm volumes").
   */
  INITIALIZATION: z.enum(['provisioned-rate', 'default-rate']).default('provisioned-rate'),
  /** VolumeInitializationRate in MiB/s for `provisioned-rate` (CreateVolume: 100-300). */
  INITIALIZATION_RATE: z.coerce.number().int().min(100).max(300).default(300),
  /**
   * A directly created volume is still initializing: `hold` keeps the launch in Pending:Wait (with
   * heartbeats) until it is initialized, at most INITIALIZATION_HOLD_SECONDS; `continue` lets the
   * instance go InService at once. Either way the outcome is counted (ColdHandoffs, InitializationHeld).
   */
  COLD_DIRECT_VOLUME: z.enum(['hold', 'continue']).default('hold'),
  /** Longest hold for a directly created volume before the instance goes InService cold anyway. */
  INITIALIZATION_HOLD_SECONDS: z.coerce.number().int().min(60).max(7200).default(3600),
  /**
   * Adaptive sizing (lambdas/shared/adaptive-sizing.ts): acquires count launches per AZ and hour, and the
   * replenish schedule sets the idle target from them, within [ADAPTIVE_MIN, ADAPTIVE_MAX] and the budget.
   */
  ADAPTIVE_SIZING: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  ADAPTIVE_MIN: z.coerce.number().int().min(0).max(1000).default(0),
  ADAPTIVE_MAX: z.coerce.number().int().min(0).max(1000).default(200),
  /** Monthly at-rest budget (idle volumes, workers, their root volumes), in dollars. */
  ADAPTIVE_BUDGET_DOLLARS_PER_MONTH: z.coerce.number().min(0).default(0),
  ADAPTIVE_LOOKBACK_DAYS: z.coerce.number().int().min(1).max(60).default(7),
  ADAPTIVE_WINDOW_HOURS: z.coerce.number().int().min(1).max(24).default(2),
  ADAPTIVE_PERCENTILE: z.coerce.number().min(1).max(100).default(95),
  /** One sync worker a month with its root volume (t4g.small $0.0168/h x 730 h + 16 GiB gp3 root). */
  WORKER_DOLLARS_PER_MONTH: z.coerce.number().min(0).default(13.54),
  /** Snapshots kept by the snapshot workflow. */
  SNAPSHOT_RETENTION: z.coerce.number().int().min(1).max(100).default(3),
};

export type WorkflowConfig = z.infer<z.ZodObject<typeof workflowConfigShape>>;

/** Reads the workflow configuration from the environment. */
export const loadWorkflowConfig = (source?: Record<string, string | undefined>) =>
  loadConfig(workflowConfigShape, source);
