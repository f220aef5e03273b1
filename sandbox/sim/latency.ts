import type { Rng } from './rng.js';

/** A modelled duration range in seconds; each use draws uniformly in [min, max]. */
export type Range = readonly [min: number, max: number];

/**
 * How long things take, in modelled seconds. Sources are in `sandbox/sim/README.md`; "assumed" there
 * means no AWS figure was found and the value is a plausible guess.
 */
export interface LatencyModel {
  /** Every answered API call (network + service time). Assumed. */
  api: Range;
  /** CreateVolume, empty: creating -> available. Assumed. */
  volumeCreate: Range;
  /** CreateVolume from a snapshot: creating -> available (blocks then load lazily). Assumed. */
  volumeCreateFromSnapshot: Range;
  /** DeleteVolume: deleting -> gone. Assumed. */
  volumeDelete: Range;
  /** AttachVolume: attaching -> attached ("mostly 1-4 s", project design notes). */
  attach: Range;
  /** DetachVolume: detaching -> detached ("mostly 1-4 s", project design notes). */
  detach: Range;
  /** CreateSnapshot: pending -> completed (AWS: "can take several hours"; small trees assumed). */
  snapshot: Range;
  /** Instance pending -> running (brief: 20-40 s). */
  instanceBoot: Range;
  /** running -> the OS has booted (the web server could start). Assumed (AL2023 on Nitro: seconds). */
  osBoot: Range;
  /** OS booted -> SSM agent registered and answering (with osBoot: the brief's ~10 s after running). */
  agentRegistration: Range;
  /**
   * Eventual consistency (rule `eventualConsistency`): how long a new volume, snapshot or instance id
   * stays unknown to Describe*, and how long DescribeInstances block device mappings lag an attach or
   * detach. AWS gives no number ("Eventual consistency in the Amazon EC2 API"): a few seconds, assumed
   * at the long end.
   */
  consistency: Range;
  /**
   * Tail of attach and detach (rule `attachTail`): with probability `chance` a duration is multiplied by
   * a factor drawn in `factor`, so p99 is several times the median. AWS documents no figure; public
   * reports of attaches taking tens of seconds are the reason (assumed, conservative).
   */
  attachTail: { chance: number; factor: Range };
  /** shutting-down -> terminated. Assumed. */
  instanceShutdown: Range;
  /** Auto Scaling launch -> instance in Pending:Wait and the lifecycle event sent. Assumed. */
  lifecycleHookDelay: Range;
  /** SendCommand -> its invocations exist (GetCommandInvocation answers InvocationDoesNotExist before). Assumed. */
  ssmInvocationVisible: Range;
  /** Invocation Pending -> InProgress on an online agent. Assumed. */
  ssmDelivery: Range;
  /** Minimum modelled run time of a document (the runner's real work may take longer). Assumed. */
  ssmExecution: Range;
  /** Modelled seconds between checks of /proc/mounts while a detach is busy. */
  busyPoll: number;
  /** ModifyVolume: modifying -> optimizing (EBS: "usually takes a few seconds"; range assumed). */
  volumeModifying: Range;
  /** ModifyVolume: optimizing -> completed (size only; assumed, minutes). */
  volumeOptimizing: Range;
}

/** Defaults, see README for sources. */
export const defaultLatency: LatencyModel = {
  api: [0.05, 0.15],
  volumeCreate: [2, 6],
  volumeCreateFromSnapshot: [3, 10],
  volumeDelete: [2, 5],
  attach: [1, 4],
  detach: [1, 4],
  snapshot: [20, 60],
  instanceBoot: [20, 40],
  osBoot: [6, 9],
  agentRegistration: [2, 3],
  consistency: [1, 5],
  attachTail: { chance: 0.05, factor: [2, 8] },
  instanceShutdown: [5, 15],
  lifecycleHookDelay: [1, 3],
  ssmInvocationVisible: [0.2, 0.8],
  ssmDelivery: [0.5, 1.5],
  ssmExecution: [0.5, 1.5],
  busyPoll: 1,
  volumeModifying: [2, 10],
  volumeOptimizing: [120, 900],
};

/** Draws a duration in `range` with `rng`. */
export function draw(rng: Rng, range: Range): number {
  const [min, max] = range;
  return max > min ? rng.uniform(min, max) : min;
}

/**
 * A duration in `range` with a tail: with probability `tail.chance` it is multiplied by a factor drawn
 * in `tail.factor` (rule attachTail).
 */
export function drawWithTail(rng: Rng, range: Range, tail: LatencyModel['attachTail']): number {
  const base = draw(rng, range);
  return rng.next() < tail.chance ? base * draw(rng, tail.factor) : base;
}
