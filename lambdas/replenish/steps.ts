import { createHash } from 'node:crypto';
import { commandOutcome, sendDocument, syncMaxObjectBytes } from '../shared/commands.js';
import {
  attachAtFreeDevice,
  attachmentOf,
  createRecordedVolume,
  deleteVolume,
  describeVolume,
  detachVolume,
  requireLiveInstance,
} from '../shared/ec2-ops.js';
import {
  CommandPending,
  InstanceGone,
  InvalidInput,
  VolumeInitializing,
  VolumeNotReady,
} from '../shared/errors.js';
import { readInitialization } from '../shared/initialization.js';
import { azMetric, logger, metrics } from '../shared/logger.js';
import { type VolumeRecord, VolumeState } from '../shared/model.js';
import { replenishLeaseName, requestReplenish } from '../shared/replenish-request.js';
import type { PendingCommand, Step } from '../shared/steps.js';
import { nowMs } from '../shared/time.js';
import {
  describeFleet,
  planFleet,
  startWorkers,
  type WorkerFleet,
  workerGroup,
} from '../shared/worker-fleet.js';
import { retarget } from './adaptive.js';
import { placeVolumes, retireDrainedWorkers } from './fleet.js';

/** A volume the replenish run is bringing into the pool. */
export interface NewVolume {
  volumeId: string;
  /** Created empty: needs a filesystem (Volsd-Format) before it can be mounted. */
  empty: boolean;
  /** The sync worker it goes to (one of the AZ's workers); unset: the run's `workerId`. */
  workerId?: string;
}

/**
 * The data of a replenish execution for one pool and AZ. `volumes` are the volumes it brings in
 * (created now, or adopted: pool volumes waiting unattached in SYNCING); `retire` the idle extras.
 */
export interface ReplenishCtx {
  pool: string;
  az: string;
  reason?: string;
  /** The execution's name: owner of the AZ's lease and the CreateVolume client tokens. */
  runId?: string;
  leased?: boolean;
  workerId?: string;
  volumes?: NewVolume[];
  retire?: string[];
  commands?: PendingCommand[];
  generation?: number;
  round?: number;
  created?: number;
  retired?: number;
  /** When AttachToWorker last ran (epoch ms): an attach still not done long after is stuck. */
  attachRequestedAt?: number;
  /** Volumes this run set aside (a stuck attach aborted, or on another instance): a later round's. */
  setAside?: number;
  /** Worker device names a forced detach of this run may have left unusable until the worker reboots. */
  avoidDevices?: string[];
  /** When the round's Volsd-Sync was sent (epoch ms): a long sync renews the AZ's lease while it runs. */
  syncSentAt?: number;
  /** True when another round is worth it (the target was not reached for capacity or a race). */
  again?: boolean;
  /** The target waits for sync workers the group is starting: the next round waits for them first. */
  waitWorkers?: boolean;
  /** Surplus workers being drained: retired by `done` once they hold nothing. */
  drainWorkers?: string[];
  error?: { Error?: string; Cause?: string };
}

/** Seconds the AZ's lease lasts: longer than a replenish takes, short enough that a crash heals. */
export const leaseSeconds = 900;
/** At most this many volumes are created in one round (CreateVolume's own bucket refills at 5/s). */
export const maxCreatePerRound = 20;
/** An attach to the worker not done this long after it was asked for is stuck: aborted, set aside. */
export const workerAttachTimeoutMs = 90_000;

const leaseName = (ctx: ReplenishCtx) => replenishLeaseName(ctx.pool, ctx.az);

/** The worker a volume of the round goes to. */
const workerOf = (ctx: ReplenishCtx, v: NewVolume) => v.workerId ?? ctx.workerId ?? '';

/** Re-reads the fleet and the AZ's volumes and retires the surplus workers that hold nothing. */
async function retireDrained(
  ctx: ReplenishCtx,
  { repo, ec2, autoScaling, ssm, config }: Parameters<Step>[1],
) {
  const pool = await repo.getPool(ctx.pool);
  const fleet = await describeFleet(
    { ec2, autoScaling, ssm },
    ctx.pool,
    ctx.az,
    config.WORKER_ATTACHMENT_LIMIT,
  );
  const listed = await repo.listVolumes({ pool: ctx.pool, az: ctx.az });
  const volumes: VolumeRecord[] = [];
  for (const v of listed) {
    const item = await repo.findVolume(v.volumeId);
    if (item) volumes.push(item);
  }
  await retireDrainedWorkers(
    { autoScaling, repo },
    { pool: ctx.pool, az: ctx.az },
    planFleet(fleet, pool.targetIdlePerAz),
    fleet.group,
    volumes,
  );
}

function workerMount(root: string, volumeId: string) {
  return `${root}/${volumeId}`;
}

/**
 * Takes the AZ's lease, sizes the AZ's sync workers for the target (starts workers through their group
 * when it needs more; drains and retires the surplus), and decides: how many volumes to create and on
 * which worker, which waiting volumes to adopt, which idle extras to retire. Idle + in-flight (CREATING,
 * SYNCING) is what counts against the target, so a burst of requests never overshoots.
 */
const plan: Step<ReplenishCtx> = async (ctx, { repo, ec2, autoScaling, ssm, config }) => {
  if (!ctx.runId) throw new InvalidInput('replenish needs runId (the execution name)');
  // Another run holding the AZ is asked to run once more when it gives the lease back (this request
  // might come after its last plan); if it gave it back just now, this run takes it after all.
  const leased =
    (await repo.acquireLease(leaseName(ctx), ctx.runId, leaseSeconds)) ||
    (!(await repo.markLeaseWanted(leaseName(ctx))) &&
      (await repo.acquireLease(leaseName(ctx), ctx.runId, leaseSeconds)));
  if (!leased) {
    logger.info('another replenish holds the AZ; it runs again for this request', {
      pool: ctx.pool,
      az: ctx.az,
    });
    return { ...ctx, leased: false, volumes: [], retire: [], again: false, waitWorkers: false };
  }
  let pool = await repo.getPool(ctx.pool);
  if (!pool.azs.includes(ctx.az)) throw new InvalidInput(`AZ ${ctx.az} is not one of pool ${ctx.pool}'s AZs`);
  let fleet: WorkerFleet;
  try {
    fleet = await describeFleet({ ec2, autoScaling, ssm }, ctx.pool, ctx.az, config.WORKER_ATTACHMENT_LIMIT);
  } catch (err) {
    if (!(err instanceof InstanceGone)) throw err;
    // No worker runs yet: the first ones still boot (a first deploy), or the group replaces the only one.
    // When the AZ has a worker group, that is a wait for its workers, not a failure.
    return waitForFirstWorker(ctx, autoScaling, err);
  }
  // Adaptive sizing moves the target on the schedule's tick, once per run.
  if (config.ADAPTIVE_SIZING && ctx.reason === 'schedule' && !ctx.round)
    pool = await retarget(pool, fleet.perWorker, { repo, config });
  // The index lags the table: a volume handed back a moment ago (reconcile, a recycling release, a
  // compensation, each of which starts this workflow right after its write) may still show IDLE or held
  // there, and one that became IDLE may still show SYNCING. The index lists the AZ's volumes; what each
  // one counts as is read from its item, consistently.
  const listed = await repo.listVolumes({ pool: ctx.pool, az: ctx.az });
  const volumes: VolumeRecord[] = [];
  for (let i = 0; i < listed.length; i += 25) {
    const items = await Promise.all(listed.slice(i, i + 25).map((v) => repo.findVolume(v.volumeId)));
    for (const item of items) if (item) volumes.push(item);
  }
  // As many workers as the target needs; a surplus one is drained (its idle volumes retired once their
  // replacements are idle on the kept workers) and retired when it holds nothing.
  const fleetPlan = planFleet(fleet, pool.targetIdlePerAz);
  if (fleetPlan.startTo !== undefined && fleet.group) {
    await startWorkers(autoScaling, fleet.group.name, fleetPlan.startTo, {
      pool: ctx.pool,
      az: ctx.az,
      from: fleet.group.desired,
      needed: fleetPlan.needed,
    });
  }
  if (fleetPlan.cappedByMax)
    logger.warn('the worker group maximum caps the pool', {
      az: ctx.az,
      target: pool.targetIdlePerAz,
      perWorker: fleet.perWorker,
      max: fleet.group?.max,
    });
  const retiredWorkers = await retireDrainedWorkers(
    { autoScaling, repo },
    { pool: ctx.pool, az: ctx.az },
    fleetPlan,
    fleet.group,
    volumes,
  );
  const surplusIds = new Set(fleetPlan.surplus.map((w) => w.instanceId));
  // Surplus-held idle volumes first: they are the extras to retire and the ones to drain.
  const idle = volumes
    .filter((v) => v.state === VolumeState.Idle)
    .sort((a, b) => Number(surplusIds.has(b.holder ?? '')) - Number(surplusIds.has(a.holder ?? '')));
  // Holding the lease, no other replenish runs here: every CREATING or SYNCING volume is a leftover (a
  // crashed run, a failed acquire handing its volume back, a recycling release). This run adopts them.
  const adopt = volumes.filter((v) => v.state === VolumeState.Creating || v.state === VolumeState.Syncing);
  // Instances waiting for a volume count as demand on top of the target: a burst gets its volumes in
  // one round instead of one target's worth per round.
  const waiting = await repo.countWaiting(ctx.pool, ctx.az);
  const deficit = pool.targetIdlePerAz + waiting - idle.length - adopt.length;
  const extras = deficit < 0 ? idle.slice(0, -deficit) : [];
  const keepRoom = fleetPlan.keep.reduce((sum, w) => sum + w.room, 0);
  const placed = placeVolumes(fleetPlan.keep, adopt, surplusIds);
  const room = Math.max(0, keepRoom - placed.roomUsed);
  // Drained: surplus-held idle volumes the kept workers have room to replace in this round.
  const drainable = idle.slice(extras.length).filter((v) => surplusIds.has(v.holder ?? ''));
  const need = Math.max(0, deficit);
  const drain = drainable.slice(0, Math.max(0, Math.min(room, maxCreatePerRound) - need));
  const toCreate = Math.max(0, Math.min(need + drain.length, room, maxCreatePerRound));
  // Workers the group is starting (or was asked to start just now) are not running, or not reachable, yet.
  const starting =
    fleetPlan.startTo !== undefined ||
    (fleet.group?.desired ?? 0) > fleet.workers.length ||
    fleetPlan.unreachable.length > 0;
  if (need > room && !starting)
    logger.warn('worker attachment limit caps the pool', { az: ctx.az, deficit, room });
  // A retire left unfinished (a run that failed after marking its extras RETIRING) is this run's to finish.
  const unfinished = volumes.filter((v) => v.state === VolumeState.Retiring).map((v) => v.volumeId);
  const retire = [...unfinished, ...extras.map((v) => v.volumeId), ...drain.map((v) => v.volumeId)];
  const created = await createVolumes(ctx, toCreate, pool.latestSnapshot, { repo, ec2, config });
  const targets = placed.assign(created.length);
  const primary = fleetPlan.keep[0]?.instanceId ?? fleet.workers[0]?.instanceId ?? '';
  // Names a forced detach of an earlier run left unusable on this worker: never attach there again.
  const unusable = await repo.unusableDevices(primary);
  const avoid = [...new Set([...(ctx.avoidDevices ?? []), ...unusable])];
  const drainWorkers = fleetPlan.surplus
    .map((w) => w.instanceId)
    .filter((id) => !retiredWorkers.includes(id));
  const short = need + drain.length > toCreate || placed.waiting > 0;
  return {
    ...ctx,
    leased: true,
    workerId: primary,
    ...(avoid.length ? { avoidDevices: avoid } : {}),
    generation: pool.generation,
    volumes: [...created.map((v, i) => ({ ...v, workerId: targets[i] ?? primary })), ...placed.adopted],
    retire,
    round: (ctx.round ?? 0) + 1,
    created: (ctx.created ?? 0) + created.length,
    again: short && (room > toCreate || starting),
    waitWorkers: short && starting && room <= toCreate,
    drainWorkers,
  };
};

/**
 * Plan's answer when the AZ has no running sync worker. With a worker group that may run one, the
 * round creates nothing and the run waits for the group's workers (WaitForWorkers, then Plan again),
 * starting one when the group's desired capacity is 0; without such a group nothing will ever run
 * one: InstanceGone, as before.
 */
async function waitForFirstWorker(
  ctx: ReplenishCtx,
  autoScaling: Parameters<Step>[1]['autoScaling'],
  gone: InstanceGone,
): Promise<ReplenishCtx> {
  const group = await workerGroup(autoScaling, ctx.pool, ctx.az);
  if (!group?.AutoScalingGroupName || (group.MaxSize ?? 0) < 1) throw gone;
  const desired = group.DesiredCapacity ?? 0;
  if (desired < 1) {
    await startWorkers(autoScaling, group.AutoScalingGroupName, Math.max(1, group.MinSize ?? 1), {
      pool: ctx.pool,
      az: ctx.az,
      from: desired,
      needed: 1,
    });
  }
  logger.info('no sync worker runs yet in the AZ; waiting for the group to start one', {
    pool: ctx.pool,
    az: ctx.az,
    group: group.AutoScalingGroupName,
    desired,
  });
  return {
    ...ctx,
    leased: true,
    volumes: [],
    retire: [],
    round: (ctx.round ?? 0) + 1,
    again: true,
    waitWorkers: true,
    drainWorkers: [],
  };
}

async function createVolumes(
  ctx: ReplenishCtx,
  count: number,
  snapshot: { snapshotId: string; generation: number } | undefined,
  { repo, ec2, config }: Pick<Parameters<Step>[1], 'repo' | 'ec2' | 'config'>,
): Promise<NewVolume[]> {
  const out: NewVolume[] = [];
  for (let i = 0; i < count; i++) {
    // The client token makes a retried step return the volume it already created, not a second one.
    const token = `${ctx.runId}-${ctx.round ?? 0}-${i}`;
    const volumeId = await createRecordedVolume(ec2, repo, {
      pool: ctx.pool,
      az: ctx.az,
      snapshotId: snapshot?.snapshotId,
      clientToken: token,
      spec: config,
    });
    await repo.registerVolume({
      volumeId,
      pool: ctx.pool,
      az: ctx.az,
      state: VolumeState.Creating,
      generation: snapshot?.generation ?? 0,
      ...(snapshot ? { snapshotId: snapshot.snapshotId } : {}),
    });
    out.push({ volumeId, empty: !snapshot });
  }
  if (out.length) metrics.addMetric('VolumesCreated', 'Count', out.length);
  return out;
}

/** Polled until every new volume is available (or already attached to the worker). */
const waitAvailable: Step<ReplenishCtx> = async (ctx, { ec2 }) => {
  for (const v of ctx.volumes ?? []) {
    const volume = await describeVolume(ec2, v.volumeId);
    if (!volume) throw new VolumeNotReady(`volume ${v.volumeId} is not visible yet`);
    if (volume.State !== 'available' && attachmentOf(volume)?.InstanceId !== workerOf(ctx, v)) {
      throw new VolumeNotReady(`volume ${v.volumeId} is ${volume.State}`);
    }
  }
  return ctx;
};

/** Attaches every new volume to its worker (SYNCING, held by the worker). Re-runnable. */
const attachToWorker: Step<ReplenishCtx> = async (ctx, { ec2, repo }) => {
  // Names a forced detach left unusable, per worker: the run's own list for its first worker, the table's.
  const avoid = new Map<string, string[]>();
  const avoidOn = async (workerId: string) => {
    let names = avoid.get(workerId);
    if (!names) {
      const own = workerId === ctx.workerId ? (ctx.avoidDevices ?? []) : [];
      names = [...new Set([...own, ...(await repo.unusableDevices(workerId))])];
      avoid.set(workerId, names);
    }
    return names;
  };
  // A worker gone mid-round (its group replaced it, a scale-in): its volumes are set aside, SYNCING, for
  // the next round's Plan to adopt onto a live worker; the round goes on with the others.
  const gone = new Set<string>();
  const kept: NewVolume[] = [];
  const setAside: string[] = [];
  for (const v of ctx.volumes ?? []) {
    const workerId = workerOf(ctx, v);
    if (gone.has(workerId)) {
      setAside.push(v.volumeId);
      continue;
    }
    const record = await repo.getVolume(v.volumeId);
    if (record.state === VolumeState.Creating) {
      await repo.transition({
        volumeId: v.volumeId,
        from: VolumeState.Creating,
        to: VolumeState.Syncing,
        set: { holder: workerId },
      });
    } else if (record.state === VolumeState.Syncing && record.holder !== workerId) {
      await repo.setHolder(v.volumeId, VolumeState.Syncing, workerId);
    }
    const volume = await describeVolume(ec2, v.volumeId);
    if (!volume || attachmentOf(volume)) {
      kept.push(v);
      continue;
    }
    try {
      const worker = await requireLiveInstance(ec2, workerId);
      await attachAtFreeDevice(ec2, v.volumeId, worker, await avoidOn(workerId));
      kept.push(v);
    } catch (err) {
      if (!(err instanceof InstanceGone)) throw err;
      gone.add(workerId);
      setAside.push(v.volumeId);
    }
  }
  if (setAside.length === 0) return { ...ctx, attachRequestedAt: nowMs() };
  logger.warn('sync worker gone mid-round; its volumes set aside for the next round', {
    az: ctx.az,
    workers: [...gone],
    setAside,
  });
  metrics.addMetric('WorkerAttachAborted', 'Count', setAside.length);
  return {
    ...ctx,
    volumes: kept,
    attachRequestedAt: nowMs(),
    setAside: (ctx.setAside ?? 0) + setAside.length,
    // Bounded as WaitAttached's set-aside rounds are.
    again: ctx.again || (ctx.round ?? 0) < 3,
  };
};

/**
 * Polled until every volume of the round is attached to the worker. One still not attached there
 * `workerAttachTimeoutMs` after AttachToWorker (an attach stuck in `attaching`, or a volume on another
 * instance) is set aside, a stuck attach force-detached first: the volume stays SYNCING for the next
 * round (`again`) or the reconcile, and the round goes on with the others and with its retires.
 */
const waitAttached: Step<ReplenishCtx> = async (ctx, { ec2, repo }) => {
  const late = nowMs() - (ctx.attachRequestedAt ?? nowMs()) > workerAttachTimeoutMs;
  const ready: NewVolume[] = [];
  const setAside: string[] = [];
  const avoid = new Set(ctx.avoidDevices ?? []);
  for (const v of ctx.volumes ?? []) {
    const volume = await describeVolume(ec2, v.volumeId);
    const attachment = volume ? attachmentOf(volume) : undefined;
    const workerId = workerOf(ctx, v);
    if (attachment?.State === 'attached' && attachment.InstanceId === workerId) {
      ready.push(v);
      continue;
    }
    if (!late) throw new VolumeNotReady(`volume ${v.volumeId} is ${attachment?.State ?? 'not attached'}`);
    if (volume && attachment?.InstanceId === workerId) {
      await detachVolume(ec2, volume, { force: true });
      // A forced detach can leave the name unusable until the worker reboots: later rounds take another.
      if (attachment?.Device) {
        if (workerId === ctx.workerId) avoid.add(attachment.Device);
        else await repo.addUnusableDevices(workerId, [attachment.Device]);
      }
    }
    setAside.push(
      `${v.volumeId} (${attachment ? `${attachment.State} on ${attachment.InstanceId}` : 'not attached'})`,
    );
  }
  if (setAside.length === 0) return ctx;
  const newlyAvoided = [...avoid].filter((d) => !(ctx.avoidDevices ?? []).includes(d));
  if (ctx.workerId) await repo.addUnusableDevices(ctx.workerId, newlyAvoided);
  logger.warn('attach to the worker did not complete; volumes set aside', { az: ctx.az, setAside });
  metrics.addMetric('WorkerAttachAborted', 'Count', setAside.length);
  return {
    ...ctx,
    volumes: ready,
    setAside: (ctx.setAside ?? 0) + setAside.length,
    ...(avoid.size ? { avoidDevices: [...avoid] } : {}),
    // Set-aside rounds stay bounded as before (three), whatever the capacity rounds allow.
    again: (ctx.round ?? 0) < 3,
  };
};

/**
 * Mounts every volume on the worker, one command per volume, with Volsd-Format: it gives an empty
 * volume a filesystem (never over an existing one) and mounts; so new, snapshot-born and adopted
 * volumes take one path.
 */
const prepare: Step<ReplenishCtx> = async (ctx, { ssm, config }) => {
  const commands: PendingCommand[] = [];
  for (const v of ctx.volumes ?? []) {
    const workerId = workerOf(ctx, v);
    const document = config.FORMAT_DOCUMENT;
    const commandId = await sendDocument(ssm, {
      documentName: document,
      instanceId: workerId,
      parameters: {
        VolumeId: v.volumeId,
        MountPath: workerMount(config.WORKER_MOUNT_ROOT, v.volumeId),
        MountOptions: config.MOUNT_OPTIONS,
      },
      comment: `volsd prepare ${v.volumeId}`,
    });
    commands.push({ commandId, instanceId: workerId, document });
  }
  return { ...ctx, commands };
};

/** Polls every pending command; CommandPending while any runs. A failed one fails the step. */
const waitCommands: Step<ReplenishCtx> = async (ctx, { ssm, repo }) => {
  await renewLeaseDuringLongSync(ctx, repo);
  const left: PendingCommand[] = [];
  let pending = false;
  for (const c of ctx.commands ?? []) {
    try {
      await commandOutcome(ssm, c.commandId, c.instanceId);
    } catch (err) {
      if (!(err instanceof CommandPending)) throw err;
      pending = true;
      left.push(c);
    }
  }
  if (pending) throw new CommandPending(`${left.length} command(s) still running`);
  return { ...ctx, commands: [] };
};

/**
 * A first fill copies the whole tree and may take up to the Volsd-Sync document's hour, longer than the
 * lease: once the sync has run a third of the lease, every poll renews it (a conditional put, this run's
 * own), so the claims' replenish requests meanwhile end at once instead of adopting the volumes being
 * synced and syncing them a second time. Syncs shorter than that cost no write.
 */
async function renewLeaseDuringLongSync(ctx: ReplenishCtx, repo: Parameters<Step>[1]['repo']) {
  if (!ctx.syncSentAt || !ctx.runId || nowMs() - ctx.syncSentAt < (leaseSeconds * 1000) / 3) return;
  if (!(await repo.renewLease(leaseName(ctx), ctx.runId, leaseSeconds)))
    logger.warn('the AZ lease went to another run during a long sync', { pool: ctx.pool, az: ctx.az });
}

/**
 * Syncs the worker's volumes to the pool's current generation with ONE Volsd-Sync and no VolumeId: the
 * script lists the bucket once and brings every Volsd volume mounted on the worker that is behind
 * current (the new ones fully, a snapshot-born one by its delta); the others are skipped.
 */
const sync: Step<ReplenishCtx> = async (ctx, { ssm, repo, config }) => {
  const pool = await repo.getPool(ctx.pool);
  // Volumes that were out of Volsd's hands (recycled) are rebuilt from the bucket, not merely synced.
  const untrusted = new Set<string>();
  for (const v of ctx.volumes ?? []) {
    if ((await repo.findVolume(v.volumeId))?.untrusted) untrusted.add(v.volumeId);
  }
  const commands: PendingCommand[] = [];
  // One Volsd-Sync per worker the round's volumes went to.
  for (const workerId of new Set((ctx.volumes ?? []).map((v) => workerOf(ctx, v)))) {
    const mine = (ctx.volumes ?? []).filter((v) => workerOf(ctx, v) === workerId);
    const rebuild = mine.filter((v) => untrusted.has(v.volumeId)).map((v) => v.volumeId);
    const commandId = await sendDocument(ssm, {
      documentName: config.SYNC_DOCUMENT,
      instanceId: workerId,
      parameters: {
        Bucket: config.PUSH_BUCKET,
        Prefix: config.PUSH_PREFIX,
        Generation: String(pool.generation),
        MaxObjectBytes: syncMaxObjectBytes(),
        ...(rebuild.length > 0 ? { Untrusted: rebuild.join(' ') } : {}),
      },
      timeoutSeconds: 900,
      comment: `volsd sync of ${mine.length} new volume(s)`,
    });
    commands.push({ commandId, instanceId: workerId, document: config.SYNC_DOCUMENT });
  }
  return { ...ctx, commands, generation: pool.generation, syncSentAt: nowMs() };
};

/**
 * Polled until every volume of the round is fully initialized, as DescribeVolumeStatus reports it: a
 * volume made from a snapshot loads its blocks lazily, and the pool hands out only warm volumes
 * (docs/decisions.md, "Warm volumes"). Volumes created empty report no initialization and pass. While
 * it waits the run keeps the AZ's lease (a 1 TiB volume at 300 MiB/s takes about an hour, longer than
 * the lease) and reports how many volumes are initializing. Once all are, it records each one's
 * seconds from creation to reported initialization (an upper bound: the report lags up to 5 minutes).
 */
const waitInitialized: Step<ReplenishCtx> = async (ctx, { ec2, repo }) => {
  const initializing: string[] = [];
  for (const v of ctx.volumes ?? []) {
    if (v.empty) continue;
    const report = await readInitialization(ec2, v.volumeId);
    if (!report.initialized) initializing.push(`${v.volumeId} at ${report.progress}%`);
  }
  azMetric(ctx.pool, ctx.az, 'VolumesInitializing', initializing.length);
  if (initializing.length > 0) {
    if (ctx.runId && !(await repo.renewLease(leaseName(ctx), ctx.runId, leaseSeconds)))
      logger.warn('lost the AZ lease while volumes initialize', { pool: ctx.pool, az: ctx.az });
    throw new VolumeInitializing(
      `${initializing.length} volume(s) initializing: ${initializing.slice(0, 5).join(', ')}`,
    );
  }
  for (const v of ctx.volumes ?? []) {
    if (v.empty) continue;
    const created = (await describeVolume(ec2, v.volumeId))?.CreateTime;
    if (created) metrics.addMetric('InitializationSeconds', 'Seconds', (nowMs() - created.getTime()) / 1000);
  }
  return ctx;
};

/** Marks the synced volumes IDLE at the generation they were synced to. */
const markIdle: Step<ReplenishCtx> = async (ctx, { repo }) => {
  for (const v of ctx.volumes ?? []) {
    const record = await repo.getVolume(v.volumeId);
    if (record.state !== VolumeState.Syncing) continue;
    await repo.transition({
      volumeId: v.volumeId,
      from: VolumeState.Syncing,
      to: VolumeState.Idle,
      // A sync that succeeded rebuilt an untrusted volume: it is trusted again.
      set: { generation: Math.max(record.generation, ctx.generation ?? 0), reason: null, untrusted: null },
    });
  }
  return { ...ctx, volumes: [] };
};

/**
 * Retires idle extras, and finishes the retires a failed run left: RETIRING (an extra claimed meanwhile
 * is skipped), then unmount where the volume is attached.
 */
const retireUnmount: Step<ReplenishCtx> = async (ctx, { repo, ssm, ec2, config }) => {
  const retiring: string[] = [];
  const commands: PendingCommand[] = [];
  for (const volumeId of ctx.retire ?? []) {
    const record = await repo.findVolume(volumeId);
    if (!record) continue;
    if (record.state === VolumeState.Idle) {
      try {
        await repo.transition({
          volumeId,
          from: VolumeState.Idle,
          to: VolumeState.Retiring,
          expectedVersion: record.version,
        });
      } catch {
        continue; // claimed meanwhile: it is not an extra any more
      }
    } else if (record.state !== VolumeState.Retiring) continue;
    retiring.push(volumeId);
    // Unmount where EC2 says it is attached (a leftover may already be detached, its holder gone).
    const volume = await describeVolume(ec2, volumeId);
    const on = volume ? attachmentOf(volume)?.InstanceId : undefined;
    if (on) {
      const commandId = await sendDocument(ssm, {
        documentName: config.UNMOUNT_DOCUMENT,
        instanceId: on,
        parameters: { VolumeId: volumeId },
        comment: `volsd retire ${volumeId}`,
      });
      commands.push({ commandId, instanceId: on, document: config.UNMOUNT_DOCUMENT });
    }
  }
  return { ...ctx, retire: retiring, commands };
};

/** Detaches the retiring volumes. */
const retireDetach: Step<ReplenishCtx> = async (ctx, { ec2 }) => {
  for (const volumeId of ctx.retire ?? []) {
    const volume = await describeVolume(ec2, volumeId);
    if (volume) await detachVolume(ec2, volume);
  }
  return ctx;
};

/** Polled until the retiring volumes are detached, then deletes and forgets them. */
const retireDelete: Step<ReplenishCtx> = async (ctx, { ec2, repo }) => {
  for (const volumeId of ctx.retire ?? []) {
    const volume = await describeVolume(ec2, volumeId);
    if (volume && volume.State !== 'available')
      throw new VolumeNotReady(`volume ${volumeId} is ${volume.State}`);
  }
  for (const volumeId of ctx.retire ?? []) {
    await deleteVolume(ec2, volumeId);
    await repo.forgetVolume(volumeId);
  }
  if (ctx.retire?.length) metrics.addMetric('VolumesRetired', 'Count', ctx.retire.length);
  return { ...ctx, retired: (ctx.retired ?? 0) + (ctx.retire?.length ?? 0), retire: [] };
};

/** The follow-up run's execution name: derived from the run it follows, at most 80 characters. */
export function followUpName(runId: string): string {
  const name = `${runId.slice(0, 64)}-then-${createHash('sha256').update(runId).digest('hex').slice(0, 8)}`;
  return name.replace(/[^A-Za-z0-9_-]/g, '-');
}

/** Gives the AZ's lease back; starts a follow-up run when one was asked for meanwhile. */
const done: Step<ReplenishCtx> = async (ctx, deps) => {
  const { repo } = deps;
  // Still holding the lease: a surplus worker this run drained is retired now that it holds nothing.
  if (ctx.leased && ctx.drainWorkers?.length) {
    // Best effort: the next run retires what this one could not.
    await retireDrained(ctx, deps).catch((err: unknown) =>
      logger.warn('drained workers not retired this run', { az: ctx.az, error: String(err) }),
    );
  }
  if (ctx.leased && ctx.runId) {
    const { wanted } = await repo.releaseLease(leaseName(ctx), ctx.runId);
    // Asked for while this run held the AZ (a launch, a release, a run that found the lease taken):
    // one follow-up run, named after this one so a retried step starts it once.
    if (wanted) {
      await requestReplenish(
        deps,
        deps.config.REPLENISH_STATE_MACHINE_ARN,
        { pool: ctx.pool, az: ctx.az, reason: 'wanted' },
        { name: followUpName(ctx.runId) },
      );
    }
  }
  // Every run reports the AZ's idle count: the "idle below target" alarm notifies when it goes silent.
  const idle = await repo.listVolumes({ pool: ctx.pool, az: ctx.az, state: VolumeState.Idle });
  azMetric(ctx.pool, ctx.az, 'IdleVolumes', idle.length);
  logger.info('replenish round done', {
    pool: ctx.pool,
    az: ctx.az,
    created: ctx.created,
    retired: ctx.retired,
  });
  return { ...ctx, leased: false };
};

/**
 * After a failure: the volumes of this run that are still CREATING or SYNCING stay in the table (the
 * next run adopts them or reconcile resolves them); the lease is given back so the next run can start.
 */
const failed: Step<ReplenishCtx> = async (ctx, deps) => {
  logger.error('replenish failed', { pool: ctx.pool, az: ctx.az, error: ctx.error });
  metrics.addMetric('ReplenishFailed', 'Count', 1);
  // A step that failed after Plan took the lease returns no `leased` (the Catch keeps the step's input):
  // the lease is released by owner all the same (a conditional delete: another run's lease stays), so the
  // AZ's next run starts now instead of after the lease's 15 minutes.
  return done({ ...ctx, leased: Boolean(ctx.runId) }, deps);
};

/** The replenish workflow's steps, by the name the state machine passes in `step`. */
export const replenishSteps: Record<string, Step<ReplenishCtx>> = {
  plan,
  waitAvailable,
  attachToWorker,
  waitAttached,
  prepare,
  waitCommands,
  sync,
  waitInitialized,
  markIdle,
  retireUnmount,
  retireDetach,
  retireDelete,
  done,
  failed,
};
