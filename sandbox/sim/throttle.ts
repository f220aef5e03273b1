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

/**
 * True when the request narrows the listing with a filter or pages through it. Ids alone do not
 * count: FACTS §1 puts a Describe "with no filter and no pagination" in the smaller bucket, and a
 * Describe by id has neither. Whether AWS counts a by-id Describe as filtered is not documented, so
 * the smaller bucket (50, 10 per s) is the conservative reading.
 */
function hasFilterOrPagination(input: Record<string, unknown>): boolean {
  const listed = (v: unknown) => Array.isArray(v) && v.length > 0;
  return listed(input.Filters) || input.MaxResults !== undefined || input.NextToken !== undefined;
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

/**
 * SSM and Auto Scaling buckets. AWS publishes no per-action request rates for either (FACTS §8: they
 * answer "Rate exceeded" at rates it does not state), so the simulator borrows EC2's published
 * numbers, taking for each kind of call the SMALLEST EC2 bucket of that kind: reads get EC2's
 * unfiltered non-mutating bucket (50, refill 10 per s), writes EC2's mutating bucket (50, refill 5 per
 * s). One bucket per action, as EC2 does it. These are assumptions chosen to be harsh rather than
 * lenient: a workflow that wins against them has margin against the unpublished real ones.
 */
export const controlPlaneCategories = {
  read: { capacity: 50, refillPerSecond: 10 },
  write: { capacity: 50, refillPerSecond: 5 },
} as const satisfies Record<string, BucketSpec>;

/**
 * Run Command's actions throttled under the `ssmThrottling` rule. Parameter Store is left out: it has
 * its own published throughput quotas, not modelled here.
 */
const ssmThrottled: Readonly<Record<string, BucketSpec>> = {
  SendCommand: controlPlaneCategories.write,
  GetCommandInvocation: controlPlaneCategories.read,
  ListCommandInvocations: controlPlaneCategories.read,
  ListCommands: controlPlaneCategories.read,
  DescribeInstanceInformation: controlPlaneCategories.read,
};

/** The bucket an SSM request draws from, or undefined for an action that is not throttled. */
export function ssmBucket(action: string): { key: string; spec: BucketSpec } | undefined {
  const spec = Object.hasOwn(ssmThrottled, action) ? ssmThrottled[action] : undefined;
  return spec ? { key: `ssm:${action}`, spec } : undefined;
}

/** The bucket an Auto Scaling request draws from: Describe* read, everything else (lifecycle actions...) write. */
export function autoScalingBucket(action: string): { key: string; spec: BucketSpec } {
  return {
    key: `autoscaling:${action}`,
    spec: action.startsWith('Describe') ? controlPlaneCategories.read : controlPlaneCategories.write,
  };
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Token buckets on the modelled clock: a full bucket at start, 1 token per request. */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly clock: SimClock) {}

  /**
   * Takes one token from bucket `key`; false when it is empty (the request is throttled).
   * `backgroundPerSecond` is what other callers of the same account take from the same bucket
   * (other tenants' load): they take it continuously, so it lowers the net refill and, at or above
   * the refill rate, keeps the bucket empty.
   */
  take(key: string, spec: BucketSpec, backgroundPerSecond = 0): boolean {
    const now = this.clock.now();
    const bucket = this.buckets.get(key) ?? { tokens: spec.capacity, at: now };
    bucket.tokens = level(spec, bucket, now, backgroundPerSecond);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Tokens left in bucket `key` now (undefined before its first use). */
  tokens(key: string, spec: BucketSpec, backgroundPerSecond = 0): number | undefined {
    const bucket = this.buckets.get(key);
    if (!bucket) return undefined;
    return level(spec, bucket, this.clock.now(), backgroundPerSecond);
  }
}

/** A bucket's level at `now`: refilled, less the background load, within [0, capacity]. */
function level(spec: BucketSpec, bucket: Bucket, now: number, backgroundPerSecond: number): number {
  const net = spec.refillPerSecond - backgroundPerSecond;
  return Math.max(0, Math.min(spec.capacity, bucket.tokens + (now - bucket.at) * net));
}
