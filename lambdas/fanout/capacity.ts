/**
 * The fan-out's space check: before a push is applied anywhere, the tree it makes (every key of the
 * prefix Volsd-Sync would copy) is measured with ListObjectsV2 and compared with the size every pool
 * volume is known to have (`confirmedGiB` of the growth item, else the configured size). A tree that
 * passes the pool's threshold raises the growth target (the grow function then grows every volume); a
 * tree that does not fit is refused as a whole: no generation, no command, no volume touched, so no
 * volume is ever left half-synced by a full file system (docs/decisions.md, "A pool that grows with its
 * content").
 */
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { fits, type GrowthRecords, growthTarget, pastThreshold, usablePercent } from '../shared/growth.js';
import { validateKey } from '../shared/push-keys.js';

/** What the check needs to know about the pool. */
export interface CapacitySettings {
  pool: string;
  bucket: string;
  prefix: string;
  /** The configured `volumeSizeGiB`. */
  volumeSizeGiB: number;
  /** Grow once the content passes this share of a volume (percent). */
  growThresholdPercent: number;
  /** Bytes per GiB of volume size (2^30; the sandbox scales it down). */
  gibBytes: number;
  /** Objects above this size are refused and never synced: not counted. */
  maxObjectBytes: number;
}

/** The verdict on a push. */
export interface CapacityVerdict {
  fits: boolean;
  /** The tree after the push, in bytes. */
  treeBytes: number;
  /** The file system every pool volume is known to have, in bytes. */
  fsBytes: number;
  /** The growth target after the check, when growth was asked for. */
  growingTo?: number;
  /** Why the push does not fit (for the push record and the log). */
  reason?: string;
}

/** Sums the sizes of the keys Volsd-Sync would copy (one ListObjectsV2 per 1,000 keys). */
export async function measureTree(
  s3: Pick<S3Client, 'send'>,
  settings: Pick<CapacitySettings, 'bucket' | 'prefix' | 'maxObjectBytes'>,
): Promise<number> {
  let total = 0;
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({
        Bucket: settings.bucket,
        Prefix: settings.prefix,
        ContinuationToken: token,
      }),
    );
    for (const object of page.Contents ?? []) {
      const size = object.Size ?? 0;
      if (!object.Key || size > settings.maxObjectBytes) continue;
      if (validateKey(object.Key, { prefix: settings.prefix }).kind === 'valid') total += size;
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return total;
}

/**
 * Measures the tree and decides: fits or not, and whether the volumes must grow (recorded in the
 * growth item, with the refused push waiting for it when it does not fit).
 */
export async function checkCapacity(
  deps: { s3: Pick<S3Client, 'send'>; growth: Pick<GrowthRecords, 'get' | 'raiseTarget'> },
  settings: CapacitySettings,
): Promise<CapacityVerdict> {
  const [treeBytes, record] = await Promise.all([
    measureTree(deps.s3, settings),
    deps.growth.get(settings.pool),
  ]);
  const confirmedGiB = record?.confirmedGiB ?? settings.volumeSizeGiB;
  const fsBytes = confirmedGiB * settings.gibBytes;
  const ok = fits(treeBytes, fsBytes);
  const reason = ok
    ? undefined
    : `no-space: the content would be ${treeBytes} bytes, the pool's volumes hold ${fsBytes} bytes (${confirmedGiB} GiB, ${usablePercent}% usable)`;
  if (!pastThreshold(treeBytes, fsBytes, settings.growThresholdPercent))
    return { fits: ok, treeBytes, fsBytes };
  const target = Math.max(
    record?.targetGiB ?? 0,
    growthTarget(confirmedGiB, treeBytes, settings.growThresholdPercent, settings.gibBytes),
  );
  await deps.growth.raiseTarget(settings.pool, target, confirmedGiB, reason);
  return { fits: ok, treeBytes, fsBytes, growingTo: target, ...(reason ? { reason } : {}) };
}
