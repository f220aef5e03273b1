import type { SFNClient } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { failTask, type TaskWaits, WaitKind } from '../shared/task-waits.js';

/** What the events function needs. */
export interface RelayDeps {
  waits: TaskWaits;
  sfn: SFNClient;
  /** The deployed Volsd-Unmount document: command events of other documents are ignored. */
  unmountDocument: string;
  /**
   * The acquire's next stage once the volume is unmounted on the worker: the detach and the wait for
   * `running`, under the same task token (lambdas/acquire/callbacks.ts, detachThenAwaitRunning).
   */
  afterUnmount: (ctx: Record<string, unknown>, token: string) => Promise<unknown>;
  /**
   * The acquire's next stage once the instance runs: on the boot-unit path the attach and the wait for
   * the unit's signal under the same token, otherwise the Task resumes (lambdas/acquire/callbacks.ts).
   */
  afterRunning: (ctx: Record<string, unknown>, token: string) => Promise<unknown>;
}

/** Runs a stage of the acquire's Task; its failure fails the Task with the stage's own error. */
async function stage(deps: RelayDeps, token: string, run: () => Promise<unknown>): Promise<boolean> {
  try {
    await run();
    return true;
  } catch (err) {
    // The Task's Retry and Catch decide, as for the step's own errors.
    const name = (err as { name?: string }).name ?? 'Error';
    await failTask(deps.sfn, token, name, err instanceof Error ? err.message : String(err));
    return false;
  }
}

/** Final statuses of an SSM command (EC2 Command Status-change Notification). */
const finalStatuses = ['Success', 'Failed', 'TimedOut', 'Cancelled'] as const;

// EventBridge "EC2 Command Status-change Notification" (source aws.ssm): the fields read here.
const commandEvent = z.object({
  source: z.literal('aws.ssm'),
  'detail-type': z.literal('EC2 Command Status-change Notification'),
  detail: z.object({
    'command-id': z.string().regex(/^[0-9a-f-]{36}$/),
    'document-name': z.string().max(128),
    status: z.string().max(40),
  }),
});
// EventBridge "EC2 Instance State-change Notification" (source aws.ec2).
const instanceEvent = z.object({
  source: z.literal('aws.ec2'),
  'detail-type': z.literal('EC2 Instance State-change Notification'),
  detail: z.object({
    'instance-id': z.string().regex(/^i-[0-9a-f]{8,17}$/),
    state: z.string().max(20),
  }),
});

/** What the function did with one event. */
export type RelayResult =
  | { action: 'resumed' | 'failed'; kind: WaitKind; id: string }
  | { action: 'ignored'; reason: string };

/**
 * Answers the acquire's waits from AWS's own events (the callback half of lambdas/acquire/callbacks.ts):
 * - an SSM command of Volsd-Unmount reached a final status: Success goes on with the same Task's next
 *   stage (`afterUnmount`: the detach from the worker, then the wait for `running`; a failure there fails
 *   the Task with its error), any other status fails it with CommandFailed (its Catch compensates);
 * - an instance reached `running`: the Task waiting to attach resumes. Instances that end before
 *   running are left to the Task's timeout and the Attach poll behind it (InstanceGone there).
 * An event no wait is stored for is ignored: the step may have answered itself, or the event is
 * another workflow's (the rules match every Volsd-Unmount and every instance of the account).
 */
export async function relayEvent(event: unknown, deps: RelayDeps): Promise<RelayResult> {
  const command = commandEvent.safeParse(event);
  if (command.success) {
    const d = command.data.detail;
    if (d['document-name'] !== deps.unmountDocument) return { action: 'ignored', reason: 'another document' };
    if (!(finalStatuses as readonly string[]).includes(d.status))
      return { action: 'ignored', reason: `status ${d.status}` };
    const wait = await deps.waits.take(WaitKind.Command, d['command-id']);
    if (!wait) return { action: 'ignored', reason: 'no wait' };
    if (d.status === 'Success') {
      const done = await stage(deps, wait.token, () => deps.afterUnmount(wait.ctx, wait.token));
      return { action: done ? 'resumed' : 'failed', kind: WaitKind.Command, id: d['command-id'] };
    }
    await failTask(
      deps.sfn,
      wait.token,
      'CommandFailed',
      `${d['document-name']} ${d['command-id']}: ${d.status}`,
    );
    return { action: 'failed', kind: WaitKind.Command, id: d['command-id'] };
  }
  const instance = instanceEvent.safeParse(event);
  if (instance.success) {
    const d = instance.data.detail;
    if (d.state !== 'running') return { action: 'ignored', reason: `state ${d.state}` };
    // Marks the acquire's armed wait fired; answers it when its step stored a token already (otherwise the
    // step finds the mark and answers itself). Instances no acquire armed are not Volsd's to answer.
    const wait = await deps.waits.fire(WaitKind.Running, d['instance-id']);
    if (!wait) return { action: 'ignored', reason: 'no wait' };
    const done = await stage(deps, wait.token, () => deps.afterRunning(wait.ctx, wait.token));
    return { action: done ? 'resumed' : 'failed', kind: WaitKind.Running, id: d['instance-id'] };
  }
  return { action: 'ignored', reason: 'unexpected event' };
}
