import { createHash } from 'node:crypto';
import { sendDocument, syncMaxObjectBytes } from '../shared/commands.js';
import {
  attachAtFreeDevice,
  attachmentOf,
  attachmentsOn,
  createRecordedVolume,
  describeVolume,
  detachFromInstance,
  detachVolume,
  mappedDevices,
  requireLiveInstance,
  requireVolume,
  setDeleteOnTermination,
} from '../shared/ec2-ops.js';
import {
  AttachStuck,
  AzNotCovered,
  CommandFailed,
  ConcurrentModification,
  InstanceGone,
  InstanceNotReady,
  InvalidInput,
  MountTimedOut,
  NoIdleVolume,
  PoolNotReady,
  VolumeHeldElsewhere,
  VolumeNotFound,
  VolumeNotReady,
} from '../shared/errors.js';
import { readInitialization } from '../shared/initialization.js';
import { recordLaunch } from '../shared/launch-recording.js';
import { completeLifecycleAction } from '../shared/lifecycle.js';
import { logger, metrics } from '../shared/logger.js';
import { VolumeState } from '../shared/model.js';
import { mountPathProblem, mountRoots } from '../shared/mount-path.js';
import { requestReplenish } from '../shared/replenish-request.js';
import {
  maybeHeartbeat,
  resultNumber,
  type Step,
  type StepDeps,
  type WorkflowCtx,
  waitCommand,
} from '../shared/steps.js';
import { bootUnitTag } from '../shared/tags.js';
import { WaitKind } from '../shared/task-waits.js';
import { nowMs } from '../shared/time.js';
import { executionName } from '../shared/workflow-input.js';
import {
  type ChainStep,
  type ChainStepDeps,
  type ChainSteps,
  callbackSteps,
  taskWaits,
  waitTtlSeconds,
} from './callbacks.js';
import {
  heartbeatAfterWait,
  heartbeatWhileWaiting,
  poolBeingBuilt,
  uncoveredAzResult,
} from './first-deploy.js';

/** How long an attach may stay `attaching` before it is aborted and retried (the EBS CSI driver's bound). */
export const attachTimeoutMs = 90_000;
/** How many attaches are tried before the acquire gives up. */
export const maxAttachAttempts = 3;
/** How many sync rounds bring a volume current before giving up (a push per round would be needed to lose). */
export const maxSyncRounds = 5;
/**
 * How many times Volsd-Mount is sent to the instance when it ends TimedOut (SSM did not deliver it
 * within its TimeoutSeconds, or the agent killed it at its execution timeout) before the acquire gives up.
 */
export const maxMountAttempts = 3;

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new InvalidInput(`acquire step needs ${what}`);
  return value;
}

/**
 * Finds the instance's AZ; an instance that is gone ends the acquire. One EC2 does not know yet (its
 * launch is seconds old: DescribeInstances is eventually consistent) is InstanceNotReady, polled.
 */
const resolve: Step = async (ctx, deps) => {
  const { ec2, repo, config } = deps;
  // Armed before the instance's state is read: a `running` event from now on is marked on the wait
  // (lambdas/events), and one that came before is what the read below sees.
  const waits = taskWaits(deps);
  await waits.arm(WaitKind.Running, ctx.instanceId, waitTtlSeconds);
  const instance = await requireLiveInstance(ec2, ctx.instanceId, { justLaunched: true });
  if (instance.State?.Name !== 'pending') await waits.fire(WaitKind.Running, ctx.instanceId);
  const az = instance.Placement?.AvailabilityZone;
  if (!az) throw new InstanceGone(`instance ${ctx.instanceId} has no placement`);
  const pool = await repo.getPool(ctx.pool);
  if (!pool.azs.includes(az))
    throw new AzNotCovered(
      `instance ${ctx.instanceId} is in ${az}; pool ${ctx.pool} has sync workers in ${pool.azs.join(', ')} only`,
    );
  if (ctx.mountPath !== undefined) {
    const problem = mountPathProblem(ctx.mountPath, mountRoots(config.MOUNT_ROOTS, config.MOUNT_PATH));
    if (problem) throw new InvalidInput(`refusing mount path ${ctx.mountPath}: ${problem}`);
  }
  // Adaptive sizing counts the launch when the acquire first resolves it; a retried Resolve (a crash after
  // the write) counts the same instance again, which the hour's instance set absorbs.
  if (ctx.startedAt === undefined)
    await recordLaunch(config, { pool: ctx.pool, az, instanceId: ctx.instanceId });
  const bootUnit = instance.Tags?.some((t) => t.Key === bootUnitTag && t.Value === '1') === true;
  const resolved = {
    ...ctx,
    az,
    bootUnit,
    // Kept for the boot-unit path's first attach (`attachRunning`), which then needs no describe.
    ...(bootUnit ? { launchDevices: mappedDevices(instance) } : {}),
    startedAt: ctx.startedAt ?? nowMs(),
  };
  // Claimed in the same invocation (one Lambda call fewer per acquire); nothing to claim yet is left
  // to the Claim state and its polls.
  try {
    return await claim(resolved, deps);
  } catch (err) {
    if (err instanceof NoIdleVolume || err instanceof PoolNotReady) return resolved;
    throw err;
  }
};

/**
 * Claims an idle volume (idempotent per instance). Nothing idle: asks for a replenish, then either
 * creates a volume from the latest snapshot straight for the instance (direct creation, the default)
 * or fails to be retried while the pool refills: PoolNotReady while the pool has no snapshot yet (it is
 * being built: the longer wait), NoIdleVolume otherwise.
 */
const claim: Step = async (ctx, deps) => {
  const az = need(ctx.az, 'az');
  try {
    const volume = await deps.repo.claimVolume({ pool: ctx.pool, az, instanceId: ctx.instanceId });
    return await heartbeatAfterWait(
      { ...ctx, volumeId: volume.volumeId, generation: volume.generation },
      deps,
    );
  } catch (err) {
    if (!(err instanceof NoIdleVolume)) throw err;
    await requestReplenish(deps, deps.config.REPLENISH_STATE_MACHINE_ARN, {
      pool: ctx.pool,
      az,
      reason: 'no-idle',
    });
    const created = deps.config.DIRECT_CREATE ? await createForInstance(ctx, az, deps) : undefined;
    if (created) return created;
    await heartbeatWhileWaiting(ctx, deps);
    // With direct creation on, nothing created means no snapshot.
    const snapshotless =
      deps.config.DIRECT_CREATE || (await deps.repo.getPool(ctx.pool)).latestSnapshot === undefined;
    if (snapshotless) throw poolBeingBuilt(ctx, az);
    throw err;
  }
};

/**
 * Direct creation: a volume from the pool's latest snapshot, in the instance's AZ, recorded CLAIMED by
 * the instance. It then walks the usual path (nothing to unmount or detach: it is on no worker) and is
 * brought current on the instance by BringCurrent's delta sync. The client token is derived from the
 * execution, so a retried step gets the same volume and a later acquire of the same instance a new one.
 * Without a snapshot there is nothing to create from (an empty volume would need the whole tree): undefined.
 */
async function createForInstance(
  ctx: WorkflowCtx,
  az: string,
  { ec2, repo, config }: StepDeps,
): Promise<WorkflowCtx | undefined> {
  const snapshot = (await repo.getPool(ctx.pool)).latestSnapshot;
  if (!snapshot) return undefined;
  const token = createHash('sha256')
    .update(`direct:${executionName(ctx)}`)
    .digest('hex')
    .slice(0, 48);
  const volumeId = await createRecordedVolume(ec2, repo, {
    pool: ctx.pool,
    az,
    snapshotId: snapshot.snapshotId,
    clientToken: `direct-${token}`,
    spec: config,
  });
  const volume = await repo.claimCreated({
    volumeId,
    pool: ctx.pool,
    az,
    instanceId: ctx.instanceId,
    snapshotId: snapshot.snapshotId,
    generation: snapshot.generation,
  });
  metrics.addMetric('DirectCreates', 'Count', 1);
  logger.info('no idle volume: created one from the latest snapshot for the instance', {
    instanceId: ctx.instanceId,
    volumeId,
    snapshotId: snapshot.snapshotId,
    generation: snapshot.generation,
  });
  return { ...ctx, volumeId, generation: volume.generation, direct: true };
}

/** Unmounts the claimed volume on the worker that holds it (skipped when it is attached nowhere else). */
const unmountOnWorker: Step = async (ctx, { ec2, ssm, config }) => {
  const volumeId = need(ctx.volumeId, 'volumeId');
  // A volume created for this instance was never on a worker (and EC2 may not list it yet).
  if (ctx.direct) return ctx;
  const attachment = attachmentOf(await requireVolume(ec2, volumeId));
  if (!attachment?.InstanceId || attachment.InstanceId === ctx.instanceId) return ctx;
  const commandId = await sendDocument(ssm, {
    documentName: config.UNMOUNT_DOCUMENT,
    instanceId: attachment.InstanceId,
    parameters: { VolumeId: volumeId },
    comment: `volsd unmount ${volumeId} for ${ctx.instanceId}`,
  });
  return {
    ...ctx,
    workerId: attachment.InstanceId,
    command: { commandId, instanceId: attachment.InstanceId, document: config.UNMOUNT_DOCUMENT },
  };
};

/** Marks the volume DETACHING and detaches it from the worker. Re-runnable. */
const detachFromWorker: ChainStep = async (ctx, { ec2, repo }) => {
  const volumeId = need(ctx.volumeId, 'volumeId');
  const record = await repo.getVolume(volumeId);
  if (record.holder !== ctx.instanceId)
    throw new VolumeHeldElsewhere(`volume ${volumeId} is held by ${record.holder}`);
  if (record.state === VolumeState.Claimed) {
    await repo.transition({
      volumeId,
      from: VolumeState.Claimed,
      to: VolumeState.Detaching,
      expectedHolder: ctx.instanceId,
      read: record,
    });
  }
  if (ctx.direct) return ctx;
  // The unmount named the worker: detach from it without describing the volume first (one call fewer);
  // anything unexpected (detached already, a re-run) is decided on the description below.
  if (ctx.workerId && (await detachFromInstance(ec2, volumeId, ctx.workerId))) return ctx;
  const volume = await requireVolume(ec2, volumeId);
  const attachment = attachmentOf(volume);
  if (attachment && attachment.InstanceId !== ctx.instanceId) await detachVolume(ec2, volume);
  return ctx;
};

/** Polled until the volume is available (or already on its way to this instance). */
const waitDetached: Step = async (ctx, { ec2 }) => {
  const volumeId = need(ctx.volumeId, 'volumeId');
  const volume = await requireVolume(ec2, volumeId, { justCreated: ctx.direct === true });
  const attachment = attachmentOf(volume);
  if (volume.State === 'available' || attachment?.InstanceId === ctx.instanceId) return ctx;
  throw new VolumeNotReady(`volume ${volumeId} is ${volume.State}/${attachment?.State ?? '-'}`);
};

/**
 * Attaches the volume at a free device of the instance once it is `running` (AWS refuses AttachVolume
 * while it is pending: InstanceNotReady, polled by the state machine while it boots). Device names an
 * aborted attach left unusable (`avoidDevices`) are not chosen again. Re-runnable.
 */
const attach: Step = (ctx, deps) => attachWith(ctx, deps, () => maybeHeartbeat(ctx, deps));

/**
 * Attach over EC2 and the table; `whilePending` runs before InstanceNotReady (the step's lifecycle
 * heartbeat: a pending instance may be polled for a while).
 */
async function attachWith(
  ctx: WorkflowCtx,
  { ec2, repo }: ChainStepDeps,
  whilePending?: () => Promise<unknown>,
): Promise<WorkflowCtx> {
  const volumeId = need(ctx.volumeId, 'volumeId');
  const instance = await requireLiveInstance(ec2, ctx.instanceId);
  if (instance.State?.Name === 'pending') {
    await whilePending?.();
    throw new InstanceNotReady(`instance ${ctx.instanceId} is pending: attach once it runs`);
  }
  // What the instance holds, by one DescribeVolumes: the free names, and this volume if a re-run finds
  // it attached already (the volume itself is not described: AttachVolume says where else it still is).
  const held = await attachmentsOn(ec2, instance);
  const here = held.volumes.get(volumeId);
  if (here) return { ...ctx, device: here, attachRequestedAt: ctx.attachRequestedAt ?? nowMs() };
  const attempts = (ctx.attachAttempts ?? 0) + 1;
  if (attempts > maxAttachAttempts)
    throw new AttachStuck(`volume ${volumeId}: ${maxAttachAttempts} attaches did not complete`);
  await markAttaching(ctx, volumeId, repo);
  const device = await attachAtFreeDevice(
    ec2,
    volumeId,
    instance,
    ctx.avoidDevices ?? [],
    held.devices,
  ).catch((err: unknown) => {
    const name = (err as { name?: string }).name;
    const message = err instanceof Error ? err.message : String(err);
    // Still on its way off the worker (its detach can trail the instance's `running` event), or
    // detaching: "The volume '...' is not 'available'." A wait, polled by the Task.
    if (name === 'VolumeInUse' || (name === 'IncorrectState' && /is not 'available'/.test(message)))
      throw new VolumeNotReady(`volume ${volumeId} cannot attach yet: ${message}`, { cause: err });
    if (name === 'InvalidVolume.NotFound')
      throw new VolumeNotFound(`volume ${volumeId} is unknown to EC2`, { cause: err });
    throw err;
  });
  return { ...ctx, device, attachAttempts: attempts, attachRequestedAt: nowMs() };
}

/** Moves the record to ATTACHING for this instance (from DETACHING; already ATTACHING for it: as is). */
async function markAttaching(ctx: WorkflowCtx, volumeId: string, repo: StepDeps['repo']): Promise<void> {
  const record = await repo.getVolume(volumeId);
  if (record.state === VolumeState.Detaching) {
    await repo.transition({
      volumeId,
      from: VolumeState.Detaching,
      to: VolumeState.Attaching,
      expectedHolder: ctx.instanceId,
      read: record,
    });
  } else if (record.state !== VolumeState.Attaching || record.holder !== ctx.instanceId) {
    throw new ConcurrentModification(
      `volume ${volumeId} is ${record.state}, held by ${record.holder ?? '-'}`,
    );
  }
}

/**
 * Attach's first try on the boot-unit path, which runs on the instance's `running` event: no
 * DescribeInstances (it runs) and no DescribeVolumes (two calls fewer per acquire). The device is the
 * first free name past the launch mappings Resolve saw; a name taken since (something else attached)
 * is "in use", and the next name is tried. AttachVolume itself tells the rest: VolumeInUse or "not
 * 'available'" is either a re-run whose attach happened (the volume is then described: attached here
 * is done) or the volume still leaving the worker (VolumeNotReady, polled). Without the launch mappings,
 * or after an attach was tried, it is Attach.
 */
const attachRunning: ChainStep = async (ctx, deps) => {
  // No lifecycle heartbeat (the events function has no Auto Scaling client): the instance ran, so a
  // pending read is EC2's lag, retried within seconds.
  if (ctx.launchDevices === undefined || ctx.attachAttempts !== undefined) return attachWith(ctx, deps);
  const { ec2, repo } = deps;
  const volumeId = need(ctx.volumeId, 'volumeId');
  await markAttaching(ctx, volumeId, repo);
  const device = await attachAtFreeDevice(
    ec2,
    volumeId,
    { InstanceId: ctx.instanceId },
    ctx.avoidDevices ?? [],
    new Set(ctx.launchDevices),
  ).catch(async (err: unknown) => {
    const name = (err as { name?: string }).name;
    const message = err instanceof Error ? err.message : String(err);
    if (name === 'VolumeInUse' || (name === 'IncorrectState' && /is not 'available'/.test(message))) {
      const attachment = attachmentOf(await requireVolume(ec2, volumeId));
      if (attachment?.InstanceId === ctx.instanceId && attachment.Device) return attachment.Device;
      throw new VolumeNotReady(`volume ${volumeId} cannot attach yet: ${message}`, { cause: err });
    }
    if (name === 'InvalidVolume.NotFound')
      throw new VolumeNotFound(`volume ${volumeId} is unknown to EC2`, { cause: err });
    // Every name tried was in use: the instance holds more than its launch mappings; Attach describes it.
    if (name === 'InvalidParameterValue' && /in use/i.test(message)) return undefined;
    throw err;
  });
  if (device === undefined) return attachWith(ctx, deps);
  return { ...ctx, device, attachAttempts: 1, attachRequestedAt: ctx.attachRequestedAt ?? nowMs() };
};

/** Polled until attached; an attach stuck past its bound is AttachStuck (aborted, then retried). */
const waitAttached: Step = async (ctx, deps) => {
  const volumeId = need(ctx.volumeId, 'volumeId');
  const next = await maybeHeartbeat(ctx, deps);
  const volume = await requireVolume(deps.ec2, volumeId);
  const attachment = attachmentOf(volume);
  if (attachment?.InstanceId === ctx.instanceId && attachment.State === 'attached') return next;
  if (attachment?.InstanceId !== ctx.instanceId) {
    await requireLiveInstance(deps.ec2, ctx.instanceId); // InstanceGone explains a vanished attachment
    throw new VolumeNotReady(`volume ${volumeId} is not attaching to ${ctx.instanceId}`);
  }
  if (nowMs() - (ctx.attachRequestedAt ?? nowMs()) > attachTimeoutMs) {
    throw new AttachStuck(`volume ${volumeId} still ${attachment.State} on ${ctx.instanceId}`);
  }
  throw new VolumeNotReady(`volume ${volumeId} is ${attachment.State}`);
};

/** Aborts a stuck attach: force-detaches so the next attach starts clean. */
const abortAttach: Step = async (ctx, { ec2, repo }) => {
  const volumeId = need(ctx.volumeId, 'volumeId');
  const volume = await requireVolume(ec2, volumeId);
  const stuck = attachmentOf(volume);
  const stuckAt = stuck?.InstanceId === ctx.instanceId ? stuck.Device : undefined;
  await detachVolume(ec2, volume, { force: true });
  const record = await repo.getVolume(volumeId);
  if (record.state === VolumeState.Attaching) {
    await repo.transition({
      volumeId,
      from: VolumeState.Attaching,
      to: VolumeState.Detaching,
      expectedHolder: ctx.instanceId,
    });
  }
  metrics.addMetric('AttachAborted', 'Count', 1);
  const { error: _e, ...rest } = ctx;
  // A forced detach can leave the device name unusable on the instance until it reboots (EBS user
  // guide, "Detach an Amazon EBS volume"): the next attach takes another.
  const avoid = stuckAt ? [...new Set([...(ctx.avoidDevices ?? []), stuckAt])] : ctx.avoidDevices;
  return avoid ? { ...rest, avoidDevices: avoid } : rest;
};

/**
 * Mounts the volume on the instance (Volsd-Mount finds the device by the volume id in its NVMe serial).
 * Counts its sends: WaitMount sends it again after a timed-out one (`waitMount`).
 */
const mount: Step = async (fromCtx, { ec2, ssm, config }) => {
  const { mountError: _timedOut, ...ctx } = fromCtx;
  const volumeId = need(ctx.volumeId, 'volumeId');
  const mountPath = ctx.mountPath ?? config.MOUNT_PATH;
  const commandId = await sendDocument(ssm, {
    documentName: config.MOUNT_DOCUMENT,
    instanceId: ctx.instanceId,
    parameters: {
      VolumeId: volumeId,
      MountPath: mountPath,
      MountOptions: config.MOUNT_OPTIONS,
      // The host checks the path again once its symlinks are resolved.
      MountRoots: mountRoots(config.MOUNT_ROOTS, config.MOUNT_PATH).join(' '),
    },
    comment: `volsd mount ${volumeId}`,
  }).catch(async (err: unknown) => {
    // Not reachable yet is normal while it boots; not reachable because it is gone ends the acquire now.
    if (err instanceof InstanceNotReady) await requireLiveInstance(ec2, ctx.instanceId);
    throw err;
  });
  return {
    ...ctx,
    mountAttempts: (ctx.mountAttempts ?? 0) + 1,
    command: { commandId, instanceId: ctx.instanceId, document: config.MOUNT_DOCUMENT },
  };
};

/**
 * Waits for Volsd-Mount like any command, but a mount that ended TimedOut is not the end of the launch:
 * a Run Command can time out on AWS too (an agent slow to pick it up past TimeoutSeconds, a host too busy
 * to finish within the execution timeout), and the mount is idempotent (it finds the volume by its
 * serial, takes a lock, and leaves an existing mount of it as it is). With attempts left it throws
 * MountTimedOut, which the state machine sends back to Mount; after `maxMountAttempts` it fails as before.
 */
const waitMount: Step = async (ctx, deps) => {
  try {
    return await waitCommand(ctx, deps);
  } catch (err) {
    if (!(err instanceof CommandFailed) || err.status !== 'TimedOut') throw err;
    const attempts = ctx.mountAttempts ?? 1;
    if (attempts >= maxMountAttempts) throw err;
    metrics.addMetric('MountTimedOut', 'Count', 1);
    logger.warn('the mount command timed out; sending it again', {
      instanceId: ctx.instanceId,
      volumeId: ctx.volumeId,
      statusDetails: err.statusDetails,
      attempt: attempts,
    });
    throw new MountTimedOut(`${err.message}; mount attempt ${attempts} of ${maxMountAttempts}`, {
      cause: err,
    });
  }
};

/**
 * Brings the mounted volume to the pool's current generation. Sets `current` when it already is;
 * otherwise starts Volsd-Sync for this volume and the state machine waits and comes back here, so a
 * push that lands meanwhile is caught by the next round.
 */
const bringCurrent: Step = async (ctx, { repo, ssm, config }) => {
  const volumeId = need(ctx.volumeId, 'volumeId');
  // The volume's own marker (`.volsd/generation`, which the mount or the sync just read) is the truth about
  // its bytes; the table's figure stands in only when no script reported one. Taking the higher of the two
  // let a table ahead of the volume skip the sync and send the instance InService behind.
  const reported = resultNumber(ctx, volumeId, 'generation');
  const generation = Math.max(
    reported ?? ctx.generation ?? 0,
    // A sync round counts only when its command reported something (an empty list is a round not run).
    ctx.syncingTo && ctx.lastResults?.length ? ctx.syncingTo : 0,
  );
  const pool = await repo.getPool(ctx.pool);
  if (generation >= pool.generation) return { ...ctx, generation, current: true, lastResults: [] };
  const rounds = (ctx.syncRounds ?? 0) + 1;
  if (rounds > maxSyncRounds)
    throw new VolumeNotReady(`volume ${volumeId} still behind after ${maxSyncRounds} syncs`);
  const commandId = await sendDocument(ssm, {
    documentName: config.SYNC_DOCUMENT,
    instanceId: ctx.instanceId,
    parameters: {
      VolumeId: volumeId,
      Bucket: config.PUSH_BUCKET,
      Prefix: config.PUSH_PREFIX,
      Generation: String(pool.generation),
      MaxObjectBytes: syncMaxObjectBytes(),
    },
    timeoutSeconds: 600,
    comment: `volsd sync ${volumeId} to ${pool.generation}`,
  });
  return {
    ...ctx,
    generation,
    current: false,
    syncRounds: rounds,
    syncingTo: pool.generation,
    lastResults: [],
    command: { commandId, instanceId: ctx.instanceId, document: config.SYNC_DOCUMENT },
  };
};

/**
 * Decides whether the volume is warm enough to go InService. A pool volume is: replenish marks a volume
 * IDLE only once it is fully initialized. A direct creation is still loading its blocks from the snapshot;
 * with COLD_DIRECT_VOLUME=hold the launch waits in Pending:Wait (`initialization` unset: the state machine
 * waits `initializationWaitSeconds` and asks again), with lifecycle heartbeats, until DescribeVolumeStatus
 * reports it initialized or INITIALIZATION_HOLD_SECONDS have passed; with `continue` it goes on at once.
 * Either way the outcome is counted: ColdHandoffs, or InitializationHeldSeconds.
 */
const checkInitialized: Step = async (ctx, deps) => {
  if (!ctx.direct) return { ...ctx, initialization: 'warm' };
  const volumeId = need(ctx.volumeId, 'volumeId');
  const report = await readInitialization(deps.ec2, volumeId);
  const now = nowMs();
  if (report.initialized) {
    if (ctx.holdingSince === undefined) return { ...ctx, initialization: 'warm' };
    metrics.addMetric('InitializationHeldSeconds', 'Seconds', (now - ctx.holdingSince) / 1000);
    return { ...ctx, initialization: 'held' };
  }
  const holdingSince = ctx.holdingSince ?? now;
  const holdOver = now - holdingSince >= deps.config.INITIALIZATION_HOLD_SECONDS * 1000;
  if (deps.config.COLD_DIRECT_VOLUME === 'continue' || holdOver) {
    metrics.addMetric('ColdHandoffs', 'Count', 1);
    logger.warn('instance goes InService on a volume still initializing', {
      instanceId: ctx.instanceId,
      volumeId,
      progress: report.progress,
      reason: holdOver ? 'hold-expired' : 'cold-direct-volume-continue',
    });
    return { ...ctx, initialization: 'cold' };
  }
  const next = await maybeHeartbeat({ ...ctx, holdingSince }, deps);
  // Wake near the provisioned rate's estimate, else every 30 s; 10-120 s, so a late report costs little;
  // and never later than a third of the heartbeat timeout, so the next look can heartbeat in time.
  const heartbeatBound = Math.max(5, Math.floor(deps.config.HEARTBEAT_TIMEOUT / 3));
  const wait = Math.min(120, heartbeatBound, Math.max(10, report.estimatedSeconds ?? 30));
  return { ...next, initializationWaitSeconds: wait };
};

/** Safety net, IN_USE, and the lifecycle action completed with CONTINUE. Re-runnable. */
const finish: Step = async (ctx, deps) => {
  const volumeId = need(ctx.volumeId, 'volumeId');
  const device = need(ctx.device, 'device');
  const az = need(ctx.az, 'az');
  await setDeleteOnTermination(deps.ec2, ctx.instanceId, device);
  const record = await deps.repo.getVolume(volumeId);
  if (record.state === VolumeState.Attaching) {
    await deps.repo.transition({
      volumeId,
      from: VolumeState.Attaching,
      to: VolumeState.InUse,
      expectedHolder: ctx.instanceId,
      set: { device, generation: ctx.generation ?? record.generation },
      read: record,
    });
  } else if (record.state !== VolumeState.InUse || record.holder !== ctx.instanceId) {
    throw new ConcurrentModification(
      `volume ${volumeId} is ${record.state}, held by ${record.holder ?? '-'}`,
    );
  }
  if (ctx.lifecycle)
    await completeLifecycleAction(deps.autoScaling, ctx.lifecycle, ctx.instanceId, 'CONTINUE');
  await requestReplenish(deps, deps.config.REPLENISH_STATE_MACHINE_ARN, {
    pool: ctx.pool,
    az,
    reason: 'acquired',
  });
  metrics.addMetric('AcquireSucceeded', 'Count', 1);
  if (ctx.startedAt) metrics.addMetric('AcquireDuration', 'Milliseconds', nowMs() - ctx.startedAt);
  logger.info('volume acquired', {
    instanceId: ctx.instanceId,
    volumeId,
    device,
    generation: ctx.generation,
  });
  return { ...ctx, outcome: 'acquired' };
};

/**
 * After a failure: gives the volume back according to where it really is (EC2, not the table), then
 * drops the assignment. Still on the worker: remounted there (the volume goes back to IDLE once that
 * command succeeds). Detached or on the instance: detached (forced) and handed to the pool as SYNCING,
 * for the replenish workflow to re-attach and resync. Unknown: ERROR, for reconcile.
 */
const compensate: Step = async (failedCtx, deps) => {
  const { repo, ec2, ssm, config } = deps;
  // A command of the failed step is not this compensation's to wait for.
  const { command: _failedCommand, ...ctx } = failedCtx;
  const reason = `${ctx.error?.Error ?? 'failed'}: ${String(ctx.error?.Cause ?? '').slice(0, 300)}`;
  logger.warn('acquire failed, compensating', { instanceId: ctx.instanceId, volumeId: ctx.volumeId, reason });
  const assignment = await repo.getAssignment(ctx.instanceId);
  const volumeId = ctx.volumeId ?? assignment?.volumeId;
  if (!volumeId) {
    await repo.dropAssignment(ctx.instanceId);
    return { ...ctx, compensation: 'nothing-claimed' };
  }
  const record = await repo.findVolume(volumeId);
  if (!record || record.holder !== ctx.instanceId) {
    await repo.dropAssignment(ctx.instanceId, volumeId).catch(() => undefined);
    return { ...ctx, compensation: 'not-held' };
  }
  const volume = await describeVolume(ec2, volumeId);
  const attachment = volume ? attachmentOf(volume) : undefined;
  const onWorker = attachment?.InstanceId !== undefined && attachment.InstanceId !== ctx.instanceId;
  let compensation: string;
  let command: WorkflowCtx['command'];
  if (!volume) {
    await repo.transition({
      volumeId,
      from: record.state,
      to: VolumeState.Error,
      set: { reason, holder: null },
    });
    compensation = 'volume-gone';
  } else if (
    onWorker &&
    attachment?.InstanceId &&
    (record.state === VolumeState.Claimed || record.state === VolumeState.Detaching)
  ) {
    const workerId = attachment.InstanceId;
    const commandId = await sendDocument(ssm, {
      documentName: config.MOUNT_DOCUMENT,
      instanceId: workerId,
      parameters: {
        VolumeId: volumeId,
        MountPath: `${config.WORKER_MOUNT_ROOT}/${volumeId}`,
        MountOptions: config.MOUNT_OPTIONS,
      },
      comment: `volsd remount ${volumeId} after failed acquire`,
    }).catch(() => undefined);
    if (commandId) {
      command = { commandId, instanceId: workerId, document: config.MOUNT_DOCUMENT };
      compensation = 'remount-on-worker';
    } else {
      await toPool(deps, volumeId, record.state, reason);
      compensation = 'to-pool';
    }
  } else {
    if (attachment) await detachVolume(ec2, volume, { force: true });
    await toPool(deps, volumeId, record.state, reason);
    compensation = 'to-pool';
  }
  if (compensation !== 'remount-on-worker')
    await repo.dropAssignment(ctx.instanceId, volumeId).catch(() => undefined);
  metrics.addMetric('AcquireFailed', 'Count', 1);
  return { ...ctx, compensation, ...(command ? { command } : {}) };
};

/** Hands a volume to the pool for re-attachment and resync (SYNCING, no holder). */
async function toPool(deps: StepDeps, volumeId: string, from: VolumeState, reason: string) {
  const to = from === VolumeState.Claimed ? VolumeState.Error : VolumeState.Syncing;
  // CLAIMED cannot go to SYNCING directly: its real place is unknown to the model, reconcile decides.
  await deps.repo.transition({
    volumeId,
    from,
    to,
    set: { holder: null, device: null, claimedAt: null, reason },
  });
}

/** After the worker remounted the volume: back to IDLE (CLAIMED) or via SYNCING (DETACHING). */
const compensateDone: Step = async (ctx, { repo }) => {
  const volumeId = ctx.volumeId;
  if (ctx.compensation !== 'remount-on-worker' || !volumeId) return ctx;
  const record = await repo.getVolume(volumeId);
  const clear = { holder: null, device: null, claimedAt: null };
  if (ctx.compensationError && record.holder === ctx.instanceId) {
    // The worker did not take the volume back: its real state is unknown, reconcile resolves ERROR.
    const reason = `remount on worker failed: ${String(ctx.compensationError.Cause ?? '').slice(0, 300)}`;
    await repo.transition({ volumeId, from: record.state, to: VolumeState.Error, set: { ...clear, reason } });
    await repo.dropAssignment(ctx.instanceId, volumeId).catch(() => undefined);
    return { ...ctx, compensation: 'error' };
  }
  if (record.holder === ctx.instanceId && record.state === VolumeState.Claimed) {
    await repo.transition({ volumeId, from: VolumeState.Claimed, to: VolumeState.Idle, set: clear });
  } else if (record.holder === ctx.instanceId && record.state === VolumeState.Detaching) {
    await repo.transition({ volumeId, from: VolumeState.Detaching, to: VolumeState.Syncing, set: clear });
    await repo.transition({ volumeId, from: VolumeState.Syncing, to: VolumeState.Idle });
  }
  await repo.dropAssignment(ctx.instanceId, volumeId).catch(() => undefined);
  return { ...ctx, compensation: 'returned-to-worker' };
};

/** Completes the lifecycle action with the configured failure result (ABANDON by default). */
const abandon: Step = async (ctx, deps) => {
  if (ctx.lifecycle) {
    await completeLifecycleAction(
      deps.autoScaling,
      ctx.lifecycle,
      ctx.instanceId,
      ctx.error?.Error === 'AzNotCovered' ? uncoveredAzResult(ctx) : deps.config.ACQUIRE_FAILURE_RESULT,
    );
  }
  if (ctx.az) {
    await requestReplenish(deps, deps.config.REPLENISH_STATE_MACHINE_ARN, {
      pool: ctx.pool,
      az: ctx.az,
      reason: 'no-idle',
    });
  }
  return { ...ctx, outcome: `failed: ${ctx.error?.Error ?? 'unknown'}` };
};

const plainSteps: Record<string, Step> = {
  resolve,
  claim,
  unmountOnWorker,
  waitCommand,
  detachFromWorker,
  waitDetached,
  attach,
  attachRunning,
  waitAttached,
  abortAttach,
  mount,
  waitMount,
  bringCurrent,
  checkInitialized,
  finish,
  compensate,
  compensateDone,
  abandon,
};

/** The steps the chain runs in the events function too (lambdas/acquire/callbacks.ts). */
export const chainSteps: ChainSteps = { detachFromWorker, attachRunning };

/** The acquire workflow's steps, by the name the state machine passes in `step`. */
export const acquireSteps: Record<string, Step> = { ...plainSteps, ...callbackSteps(plainSteps, chainSteps) };
