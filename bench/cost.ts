/**
 * The control-plane cost model shared by the benches: AWS list prices, us-east-1 (read 2026-11; sources
 * in shared/aws-reference/FACTS.md and docs/cost.md) applied to the counts the sandbox records.
 */

/** Standard transitions, Lambda requests and arm64 GB-seconds, DynamoDB on-demand writes and reads, SQS requests. */
export const price = {
  transition: 0.025 / 1000,
  lambdaRequest: 0.2 / 1e6,
  lambdaGbSecond: 0.0000133334,
  write: 0.625 / 1e6,
  read: 0.125 / 1e6,
  sqsRequest: 0.4 / 1e6,
} as const;

/** Assumed Lambda size and time per step for the GB-second estimate (512 MB, ~150 ms). */
export const lambdaGbSecondsPerInvocation = 0.5 * 0.15;

/**
 * Control-plane dollars per 1,000 operations from per-operation counts: transitions, Lambda requests
 * and compute, table writes and `reads`, and `sqsRequests` (send, receive, delete of the triggering message).
 */
export function costPerThousand(
  per: { stateTransitions: number; lambdaInvocations: number; tableWrites: number },
  reads: number,
  sqsRequests = 3,
): number {
  const one =
    per.stateTransitions * price.transition +
    per.lambdaInvocations * (price.lambdaRequest + lambdaGbSecondsPerInvocation * price.lambdaGbSecond) +
    per.tableWrites * price.write +
    reads * price.read +
    sqsRequests * price.sqsRequest;
  return Math.round(one * 1000 * 1000) / 1000;
}

/**
 * The tail of a sample as reports show it: the p99 from 100 samples on; below that the maximum, named
 * so (the p99 of 10 samples is their maximum, and calling it p99 claims more than was seen).
 */
export function tailOf(
  p: { p99: number | null; max: number | null },
  samples: number,
): { label: 'p99' | 'max'; value: number | null } {
  return samples >= 100 ? { label: 'p99', value: p.p99 } : { label: 'max', value: p.max };
}
