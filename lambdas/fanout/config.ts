import { z } from 'zod';
import { env, loadConfig } from '../shared/config.js';

// SSM's own pattern for MaxConcurrency and MaxErrors: a count or a percentage.
const ratePattern = /^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$/;

/** Environment variables of the fan-out and push status functions. */
export const fanOutEnv = {
  TABLE_NAME: env.tableName,
  POOL_NAME: env.poolName,
  PUSH_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'not a bucket name'),
  /** The content tree; the same pattern as Volsd-Sync's Prefix parameter. */
  PUSH_PREFIX: z
    .string()
    .regex(/^([A-Za-z0-9_][A-Za-z0-9._=+-]*\/){0,16}$/, 'prefix must be segments ending in /')
    .default('live/'),
  /** The deployed name of the Volsd-Sync document (`Volsd-Sync-<pool>` in AWS). */
  SYNC_DOCUMENT: z.string().min(3).default('Volsd-Sync'),
  FANOUT_MAX_CONCURRENCY: z
    .string()
    .regex(ratePattern, 'a count or a percentage')
    .refine((v) => v !== '0' && v !== '0%', 'must be at least 1')
    .default('50'),
  FANOUT_MAX_ERRORS: z.string().regex(ratePattern, 'a count or a percentage').default('10%'),
  /** SendCommand TimeoutSeconds: how long SSM keeps trying to deliver to an instance whose agent is away. */
  FANOUT_DELIVERY_TIMEOUT: env.seconds(600).pipe(z.number().min(30).max(2_592_000)),
  /** Largest pushed object in bytes; a larger one is refused (`too-large`). The pool's default: 1 GiB. */
  PUSH_MAX_OBJECT_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(5 * 1024 ** 4)
    .default(1024 ** 3),
  /** The configured volumeSizeGiB: the pool's size before any growth. Absent: no space check. */
  VOLUME_SIZE_GIB: z.coerce.number().int().min(1).max(65536).optional(),
  /** Grow the volumes once the content passes this share of them (percent). */
  GROW_THRESHOLD_PERCENT: z.coerce.number().int().min(10).max(90).default(80),
  /** Bytes per GiB of volume size: 2^30 on AWS; the sandbox scales volumes down with it. */
  VOLUME_GIB_BYTES: z.coerce
    .number()
    .int()
    .min(4096)
    .max(2 ** 30)
    .default(2 ** 30),
};

/** The fan-out's and push status function's configuration. */
export interface FanOutConfig {
  tableName: string;
  pool: string;
  bucket: string;
  prefix: string;
  syncDocument: string;
  maxConcurrency: string;
  maxErrors: string;
  deliveryTimeoutSeconds: number;
  /** Largest object a push may carry, in bytes. */
  maxObjectBytes: number;
  /** The configured volume size; undefined turns the space check off. */
  volumeSizeGiB?: number;
  /** @default 80 */
  growThresholdPercent?: number;
  /** @default 2^30 */
  gibBytes?: number;
}

/** Reads and validates the configuration from `source` (default `process.env`); throws naming bad variables. */
export function fanOutConfigFromEnv(source: Record<string, string | undefined> = process.env): FanOutConfig {
  const c = loadConfig(fanOutEnv, source);
  return {
    tableName: c.TABLE_NAME,
    pool: c.POOL_NAME,
    bucket: c.PUSH_BUCKET,
    prefix: c.PUSH_PREFIX,
    syncDocument: c.SYNC_DOCUMENT,
    maxConcurrency: c.FANOUT_MAX_CONCURRENCY,
    maxErrors: c.FANOUT_MAX_ERRORS,
    deliveryTimeoutSeconds: c.FANOUT_DELIVERY_TIMEOUT,
    maxObjectBytes: c.PUSH_MAX_OBJECT_BYTES,
    ...(c.VOLUME_SIZE_GIB !== undefined ? { volumeSizeGiB: c.VOLUME_SIZE_GIB } : {}),
    growThresholdPercent: c.GROW_THRESHOLD_PERCENT,
    gibBytes: c.VOLUME_GIB_BYTES,
  };
}
