import {
  CreateSnapshotCommand,
  DeleteSnapshotCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import { z } from 'zod';
import { commandOutcome, type ScriptResult, sendDocument } from '../shared/commands.js';
import { attachmentOf, describeVolume, requireLiveInstance } from '../shared/ec2-ops.js';
import { ConcurrentModification, InstanceGone, InvalidInput, VolumeNotReady } from '../shared/errors.js';
import { logger, metrics } from '../shared/logger.js';
import { type VolumeRecord, VolumeState } from '../shared/model.js';
import type { PendingCommand, Step } from '../shared/steps.js';
import { generationTag, poolTag, roleTag } from '../shared/tags.js';
import { nowIso, nowMs } from '../shared/time.js';
import { azSchema, parseOrThrow, poolNameSchema } from '../shared/validate.js';
import { SnapshotFailed } from './errors.js';

/** `volsd:role` of the pool's snapshots (tags.ts `Role` has volume, worker and client only). */
export const snapshotRole = 'snapshot';
/** Seconds the pool's snapshot lease lasts: longer than a snapshot run takes, short enough that a crash heals. */
export const leaseSeconds = 900;
/**
 * The freeze's bound (Volsd-Freeze's watchdog thaws after it). The snapshot only needs the freeze
 * until CreateSnapshot returns, which is seconds; the bound only matters if this workflow is lost.
 */
export const maxFreezeSeconds = 30;
/** At most this many old snapshots are deleted per run (DeleteSnapshot's bucket refills at 5/s). */
export const maxDeletesPerRun = 20;

/** Input of the snapshot state machine. The schedule and volsd-client send `{pool, reason}`. */
export const snapshotInputSchema = z.object({
  pool: poolNameSchema,
  /** Snapshot a volume of this AZ only. @default any AZ of the pool */
  az: azSchema.optional(),
  reason: z.string().max(64).optional(),
  /** Snapshots to keep. @default SNAPSHOT_RETENTION */
  retention: z.number().int().min(1).max(100).optional(),
});
export type SnapshotInput = z.infer<typeof snapshotInputSchema>;

/**
 * The data of a snapshot execution. `input` is the execution's input as the Init state passed it;
 * `plan` validates it into the fields beside it.
 */
export interface SnapshotCtx {
  input?: unknown;
  /** The execution's name: owner of the pool's snapshot lease, and written into the description. */
  runId?: string;
  pool?: string;
  az?: string;
  reason?: string;
  retention?: number;
  leased?: boolean;
  /** The volume being snapshotted, held (CLAIMED by its own worker) while it is frozen. */
  volumeId?: string;
  workerId?: string;
  generation?: number;
  reserved?: boolean;
  command?: PendingCommand;
  lastResults?: ScriptResult[];
  /** Volsd-Freeze reported the filesystem frozen. */
  frozen?: boolean;
  frozenAt?: number;
  /** Volsd-Freeze reported it thawed. */
  thawed?: boolean;
  snapshotId?: string;
  snapshotStartTime?: string;
  deleted?: string[];
  kept?: string[];
  /** Old snapshots kept because a creating volume uses them (or EC2 said InUse). */
  inUse?: string[];
  outcome?: string;
  error?: { Error?: string; Cause?: string };
  thawError?: { Error?: string; Cause?: string };
}

const leaseName = (pool: string) => `snapshot#${pool}`;

const errorName = (err: unknown) => (err instanceof Error ? err.name : '');

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new InvalidInput(`snapshot step needs ${what}`);
  return value;
}

/**
 * Validates the input, takes the pool's snapshot lease and picks a current IDLE volume (its
 * generation is the pool's) that EC2 shows attached to its worker. The volume is held for the
 * snapshot by moving it IDLE -> CLAIMED with its own worker as holder: no acquire can claim it and
 * unmount it while it is frozen, and a lost run leaves a claim that reconcile gives back by its age.
 * No such volume: the run ends (outcome `no-current-volume`).
 */
const plan: Step<SnapshotCtx> = async (ctx, { repo, ec2, config }) => {
  const input = parseOrThrow(snapshotInputSchema, ctx.input ?? ctx, 'snapshot input');
  const runId = need(ctx.runId, 'runId (the execution name)');
  const base: SnapshotCtx = {
    runId,
    pool: input.pool,
    ...(input.az ? { az: input.az } : {}),
    reason: input.reason ?? 'schedule',
    retention: input.retention ?? config.SNAPSHOT_RETENTION,
  };
  if (!(await repo.acquireLease(leaseName(input.pool), runId, leaseSeconds))) {
    logger.info('another snapshot run holds the pool; this one ends', { pool: input.pool });
    return { ...base, leased: false, outcome: 'busy' };
  }
  const pool = await repo.getPool(input.pool);
  if (input.az && !pool.azs.includes(input.az))
    throw new InvalidInput(`AZ ${input.az} is not one of pool ${input.pool}'s AZs`);
  // The index lags the table: a volume that became IDLE or current a moment ago still shows its old
  // state or generation there (right after a replenish or a push, none would qualify). The index only
  // lists the pool's volumes, those it shows qualifying first; each one's item, read consistently, says
  // whether it qualifies, and its version is what the hold below is conditional on.
  const listed = await repo.listVolumes({ pool: input.pool, ...(input.az ? { az: input.az } : {}) });
  const shownCurrent = (v: VolumeRecord) =>
    v.state === VolumeState.Idle && v.holder !== undefined && v.generation === pool.generation;
  const order = listed.sort(
    (a, b) => Number(shownCurrent(b)) - Number(shownCurrent(a)) || a.volumeId.localeCompare(b.volumeId),
  );
  for (const { volumeId } of order) {
    const candidate = await repo.findVolume(volumeId);
    if (
      candidate?.state !== VolumeState.Idle ||
      !candidate.holder ||
      candidate.generation !== pool.generation
    )
      continue;
    const workerId = candidate.holder ?? '';
    const volume = await describeVolume(ec2, candidate.volumeId);
    const attachment = volume ? attachmentOf(volume) : undefined;
    if (attachment?.InstanceId !== workerId || attachment.State !== 'attached') continue;
    try {
      await requireLiveInstance(ec2, workerId);
      await repo.transition({
        volumeId: candidate.volumeId,
        from: VolumeState.Idle,
        to: VolumeState.Claimed,
        expectedVersion: candidate.version,
        set: { holder: workerId, claimedAt: nowIso(), reason: `snapshot ${runId}`.slice(0, 200) },
      });
    } catch (err) {
      // Claimed by an acquire meanwhile, or its worker is going: try the next one.
      if (err instanceof ConcurrentModification || err instanceof InstanceGone) continue;
      throw err;
    }
    return {
      ...base,
      leased: true,
      volumeId: candidate.volumeId,
      workerId,
      generation: candidate.generation,
      reserved: true,
    };
  }
  logger.warn('no current idle volume to snapshot', { pool: input.pool, generation: pool.generation });
  metrics.addMetric('SnapshotSkipped', 'Count', 1);
  return { ...base, leased: true, outcome: 'no-current-volume' };
};

/** Freezes the volume's filesystem on the worker (Volsd-Freeze, bounded by its watchdog). */
const freeze: Step<SnapshotCtx> = async (ctx, { ssm, config }) => {
  const volumeId = need(ctx.volumeId, 'volumeId');
  const workerId = need(ctx.workerId, 'workerId');
  const commandId = await sendDocument(ssm, {
    documentName: config.FREEZE_DOCUMENT,
    instanceId: workerId,
    parameters: { VolumeId: volumeId, Mode: 'freeze', MaxFreezeSeconds: String(maxFreezeSeconds) },
    comment: `volsd snapshot freeze ${volumeId}`,
  });
  return { ...ctx, command: { commandId, instanceId: workerId, document: config.FREEZE_DOCUMENT } };
};

/** Polled until the freeze command ends (CommandPending meanwhile); records that the filesystem is frozen. */
const waitFrozen: Step<SnapshotCtx> = async (ctx, { ssm }) => {
  const command = need(ctx.command, 'the freeze command');
  const outcome = await commandOutcome(ssm, command.commandId, command.instanceId);
  const { command: _done, ...rest } = ctx;
  const frozen = outcome.results.some((r) => r.op === 'freeze' && r.frozen === true);
  return { ...rest, lastResults: outcome.results, frozen, frozenAt: nowMs() };
};

/**
 * CreateSnapshot, tagged with the pool, the generation and the snapshot role. A retried step first
 * looks for the snapshot an earlier attempt of this run created (the run id is in the description),
 * so a crash after the call never makes two. EC2's per-volume limits (one CreateSnapshot per 15 s, 5
 * pending) are VolumeNotReady: the state machine waits and tries again, still frozen within the bound.
 */
const createSnapshot: Step<SnapshotCtx> = async (ctx, { ec2 }) => {
  const volumeId = need(ctx.volumeId, 'volumeId');
  const pool = need(ctx.pool, 'pool');
  const runId = need(ctx.runId, 'runId');
  const generation = ctx.generation ?? 0;
  if (ctx.frozenAt !== undefined && nowMs() - ctx.frozenAt > maxFreezeSeconds * 1000) {
    logger.warn('the freeze may have been lifted by its watchdog before CreateSnapshot', { volumeId });
  }
  const description = `Volsd pool ${pool} generation ${generation} from ${volumeId} (${runId})`;
  const earlier = await ec2.send(
    new DescribeSnapshotsCommand({
      OwnerIds: ['self'],
      Filters: [
        { Name: `tag:${poolTag}`, Values: [pool] },
        { Name: 'volume-id', Values: [volumeId] },
        { Name: 'description', Values: [`*(${runId})`] },
      ],
    }),
  );
  const found = earlier.Snapshots?.find((s) => s.SnapshotId);
  if (found?.SnapshotId) return { ...ctx, snapshotId: found.SnapshotId };
  try {
    const out = await ec2.send(
      new CreateSnapshotCommand({
        VolumeId: volumeId,
        Description: description.slice(0, 255),
        TagSpecifications: [
          {
            ResourceType: 'snapshot',
            Tags: [
              { Key: poolTag, Value: pool },
              { Key: generationTag, Value: String(generation) },
              { Key: roleTag, Value: snapshotRole },
              { Key: 'Name', Value: `volsd-${pool}-g${generation}` },
            ],
          },
        ],
      }),
    );
    const snapshotId = out.SnapshotId;
    if (!snapshotId) throw new VolumeNotReady('CreateSnapshot returned no snapshot id');
    logger.info('snapshot started', { pool, volumeId, snapshotId, generation });
    return { ...ctx, snapshotId };
  } catch (err) {
    const name = errorName(err);
    if (
      name === 'SnapshotCreationPerVolumeRateExceeded' ||
      name === 'ConcurrentSnapshotLimitExceeded' ||
      name === 'IncorrectState'
    ) {
      throw new VolumeNotReady(`CreateSnapshot of ${volumeId}: ${name}`, { cause: err });
    }
    throw err;
  }
};

/** Thaws the filesystem (right after CreateSnapshot: EBS took the point in time during the call). */
const thaw: Step<SnapshotCtx> = async (ctx, { ssm, config }) => {
  const volumeId = need(ctx.volumeId, 'volumeId');
  const workerId = need(ctx.workerId, 'workerId');
  const commandId = await sendDocument(ssm, {
    documentName: config.FREEZE_DOCUMENT,
    instanceId: workerId,
    parameters: { VolumeId: volumeId, Mode: 'thaw' },
    comment: `volsd snapshot thaw ${volumeId}`,
  });
  return { ...ctx, command: { commandId, instanceId: workerId, document: config.FREEZE_DOCUMENT } };
};

/** Polled until the thaw command ends; records that the filesystem is thawed. */
const waitThawed: Step<SnapshotCtx> = async (ctx, { ssm }) => {
  const command = need(ctx.command, 'the thaw command');
  const outcome = await commandOutcome(ssm, command.commandId, command.instanceId);
  const { command: _done, ...rest } = ctx;
  const thawed = outcome.results.some((r) => r.op === 'freeze' && r.frozen === false);
  return { ...rest, lastResults: outcome.results, thawed };
};

/**
 * Gives the volume back to the pool: CLAIMED (held for the snapshot by its worker) -> IDLE. Skipped
 * when it is no longer held for this run (reconcile gave it back meanwhile).
 */
const unreserve: Step<SnapshotCtx> = async (ctx, { repo }) => {
  if (!ctx.reserved || !ctx.volumeId) return ctx;
  const record = await repo.findVolume(ctx.volumeId);
  if (record?.state === VolumeState.Claimed && record.holder === ctx.workerId) {
    await repo.transition({
      volumeId: ctx.volumeId,
      from: VolumeState.Claimed,
      to: VolumeState.Idle,
      expectedHolder: ctx.workerId,
      set: { claimedAt: null, reason: null },
    });
  }
  return { ...ctx, reserved: false };
};

/** Polled until the snapshot is `completed` (VolumeNotReady while `pending`); `error` is SnapshotFailed. */
const waitCompleted: Step<SnapshotCtx> = async (ctx, { ec2 }) => {
  const snapshotId = need(ctx.snapshotId, 'snapshotId');
  // A snapshot id is unknown to DescribeSnapshots for a while after CreateSnapshot (EC2 reads are
  // eventually consistent): not yet, polled within the state machine's bound.
  const out = await ec2
    .send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }))
    .catch((err: unknown) => {
      if (errorName(err) !== 'InvalidSnapshot.NotFound') throw err;
      throw new VolumeNotReady(`snapshot ${snapshotId} is not visible yet`, { cause: err });
    });
  const snapshot = out.Snapshots?.[0];
  if (!snapshot) throw new SnapshotFailed(`snapshot ${snapshotId} disappeared`);
  if (snapshot.State === 'error')
    throw new SnapshotFailed(`snapshot ${snapshotId} failed: ${snapshot.StateMessage}`);
  if (snapshot.State !== 'completed') {
    throw new VolumeNotReady(`snapshot ${snapshotId} is ${snapshot.State} (${snapshot.Progress ?? '?'})`);
  }
  return { ...ctx, snapshotStartTime: (snapshot.StartTime ?? new Date(nowMs())).toISOString() };
};

/** Records the completed snapshot as the pool's latest (kept when a newer generation is recorded). */
const record: Step<SnapshotCtx> = async (ctx, { repo }) => {
  const pool = need(ctx.pool, 'pool');
  const snapshotId = need(ctx.snapshotId, 'snapshotId');
  await repo.setLatestSnapshot(pool, {
    snapshotId,
    generation: ctx.generation ?? 0,
    createdAt: ctx.snapshotStartTime ?? nowIso(),
  });
  metrics.addMetric('SnapshotCreated', 'Count', 1);
  return ctx;
};

/** Every snapshot tagged with the pool, newest first. */
async function poolSnapshots(ec2: EC2Client, pool: string): Promise<Snapshot[]> {
  const out: Snapshot[] = [];
  let token: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeSnapshotsCommand({
        OwnerIds: ['self'],
        Filters: [{ Name: `tag:${poolTag}`, Values: [pool] }],
        MaxResults: 500,
        NextToken: token,
      }),
    );
    out.push(...(page.Snapshots ?? []));
    token = page.NextToken;
  } while (token);
  return out.sort((a, b) => (b.StartTime?.getTime() ?? 0) - (a.StartTime?.getTime() ?? 0));
}

/**
 * Keeps the newest `retention` completed snapshots of the pool and deletes older ones (failed ones
 * too), at most {@link maxDeletesPerRun} per run. Never deletes the pool's latest snapshot, one that a
 * CREATING or SYNCING volume of the table was made from, or a pending one; EC2's InvalidSnapshot.InUse
 * (a volume being created from it that the table does not know yet) is a skip, not a failure.
 */
const prune: Step<SnapshotCtx> = async (ctx, { ec2, repo, config }) => {
  const poolName = need(ctx.pool, 'pool');
  const retention = ctx.retention ?? config.SNAPSHOT_RETENTION;
  const pool = await repo.getPool(poolName);
  const volumes = await repo.listVolumes({ pool: poolName });
  const protectedIds = new Set<string>();
  if (pool.latestSnapshot?.snapshotId) protectedIds.add(pool.latestSnapshot.snapshotId);
  if (ctx.snapshotId) protectedIds.add(ctx.snapshotId);
  for (const v of volumes) {
    if ((v.state === VolumeState.Creating || v.state === VolumeState.Syncing) && v.snapshotId)
      protectedIds.add(v.snapshotId);
  }
  const snapshots = await poolSnapshots(ec2, poolName);
  const completed = snapshots.filter((s) => s.State === 'completed');
  const kept = completed.slice(0, retention).flatMap((s) => (s.SnapshotId ? [s.SnapshotId] : []));
  const old = [...completed.slice(retention), ...snapshots.filter((s) => s.State === 'error')];
  const deleted: string[] = [];
  const inUse: string[] = [];
  for (const s of old) {
    const snapshotId = s.SnapshotId;
    if (!snapshotId) continue;
    if (protectedIds.has(snapshotId)) {
      inUse.push(snapshotId);
      continue;
    }
    if (deleted.length >= maxDeletesPerRun) break;
    try {
      await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
      deleted.push(snapshotId);
    } catch (err) {
      if (errorName(err) === 'InvalidSnapshot.InUse') inUse.push(snapshotId);
      else if (errorName(err) !== 'InvalidSnapshot.NotFound') throw err;
    }
  }
  if (deleted.length) metrics.addMetric('SnapshotsDeleted', 'Count', deleted.length);
  logger.info('snapshots pruned', { pool: poolName, retention, kept, deleted, inUse });
  return { ...ctx, kept, deleted, inUse };
};

/** The pool a run is for, also when `plan` failed before validating the input. */
function poolOf(ctx: SnapshotCtx): string | undefined {
  if (ctx.pool) return ctx.pool;
  const pool = (ctx.input as { pool?: unknown } | undefined)?.pool;
  return typeof pool === 'string' ? pool : undefined;
}

/**
 * Gives the pool's snapshot lease back. Also when `leased` is unknown (a step failed right after
 * taking it): the release is conditional on this run owning the lease, so it never frees another's.
 */
const done: Step<SnapshotCtx> = async (ctx, { repo }) => {
  const pool = poolOf(ctx);
  if (ctx.leased !== false && pool && ctx.runId) await repo.releaseLease(leaseName(pool), ctx.runId);
  const { lastResults: _r, command: _c, input: _i, ...rest } = ctx;
  return { ...rest, leased: false, outcome: ctx.outcome ?? 'snapshotted' };
};

/**
 * First step after a failure: thaws the filesystem if a freeze may have been sent (a thaw of a thawed
 * filesystem succeeds), so nothing stays frozen until the watchdog. Best effort: a thaw that cannot
 * be sent is logged, the watchdog still lifts the freeze after its bound.
 */
const thawAfterFailure: Step<SnapshotCtx> = async (failedCtx, { ssm, config }) => {
  const { command: _failed, ...ctx } = failedCtx;
  if (!ctx.reserved || !ctx.volumeId || !ctx.workerId) return ctx;
  try {
    const commandId = await sendDocument(ssm, {
      documentName: config.FREEZE_DOCUMENT,
      instanceId: ctx.workerId,
      parameters: { VolumeId: ctx.volumeId, Mode: 'thaw' },
      comment: `volsd snapshot thaw ${ctx.volumeId} after failure`,
    });
    return { ...ctx, command: { commandId, instanceId: ctx.workerId, document: config.FREEZE_DOCUMENT } };
  } catch (err) {
    logger.warn('thaw after failure could not be sent; the freeze watchdog lifts it', {
      volumeId: ctx.volumeId,
      err,
    });
    return ctx;
  }
};

/** After a failure (and its thaw): the volume back to IDLE, the lease given back, the failure counted. */
const failed: Step<SnapshotCtx> = async (ctx, deps) => {
  logger.error('snapshot failed', { pool: ctx.pool, volumeId: ctx.volumeId, error: ctx.error });
  metrics.addMetric('SnapshotFailed', 'Count', 1);
  const { command: _c, ...rest } = ctx;
  const back = await unreserve(rest, deps);
  return done({ ...back, outcome: `failed: ${ctx.error?.Error ?? 'unknown'}` }, deps);
};

/** The snapshot workflow's steps, by the name the state machine passes in `step`. */
export const snapshotSteps: Record<string, Step<SnapshotCtx>> = {
  plan,
  freeze,
  waitFrozen,
  createSnapshot,
  thaw,
  waitThawed,
  unreserve,
  waitCompleted,
  record,
  prune,
  done,
  thawAfterFailure,
  failed,
};
