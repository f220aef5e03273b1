import {
  type AutoScalingClient,
  CompleteLifecycleActionCommand,
  RecordLifecycleActionHeartbeatCommand,
} from '@aws-sdk/client-auto-scaling';
import { logger } from './logger.js';
import type { LifecycleRef } from './workflow-input.js';

/** No active action: it was completed already (a retried step) or it timed out. Nothing left to do. */
const isNoActiveAction = (err: unknown) =>
  err instanceof Error && err.name === 'ValidationError' && /No active Lifecycle Action/i.test(err.message);

/**
 * Completes a lifecycle action. Idempotent: an action that is no longer active (completed by an
 * earlier attempt of this step, or timed out) is logged and treated as done. Returns whether it was
 * still active.
 */
export async function completeLifecycleAction(
  autoScaling: AutoScalingClient,
  lifecycle: LifecycleRef,
  instanceId: string,
  result: 'CONTINUE' | 'ABANDON',
): Promise<boolean> {
  try {
    await autoScaling.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: lifecycle.groupName,
        LifecycleHookName: lifecycle.hookName,
        LifecycleActionToken: lifecycle.token,
        InstanceId: instanceId,
        LifecycleActionResult: result,
      }),
    );
    return true;
  } catch (err) {
    if (!isNoActiveAction(err)) throw err;
    logger.warn('lifecycle action no longer active', { instanceId, result, hook: lifecycle.hookName });
    return false;
  }
}

/** Restarts the lifecycle action's heartbeat timeout. An inactive action is ignored. */
export async function recordHeartbeat(
  autoScaling: AutoScalingClient,
  lifecycle: LifecycleRef,
  instanceId: string,
) {
  try {
    await autoScaling.send(
      new RecordLifecycleActionHeartbeatCommand({
        AutoScalingGroupName: lifecycle.groupName,
        LifecycleHookName: lifecycle.hookName,
        LifecycleActionToken: lifecycle.token,
        InstanceId: instanceId,
      }),
    );
  } catch (err) {
    if (!isNoActiveAction(err)) throw err;
  }
}
