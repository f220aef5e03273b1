import type { SimClock } from './clock.js';

/** One token bucket: `capacity` tokens, refilled at `refillPerSecond` (modelled seconds). */
export interface BucketSpec {
  capacity: number;
  refillPerSecond: number;
}

/** EC2 request-rate categories (FACTS §1, "Request throttling for the Amazon EC2 API"). */
export const ec2Categories = {
  nonMutating: { capacity: 100, refillPerSecond: 20 },
  unfilteredNonMutating: { capacity: 50, refillPerSecond: 10 },
  mutating: { capacity: 50, refillPerSecond: 5 },
  uncategorized: { capacity: 100, refillPerSecond: 5 },
  tags: { capacity: 100, refillPerSecond: 10 },
} as const satisfies Record<string, BucketSpec>;

const uncategorized = new Set([
  'CreateVolume',
  'DeleteVolume',
  'CreateSnapshot',
  'DeleteSnapshot',
  'TerminateInstances',
]);

function hasFilterOrPagination(input: Record<string, unknown>): boolean {
  const listed = (v: unknown) => Array.isArray(v) && v.length > 0;
  return (
    listed(input.Filters) ||
    listed(input.VolumeIds) ||
    listed(input.InstanceIds) ||
    listed(input.SnapshotIds) ||
    listed(input.InstanceTypes) ||
    input.MaxResults !== undefined ||
    input.NextToken !== undefined
  );
}

/**
 * The bucket an EC2 request draws from. Buckets are per action ("limits are applied to individual
 * API actions"); a non-mutating action without filter or pagination has its own, smaller bucket.
 */
export function ec2Bucket(action: string, input: Record<string, unknown>): { key: string; spec: BucketSpec } {
  if (/^(Describe|List|Get)/.test(action)) {
    return hasFilterOrPagination(input)
      ? { key: action, spec: ec2Categories.nonMutating }
      : { key: `${action}(unfiltered)`, spec: ec2Categories.unfilteredNonMutating };
  }
  if (action === 'CreateTags' || action === 'DeleteTags') return { key: action, spec: ec2Categories.tags };
  if (uncategorized.has(action)) return { key: action, spec: ec2Categories.uncategorized };
  return { key: action, spec: ec2Categories.mutating };
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Token buckets on the modelled clock: a full bucket at start, 1 token per request. */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly clock: SimClock) {}

  /** Takes one token from bucket `key`; false when it is empty (the request is throttled). */
  take(key: string, spec: BucketSpec): boolean {
    const now = this.clock.now();
    const bucket = this.buckets.get(key) ?? { tokens: spec.capacity, at: now };
    bucket.tokens = Math.min(spec.capacity, bucket.tokens + (now - bucket.at) * spec.refillPerSecond);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Tokens left in bucket `key` now (undefined before its first use). */
  tokens(key: string, spec: BucketSpec): number | undefined {
    const bucket = this.buckets.get(key);
    if (!bucket) return undefined;
    return Math.min(spec.capacity, bucket.tokens + (this.clock.now() - bucket.at) * spec.refillPerSecond);
  }
}
