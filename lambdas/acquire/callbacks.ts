import { dynamoDoc } from '../shared/clients.js';
import { requireLiveInstance } from '../shared/ec2-ops.js';
import { InvalidInput } from '../shared/errors.js';
import type { Step, StepDeps, WorkflowCtx } from '../shared/steps.js';
import { resumeTask, TaskWaits, WaitKind } from '../shared/task-waits.js';
import { nowMs } from '../shared/time.js';

/**
 * The acquire's callback steps (`.waitForTaskToken` Tasks): each does what its plain twin does, then
 * stores its task token under what it waits for, instead of being polled. The events function
 * (lambdas/events) answers on the EventBridge event AWS sends; the host function answers on the boot
 * unit's signal. A wait whose event never comes ends at the Task's timeout, and the state machine goes
 * on to the plain twin and its poll: the safety net.
 */

/** Seconds a stored wait is kept for (far beyond every wait's TimeoutSeconds). */
export const waitTtlSeconds = 3600;

let waits: TaskWaits | undefined;
/** The table's task waits (one store per container). */
export function taskWaits(deps: StepDeps): TaskWaits {
  waits ??= new TaskWaits(dynamoDoc, deps.config.TABLE_NAME, nowMs);
  return waits;
}

/** The token the Task passed, and the execution's data without it (the token never travels on). */
function split(ctx: WorkflowCtx): { token: string; base: WorkflowCtx } {
  const { taskToken, ...base } = ctx;
  if (typeof taskToken !== 'string' || taskToken.length === 0)
    throw new InvalidInput('a callback step needs the task token');
  return { token: taskToken, base };
}

/** What the chain's steps use: EC2 and the table (the events function has nothing else). */
export type ChainStepDeps = Pick<StepDeps, 'ec2' | 'repo'>;

/** A step the chain runs outside the state machine's own invocations. */
export type ChainStep = (ctx: WorkflowCtx, deps: ChainStepDeps) => Promise<WorkflowCtx>;

/** The acquire's steps the chain runs: the detach from the worker and the boot-unit path's attach. */
export interface ChainSteps {
  detachFromWorker: ChainStep;
  attachRunning: ChainStep;
}

/** What the chain's stages need: the detach and the attach over their deps, the table's waits, Step Functions. */
export interface ChainDeps {
  detach: (ctx: WorkflowCtx) => Promise<WorkflowCtx>;
  attach: (ctx: WorkflowCtx) => Promise<WorkflowCtx>;
  waits: TaskWaits;
  sfn: StepDeps['sfn'];
}

/** The chain's dependencies over the acquire's steps: one builder for the acquire and the events function. */
export function chainDeps(
  steps: ChainSteps,
  deps: ChainStepDeps & Pick<StepDeps, 'sfn'>,
  waits: TaskWaits,
): ChainDeps {
  return {
    detach: (c) => steps.detachFromWorker(c, deps),
    attach: (c) => steps.attachRunning(c, deps),
    waits,
    sfn: deps.sfn,
  };
}

/** Marks a stored running wait whose Task goes on to the attach and the boot unit's signal. */
type ChainCtx = WorkflowCtx & { awaitUnit?: boolean };

/**
 * What the chain does once the instance runs: on the boot-unit path of UnmountOnWorker (`awaitUnit`),
 * the attach and then the unit's signal, still in the same Task (the host function resumes it: no
 * resume, invocation or transition between running and the attach); otherwise the Task resumes now.
 */
export async function afterRunning(stored: ChainCtx, token: string, deps: ChainDeps): Promise<void> {
  const { awaitUnit, ...ctx } = stored;
  if (!awaitUnit) {
    await resumeTask(deps.sfn, token, ctx);
    return;
  }
  await attachThenAwaitUnit(ctx, token, deps);
}

/**
 * Attaches (`attachRunning`: no describe, the instance runs) and stores the token for the boot unit's
 * signal. The data the Task resumes with is marked `attachedForUnit`.
 */
export async function attachThenAwaitUnit(
  ctx: WorkflowCtx,
  token: string,
  deps: Pick<ChainDeps, 'attach' | 'waits'>,
): Promise<WorkflowCtx> {
  const next = { ...(await deps.attach(ctx)), attachedForUnit: true };
  await deps.waits.put(WaitKind.BootUnit, ctx.instanceId, token, next, waitTtlSeconds);
  return next;
}

/**
 * The detach from the worker and the wait for the instance to run (EC2 Instance State-change
 * Notification: the moment AWS accepts an attach), as one stage of the UnmountOnWorker Task, so that no
 * SendTaskSuccess, Lambda invocation or state transition sits between the unmount and the detach. Run by
 * the events function on the unmount's Success event, by the step itself when there is nothing to
 * unmount, and by the safety net's DetachFromWorker. Resolve armed the running wait before it read the
 * instance's state, so a `running` that came since is marked on it: then the token is not stored and the
 * stage answers at once, with no DescribeInstances. Returns the data after the detach, and whether the
 * token was stored to wait for `running` (`waiting`).
 */
export async function detachThenAwaitRunning(
  ctx: WorkflowCtx,
  token: string,
  deps: ChainDeps,
  options: { toUnit: boolean },
): Promise<{ ctx: WorkflowCtx; waiting: boolean }> {
  const next = await deps.detach(ctx);
  const stored: ChainCtx = options.toUnit ? { ...next, awaitUnit: true } : next;
  if (await deps.waits.putUnlessFired(WaitKind.Running, ctx.instanceId, token, stored, waitTtlSeconds))
    return { ctx: next, waiting: true };
  await afterRunning(stored, token, deps);
  return { ctx: next, waiting: false };
}

/**
 * Whether UnmountOnWorker's Task goes on to the attach and the boot unit's signal: an instance with the
 * unit, unless the unit already failed or was silent (the SSM path then).
 */
export const unitChain = (ctx: WorkflowCtx): boolean =>
  ctx.bootUnit === true && ctx.bootUnitError === undefined;

/** Builds the callback steps over the plain steps they extend and the steps the chain runs. */
export function callbackSteps(plain: Record<string, Step>, chain: ChainSteps): Record<string, Step> {
  const step = (name: string): Step => {
    const found = plain[name];
    if (!found) throw new Error(`no acquire step ${name}`);
    return found;
  };
  const unmountOnWorker = step('unmountOnWorker');
  const stages = (deps: StepDeps): ChainDeps => chainDeps(chain, deps, taskWaits(deps));

  /**
   * Volsd-Unmount on the worker, then, as one Task: the command's final status (EC2 Command Status-change
   * Notification; the events function then detaches, see {@link detachThenAwaitRunning}) and the
   * instance reaching `running`. Nothing to unmount: the detach and the running wait at once, here.
   */
  const unmountAndAwait: Step = async (ctx, deps) => {
    const { token, base } = split(ctx);
    const next = await unmountOnWorker(base, deps);
    const { command, ...after } = next;
    if (!command)
      return (await detachThenAwaitRunning(after, token, stages(deps), { toUnit: unitChain(after) })).ctx;
    await taskWaits(deps).put(WaitKind.Command, command.commandId, token, after, waitTtlSeconds);
    return next;
  };

  /**
   * The safety net's DetachFromWorker (UnmountOnWorker's events did not come in time): the same detach
   * and running wait, and since an event may have been lost, the instance's state read once after the
   * token is stored: one that runs already is answered at once.
   */
  const detachAndAwaitRunning: Step = async (ctx, deps) => {
    const { token, base } = split(ctx);
    const waits = taskWaits(deps);
    // The poll path: the Task resumes on running; BootUnit? then decides on the attach.
    const { ctx: next, waiting } = await detachThenAwaitRunning(base, token, stages(deps), { toUnit: false });
    if (waiting) {
      const instance = await requireLiveInstance(deps.ec2, ctx.instanceId);
      if (instance.State?.Name !== 'pending' && (await waits.take(WaitKind.Running, ctx.instanceId, token)))
        await resumeTask(deps.sfn, token, next);
    }
    return next;
  };

  /**
   * For an instance with the boot unit: attaches (as Attach does) and waits for the unit's signal
   * that the volume is mounted and current (lambdas/host). The unit finds the device itself, so no
   * WaitAttached poll; a unit that never signals ends at the Task's HeartbeatSeconds, and the state
   * machine takes the SSM path from Attach (which finds the attachment made here).
   */
  const attachForUnit: Step = async (ctx, deps) => {
    const { token, base } = split(ctx);
    // The instance runs (its event resumed the wait before): the first try attaches without describing.
    // VolumeNotReady while the volume still leaves the worker (polled by the Task).
    return attachThenAwaitUnit(base, token, stages(deps));
  };

  return { unmountAndAwait, detachAndAwaitRunning, attachForUnit };
}
