import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { type VolumeRecord, VolumeState } from '../shared/model.js';
import type { VolumeRepository } from '../shared/repository.js';
import { type FleetPlan, type FleetWorker, retireWorker, type WorkerFleet } from '../shared/worker-fleet.js';
import type { NewVolume } from './steps.js';

/** States in which a volume belongs to the worker that holds it. */
const onWorkerStates: readonly string[] = [
  VolumeState.Idle,
  VolumeState.Syncing,
  VolumeState.Creating,
  VolumeState.Retiring,
];

/**
 * Places a round's volumes on the kept workers. An adopted volume stays with the worker that holds it
 * when that worker runs (it is attached there); one with no running holder goes, like every new
 * volume, to the kept worker with the most room left, so the volumes and each push's sync spread over
 * the workers; when none has room it waits (`waiting`) for a later round.
 */
export function placeVolumes(
  keep: readonly FleetWorker[],
  adopt: readonly VolumeRecord[],
  surplus: ReadonlySet<string>,
): { adopted: NewVolume[]; roomUsed: number; waiting: number; assign: (count: number) => string[] } {
  const left = new Map(keep.map((w) => [w.instanceId, w.room]));
  const take = (): string | undefined => {
    let best: string | undefined;
    for (const [id, room] of left)
      if (room > 0 && (best === undefined || room > (left.get(best) ?? 0))) best = id;
    if (best !== undefined) left.set(best, (left.get(best) ?? 0) - 1);
    return best;
  };
  let roomUsed = 0;
  let waiting = 0;
  const adopted: NewVolume[] = [];
  for (const v of adopt) {
    if (v.holder && (left.has(v.holder) || surplus.has(v.holder))) {
      adopted.push({ volumeId: v.volumeId, empty: false, workerId: v.holder });
      continue;
    }
    const workerId = take();
    // No kept worker has room (a replacement worker not online yet): a later round adopts it.
    if (workerId === undefined) {
      waiting++;
      continue;
    }
    roomUsed++;
    adopted.push({ volumeId: v.volumeId, empty: false, workerId });
  }
  return {
    adopted,
    roomUsed,
    waiting,
    assign: (count) => Array.from({ length: count }, () => take() ?? ''),
  };
}

/**
 * Retires the surplus workers that hold nothing: no data volume attached (EC2, both views) and no
 * volume of the AZ recorded on them. Never below the group's minimum. Returns the retired ids.
 */
export async function retireDrainedWorkers(
  deps: { autoScaling: AutoScalingClient; repo?: VolumeRepository },
  where: { pool: string; az: string },
  plan: FleetPlan,
  group: WorkerFleet['group'],
  volumes: readonly VolumeRecord[],
): Promise<string[]> {
  if (!group) return [];
  const held = new Set(volumes.filter((v) => onWorkerStates.includes(v.state)).map((v) => v.holder));
  const retired: string[] = [];
  let desired = group.desired;
  for (const worker of plan.surplus) {
    if (worker.attached > 1 || held.has(worker.instanceId)) continue;
    if (desired <= group.min) break;
    await retireWorker(deps.autoScaling, worker.instanceId, where);
    desired--;
    retired.push(worker.instanceId);
  }
  return retired;
}
