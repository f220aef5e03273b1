import { PoolNotReady } from '../shared/errors.js';
import { recordHeartbeat } from '../shared/lifecycle.js';
import { logger, metrics } from '../shared/logger.js';
import type { StepDeps, WorkflowCtx } from '../shared/steps.js';
import { nowMs } from '../shared/time.js';

/**
 * The longest gap between two polls of a waiting claim (the Claim Task's `MaxDelaySeconds` for
 * NoIdleVolume and PoolNotReady in `statemachines/definitions/acquire.ts`; polls have no jitter).
 */
export const claimPollMaxSeconds = 30;

/**
 * Records a lifecycle heartbeat while a claim waits, about once per third of the heartbeat timeout.
 * A retried Task gets the same input every time, so the last heartbeat cannot be carried in the ctx:
 * the polls that fall in the first two `claimPollMaxSeconds` of each third (counted from the acquire's
 * start) send it. Polls that are at most that far apart (a late invocation included) give every third
 * one or two, and two heartbeats are never more than a third plus one poll apart. With a heartbeat timeout so short that a third is no
 * longer than a poll, every poll sends one. Before, every poll past the first third sent one: a burst of
 * a thousand waiting launches would have sent 33 a second, past Auto Scaling's write rate.
 */
export async function heartbeatWhileWaiting(ctx: WorkflowCtx, deps: StepDeps): Promise<void> {
  if (!ctx.lifecycle) return;
  const third = (deps.config.HEARTBEAT_TIMEOUT * 1000) / 3;
  const waited = nowMs() - (ctx.startedAt ?? nowMs());
  // Polls are `claimPollMaxSeconds` apart plus the invocation's own time and the retrier's scheduling:
  // a window of exactly one poll is jumped over by polls a little further apart, and two thirds in a
  // row without a heartbeat abandon the launch. Twice a poll tolerates polls up to 60 s apart; at most
  // two heartbeats per third.
  const windowMs = 2 * claimPollMaxSeconds * 1000;
  if (waited < third) return;
  if (third > windowMs && waited % third >= windowMs) return;
  await recordHeartbeat(deps.autoScaling, ctx.lifecycle, ctx.instanceId);
}

/**
 * After a claim that waited: one heartbeat now, recorded in the ctx, so that the steps after it (attach,
 * mount, sync: `maybeHeartbeat`) pace theirs from it. Without it they would count from the acquire's
 * start and send one at every poll.
 */
export async function heartbeatAfterWait(ctx: WorkflowCtx, deps: StepDeps): Promise<WorkflowCtx> {
  if (!ctx.lifecycle) return ctx;
  const now = nowMs();
  if (now - (ctx.startedAt ?? now) < (deps.config.HEARTBEAT_TIMEOUT * 1000) / 3) return ctx;
  await recordHeartbeat(deps.autoScaling, ctx.lifecycle, ctx.instanceId);
  return { ...ctx, heartbeatAt: now };
}

/**
 * Nothing idle and no snapshot to create a volume from: the pool is still being built (a first deploy,
 * or a new pool), and only replenish can serve this instance. PoolNotReady has its own, longer wait in
 * the state machine: abandoning would only launch a new instance that waits for the same replenish.
 */
export function poolBeingBuilt(ctx: WorkflowCtx, az: string): PoolNotReady {
  logger.info('no idle volume and no snapshot yet: waiting for the pool to be built', {
    instanceId: ctx.instanceId,
    az,
  });
  return new PoolNotReady(`pool ${ctx.pool} has no idle volume in ${az} and no snapshot yet: being built`);
}

/**
 * The lifecycle result for an instance in an AZ the pool does not cover: CONTINUE, whatever the
 * configured failure result. No retry can give it a volume, and ABANDON makes Auto Scaling launch the
 * replacement into the AZ it just emptied (it balances by AZ): a loop. The instance goes InService
 * without a volume; the UncoveredAzLaunches metric and its alarm say so at once (docs/decisions.md,
 * "First deploy").
 */
export function uncoveredAzResult(ctx: WorkflowCtx): 'CONTINUE' {
  metrics.addMetric('UncoveredAzLaunches', 'Count', 1);
  logger.error('instance launched in an AZ the pool does not cover: let through without a volume', {
    instanceId: ctx.instanceId,
    cause: ctx.error?.Cause,
    remedy: "add a sync worker subnet in that AZ (the pool's subnets), or remove the AZ from the group",
  });
  return 'CONTINUE';
}
