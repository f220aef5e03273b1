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
function taskWaits(deps: StepDeps): TaskWaits {
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

/** Builds the callback steps over the plain steps they extend. */
export function callbackSteps(plain: Record<string, Step>): Record<string, Step> {
  const step = (name: string): Step => {
    const found = plain[name];
    if (!found) throw new Error(`no acquire step ${name}`);
    return found;
  };
  const unmountOnWorker = step('unmountOnWorker');
  const detachFromWorker = step('detachFromWorker');
  const attachRunning = step('attachRunning');

  /**
   * Volsd-Unmount on the worker, then wait for the command's final status (EC2 Command Status-change
   * Notification) rather than polling GetCommandInvocation. Nothing to unmount: answered at once.
   */
  const unmountAndAwait: Step = async (ctx, deps) => {
    const { token, base } = split(ctx);
    const next = await unmountOnWorker(base, deps);
    const { command, ...after } = next;
    if (!command) {
      await resumeTask(deps.sfn, token, after);
      return after;
    }
    await taskWaits(deps).put(WaitKind.Command, command.commandId, token, after, waitTtlSeconds);
    return next;
  };

  /**
   * Detaches from the worker, then waits for the instance to run (EC2 Instance State-change
   * Notification), the moment AWS accepts an attach. An instance that runs already: answered at once.
   * The state is read again after the wait is stored, so an event that came in between is not lost.
   */
  const detachAndAwaitRunning: Step = async (ctx, deps) => {
    const { token, base } = split(ctx);
    const next = await detachFromWorker(base, deps);
    // Stored first, then the state read once: the event either finds the wait, or came before the read.
    const store = taskWaits(deps);
    await store.put(WaitKind.Running, ctx.instanceId, token, next, waitTtlSeconds);
    const instance = await requireLiveInstance(deps.ec2, ctx.instanceId);
    if (instance.State?.Name !== 'pending' && (await store.take(WaitKind.Running, ctx.instanceId, token))) {
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
    const next = await attachRunning(base, deps);
    await taskWaits(deps).put(WaitKind.BootUnit, base.instanceId, token, next, waitTtlSeconds);
    return next;
  };

  return { unmountAndAwait, detachAndAwaitRunning, attachForUnit };
}
