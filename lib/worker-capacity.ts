import { workersFor } from '../lambdas/shared/fleet-size.js';
import { ebsAttachmentLimit } from './worker-attachment-limits.js';

/** Largest sync worker group per AZ Volsd configures (a sanity bound: 100 workers hold 2,600 volumes). */
export const maxWorkersPerAzBound = 100;
/** Largest idle target per AZ (the table's bound on `targetIdlePerAz`). */
export const maxIdlePerAzBound = 1000;

/**
 * Volumes one sync worker of `instanceType` holds: its EBS attachment limit less the root volume, or
 * undefined when the type is not in the table (not arm64, or newer than the table).
 */
export function volumesPerWorker(instanceType: string): number | undefined {
  const limit = ebsAttachmentLimit(instanceType);
  return limit === undefined ? undefined : limit - 1;
}

/**
 * Sizes the AZ's worker group for the largest target the pool may have and checks a configured size
 * against it. Appends every problem to `problems`; returns the group's maximum (the configured one,
 * else the one the target needs).
 */
export function resolveMaxWorkersPerAz(
  problems: string[],
  o: { instanceType: string; largestTargetPerAz: number; maxWorkersPerAz?: number; what: string },
): number {
  const perWorker = volumesPerWorker(o.instanceType);
  if (perWorker === undefined) {
    problems.push(
      `workerInstanceType ${o.instanceType}: its EBS attachment limit is not known (lib/worker-attachment-limits.ts lists every arm64 type DescribeInstanceTypes reported); pick a listed type`,
    );
    return o.maxWorkersPerAz ?? 1;
  }
  const needed = workersFor(o.largestTargetPerAz, perWorker);
  if (o.maxWorkersPerAz !== undefined) {
    if (
      !Number.isInteger(o.maxWorkersPerAz) ||
      o.maxWorkersPerAz < 1 ||
      o.maxWorkersPerAz > maxWorkersPerAzBound
    ) {
      problems.push(
        `maxWorkersPerAz must be an integer in 1..${maxWorkersPerAzBound}, got ${o.maxWorkersPerAz}`,
      );
    } else if (o.maxWorkersPerAz < needed) {
      problems.push(
        `${o.what} ${o.largestTargetPerAz} needs ${needed} ${o.instanceType} sync workers per AZ (${perWorker} volumes each besides the root volume), but maxWorkersPerAz is ${o.maxWorkersPerAz}`,
      );
    }
    return o.maxWorkersPerAz;
  }
  if (needed > maxWorkersPerAzBound) {
    problems.push(
      `${o.what} ${o.largestTargetPerAz} needs ${needed} ${o.instanceType} sync workers per AZ, above the bound of ${maxWorkersPerAzBound}`,
    );
  }
  return needed;
}
