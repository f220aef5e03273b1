import type { SFNClient } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import type { VolumeRepository } from '../shared/repository.js';
import { failTask, heartbeatTask, resumeTask, type TaskWaits, WaitKind } from '../shared/task-waits.js';
import { volumeIdSchema } from '../shared/validate.js';

/**
 * The boot unit's signal (scripts/volsd-boot.sh), as the host function receives it. The instance is
 * never part of the body: it is the caller, proven by its credentials (see `bootSignal`).
 */
export const bootSignalSchema = z.discriminatedUnion('status', [
  z.object({
    /** The volume is mounted; `generation` is what its `.volsd/generation` says. */
    status: z.literal('mounted'),
    volumeId: volumeIdSchema,
    generation: z.number().int().min(0).max(999_999_999_999_999),
  }),
  z.object({
    /** The unit cannot mount: the acquire should go on over SSM now rather than at its timeout. */
    status: z.literal('failed'),
    reason: z.string().max(500),
  }),
]);
export type BootSignal = z.infer<typeof bootSignalSchema>;

/** What the unit is told. */
export type BootSignalAnswer =
  | { status: 'ok' }
  | {
      status: 'behind';
      /** Volsd-Sync's parameters: bring the volume to `generation`, then signal again. */
      sync: { bucket: string; prefix: string; generation: number; maxObjectBytes: string };
    }
  | { status: 'fallback' }
  | { status: 'refused'; reason: string };

/** What the signal needs. */
export interface BootSignalDeps {
  waits: TaskWaits;
  repo: Pick<VolumeRepository, 'getPool'>;
  sfn: SFNClient;
  pushBucket: string;
  pushPrefix: string;
  maxObjectBytes: string;
}

/**
 * Answers the boot unit of `callerInstanceId`, the instance its credentials prove (never a field of
 * the body). Only the acquire of that instance can be completed, and only with the volume it attached:
 * - `mounted` at the pool's current generation: the waiting Task resumes (Finish runs);
 * - `mounted` behind it (a push landed between claim and mount): the unit is told to sync to the
 *   current generation and signal again; the Task's heartbeat is renewed meanwhile;
 * - `failed`: the Task fails with BootUnitFailed, and the acquire mounts over SSM at once;
 * - anything else (no acquire waiting for this instance, another volume): refused, nothing changes.
 */
export async function bootSignal(
  callerInstanceId: string,
  signal: BootSignal,
  deps: BootSignalDeps,
): Promise<BootSignalAnswer> {
  const wait = await deps.waits.get(WaitKind.BootUnit, callerInstanceId);
  if (!wait) return { status: 'refused', reason: `no acquire of ${callerInstanceId} waits for a signal` };
  const ctx = wait.ctx as { pool?: string; volumeId?: string; generation?: number };
  if (signal.status === 'failed') {
    if (await deps.waits.take(WaitKind.BootUnit, callerInstanceId, wait.token))
      await failTask(deps.sfn, wait.token, 'BootUnitFailed', signal.reason);
    return { status: 'fallback' };
  }
  if (signal.volumeId !== ctx.volumeId)
    return {
      status: 'refused',
      reason: `volume ${signal.volumeId} is not the one attached to ${callerInstanceId} for its acquire`,
    };
  const pool = await deps.repo.getPool(String(ctx.pool));
  if (signal.generation < pool.generation) {
    await heartbeatTask(deps.sfn, wait.token);
    return {
      status: 'behind',
      sync: {
        bucket: deps.pushBucket,
        prefix: deps.pushPrefix,
        generation: pool.generation,
        maxObjectBytes: deps.maxObjectBytes,
      },
    };
  }
  if (!(await deps.waits.take(WaitKind.BootUnit, callerInstanceId, wait.token)))
    return { status: 'refused', reason: 'the acquire stopped waiting (timed out or answered)' };
  const resumed = await resumeTask(deps.sfn, wait.token, { ...ctx, generation: signal.generation });
  return resumed ? { status: 'ok' } : { status: 'refused', reason: 'the acquire stopped waiting' };
}
