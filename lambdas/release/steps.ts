import { sendDocument } from '../shared/commands.js';
import { attachmentOf, deleteVolume, describeVolume, detachVolume } from '../shared/ec2-ops.js';
import { InstanceNotReady, InvalidInput, VolumeNotReady } from '../shared/errors.js';
import { completeLifecycleAction, recordHeartbeat } from '../shared/lifecycle.js';
import { logger, metrics } from '../shared/logger.js';
import { heldStates, VolumeState } from '../shared/model.js';
import { requestReplenish } from '../shared/replenish-request.js';
import type { Step } from '../shared/steps.js';
import { waitCommand } from '../shared/steps.js';

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new InvalidInput(`release step needs ${what}`);
  return value;
}

/**
 * Finds the instance's volume (its assignment, else a volume of the pool it holds) and marks it
 * RELEASING. `found: false` when it holds none. A volume still on its way to the instance (an acquire
 * in flight) is VolumeNotReady: the state machine waits for that acquire to end.
 */
const find: Step = async (ctx, { repo, autoScaling }) => {
  const assignment = await repo.getAssignment(ctx.instanceId);
  let volumeId = assignment?.volumeId;
  if (!volumeId) {
    const held = (await repo.listVolumes({ pool: ctx.pool })).find(
      (v) => v.holder === ctx.instanceId && heldStates.includes(v.state),
    );
    volumeId = held?.volumeId;
  }
  if (!volumeId) return { ...ctx, found: false };
  const record = await repo.findVolume(volumeId);
  if (!record) return { ...ctx, found: false, volumeId };
  if (record.state === VolumeState.InUse || record.state === VolumeState.Error) {
    await repo.transition({ volumeId, from: record.state, to: VolumeState.Releasing, set: { reason: null } });
  } else if (record.state !== VolumeState.Releasing) {
    // The acquire in flight ends soon (its instance is going away); keep the terminate action alive
    // meanwhile, whatever the hook's heartbeat timeout.
    if (ctx.lifecycle) await recordHeartbeat(autoScaling, ctx.lifecycle, ctx.instanceId);
    throw new VolumeNotReady(`volume ${volumeId} is ${record.state}: an acquire is still running`);
  }
  return {
    ...ctx,
    found: true,
    volumeId,
    az: record.az,
    ...(record.device ? { device: record.device } : {}),
  };
};

/** Unmounts on the instance; an instance that no longer answers SSM is not waited for (detach is forced). */
const unmount: Step = async (ctx, { ec2, ssm, config }) => {
  const volumeId = need(ctx.volumeId, 'volumeId');
  const volume = await describeVolume(ec2, volumeId);
  const attachment = volume ? attachmentOf(volume) : undefined;
  if (attachment?.InstanceId !== ctx.instanceId) return ctx;
  try {
    const commandId = await sendDocument(ssm, {
      documentName: config.UNMOUNT_DOCUMENT,
      instanceId: ctx.instanceId,
      parameters: { VolumeId: volumeId },
      comment: `volsd release ${volumeId}`,
    });
    return { ...ctx, command: { commandId, instanceId: ctx.instanceId, document: config.UNMOUNT_DOCUMENT } };
  } catch (err) {
    if (!(err instanceof InstanceNotReady)) throw err;
    return { ...ctx, force: true };
  }
};

/** Detaches from the instance (forced when the unmount did not succeed). Re-runnable. */
const detach: Step = async (ctx, { ec2 }) => {
  const volumeId = need(ctx.volumeId, 'volumeId');
  const volume = await describeVolume(ec2, volumeId);
  if (!volume) return ctx;
  const attachment = attachmentOf(volume);
  if (attachment?.InstanceId === ctx.instanceId)
    await detachVolume(ec2, volume, { force: ctx.force ?? false });
  const { command: _c, error: _e, ...rest } = ctx;
  return rest;
};

/** Polled until the volume is available or gone (DeleteOnTermination may have removed it). */
const waitDetached: Step = async (ctx, { ec2 }) => {
  const volumeId = need(ctx.volumeId, 'volumeId');
  const volume = await describeVolume(ec2, volumeId);
  if (!volume || volume.State === 'available') return ctx;
  const attachment = attachmentOf(volume);
  throw new VolumeNotReady(`volume ${volumeId} is ${volume.State}/${attachment?.State ?? '-'}`);
};

/** Forces the detach after a busy or failed one. */
const forceDetach: Step = async (ctx) => {
  const { error: _e, ...rest } = ctx;
  return { ...rest, force: true };
};

/** Deletes the volume (policy `delete`) or hands it back to the pool for a full resync (`recycle`). */
const dispose: Step = async (ctx, { ec2, repo, config }) => {
  const volumeId = need(ctx.volumeId, 'volumeId');
  const record = await repo.findVolume(volumeId);
  const volume = await describeVolume(ec2, volumeId);
  if (!record) return { ...ctx, outcome: 'already-forgotten' };
  const clear = { holder: null, device: null, claimedAt: null };
  if (config.RELEASE_POLICY === 'recycle' && volume) {
    if (record.state === VolumeState.Releasing) {
      // The instance had it: nothing on it is trusted. Generation 0 and untrusted: the next sync empties
      // it and rebuilds it from the bucket before it may be idle (or snapshotted) again.
      await repo.transition({
        volumeId,
        from: VolumeState.Releasing,
        to: VolumeState.Syncing,
        set: { ...clear, generation: 0, untrusted: true },
      });
    }
    return { ...ctx, outcome: 'recycled' };
  }
  if (record.state === VolumeState.Releasing) {
    await repo.transition({ volumeId, from: VolumeState.Releasing, to: VolumeState.Retiring, set: clear });
  }
  if (volume) await deleteVolume(ec2, volumeId);
  await repo.forgetVolume(volumeId);
  return { ...ctx, outcome: 'deleted' };
};

/** Drops the assignment, completes the lifecycle action with CONTINUE, asks for a replenish. */
const finish: Step = async (ctx, deps) => {
  await deps.repo.dropAssignment(ctx.instanceId, ctx.volumeId).catch((err: unknown) => {
    logger.warn('assignment names another volume; left in place', { instanceId: ctx.instanceId, err });
  });
  if (ctx.lifecycle)
    await completeLifecycleAction(deps.autoScaling, ctx.lifecycle, ctx.instanceId, 'CONTINUE');
  if (ctx.az) {
    await requestReplenish(deps, deps.config.REPLENISH_STATE_MACHINE_ARN, {
      pool: ctx.pool,
      az: ctx.az,
      reason: 'released',
    });
  }
  metrics.addMetric('ReleaseSucceeded', 'Count', 1);
  logger.info('volume released', {
    instanceId: ctx.instanceId,
    volumeId: ctx.volumeId,
    outcome: ctx.outcome,
  });
  return { ...ctx, outcome: ctx.outcome ?? (ctx.found ? 'released' : 'nothing-held') };
};

/** On failure: the lifecycle action still completes (a terminating instance terminates anyway). */
const giveUp: Step = async (ctx, deps) => {
  if (ctx.lifecycle)
    await completeLifecycleAction(deps.autoScaling, ctx.lifecycle, ctx.instanceId, 'CONTINUE');
  metrics.addMetric('ReleaseFailed', 'Count', 1);
  logger.error('release failed; reconcile will finish it', { instanceId: ctx.instanceId, error: ctx.error });
  return { ...ctx, outcome: `failed: ${ctx.error?.Error ?? 'unknown'}` };
};

/** The release workflow's steps, by the name the state machine passes in `step`. */
export const releaseSteps: Record<string, Step> = {
  find,
  unmount,
  waitCommand,
  detach,
  waitDetached,
  forceDetach,
  dispose,
  finish,
  giveUp,
};
