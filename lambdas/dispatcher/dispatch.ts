import {
  type AutoScalingClient,
  CompleteLifecycleActionCommand,
  DescribeAutoScalingInstancesCommand,
} from '@aws-sdk/client-auto-scaling';
import { ExecutionAlreadyExists, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { InvalidInput } from '../shared/errors.js';
import { executionName, WorkflowAction, type WorkflowInput } from '../shared/workflow-input.js';
import { type IntakeDecision, type PendingLifecycleAction, parseIntakeMessage } from './parse.js';

/** The dispatcher's configuration, read once at cold start (see `handler.ts`). */
export interface DispatcherConfig {
  pool: string;
  acquireStateMachineArn: string;
  releaseStateMachineArn: string;
  /** Auto Scaling groups whose lifecycle actions this pool serves. */
  servedGroups: string[];
  expectedAccountId: string;
  region: string;
  /** Ask Auto Scaling whether the instance belongs to the event's group before starting a workflow. */
  verifyInstances: boolean;
}

/**
 * What {@link dispatchRecord} did with a message; `Rejected` and `Failed` are thrown, not returned.
 * `Late`: a well-formed event of a served group about an instance whose action can no longer be open
 * (see {@link checkInstance}); acknowledged and dropped, never retried into the DLQ.
 */
export type DispatchOutcome = 'Started' | 'Duplicate' | 'Late' | 'Ignored' | 'Rejected' | 'Failed';

/** The part of a logger the dispatcher uses (Powertools' Logger fits). */
export interface DispatchLog {
  info(message: string, attributes: Record<string, unknown>): void;
  warn(message: string, attributes: Record<string, unknown>): void;
  error(message: string, attributes: Record<string, unknown>): void;
}

/** Everything {@link dispatchRecord} needs, injected so tests and the sandbox need no environment. */
export interface DispatchDeps {
  config: DispatcherConfig;
  sfn: SFNClient;
  autoScaling: AutoScalingClient;
  log: DispatchLog;
  /** Counts one outcome (a CloudWatch metric in the handler). */
  count: (outcome: DispatchOutcome) => void;
}

/** The fields of an SQS record the dispatcher reads; an `SQSRecord` fits. */
export interface IntakeRecord {
  messageId: string;
  body: string;
  attributes?: { ApproximateReceiveCount?: string };
}

/** What {@link dispatchRecord} returns for a message it handled. */
export interface DispatchResult {
  outcome: 'Started' | 'Duplicate' | 'Late' | 'Ignored';
  /** Execution name, when a workflow was (or had already been) started. */
  executionName?: string;
  /** ARN of the execution this call started (absent for a duplicate). */
  executionArn?: string;
  /** Why the message was ignored, or is late. */
  reason?: string;
}

/** Longest piece of a message body or error text written to a log line. */
const logPreviewChars = 300;

/** Shortens `text` for a log line, saying how much was cut. */
export function truncate(text: string, max = logPreviewChars): string {
  return text.length <= max ? text : `${text.slice(0, max)}... (${text.length - max} more characters)`;
}

const hasName = (err: unknown, name: string): boolean => err instanceof Error && err.name === name;

/**
 * Asks Auto Scaling where the event's instance stands. The event already passed the account, Region and
 * group checks, so it is Auto Scaling's own; what is left to tell apart:
 * - the instance is in the event's group, its action possibly open: `current`, start the workflow;
 * - Auto Scaling no longer knows it, or knows it `Terminated`: the event is late (a delivery or a
 *   replay after the action ended, the instance gone). Auto Scaling emitted the event about an instance
 *   it managed, so not knowing it means it stopped managing it, not that it never did. `late`;
 * - a launch event for an instance already `Terminating...`: an instance leaves `Pending` only once its
 *   launch action is over, so that action cannot be open, and the terminate event does the work. `late`;
 * - the instance is in another group: not this event's instance (forged or misrouted), rejected.
 * A late event is acknowledged and dropped (logged, counted `Late`): retrying it cannot succeed, and
 * the intake DLQ holds only messages Volsd cannot parse or act on, so its alarm always means something.
 * What a late terminate leaves behind (a volume still recorded on a gone instance) is reconcile's.
 */
async function checkInstance(
  deps: DispatchDeps,
  input: WorkflowInput,
): Promise<{ kind: 'current' } | { kind: 'late'; reason: string }> {
  const out = await deps.autoScaling.send(
    new DescribeAutoScalingInstancesCommand({ InstanceIds: [input.instanceId] }),
  );
  const found = out.AutoScalingInstances?.find((i) => i.InstanceId === input.instanceId);
  if (!found) return { kind: 'late', reason: 'Auto Scaling no longer manages the instance' };
  const group = input.lifecycle?.groupName;
  if (found.AutoScalingGroupName !== group) {
    throw new InvalidInput(
      `instance ${input.instanceId} belongs to group ${found.AutoScalingGroupName ?? '(none)'}, not ${group}`,
    );
  }
  const state = found.LifecycleState ?? '';
  if (state === 'Terminated') return { kind: 'late', reason: 'the instance is terminated' };
  if (input.action === WorkflowAction.Launch && state.startsWith('Terminating')) {
    return { kind: 'late', reason: `launch event for an instance already ${state}` };
  }
  return { kind: 'current' };
}

async function startWorkflow(
  deps: DispatchDeps,
  decision: Extract<IntakeDecision, { kind: 'start' }>,
): Promise<DispatchResult> {
  const { config } = deps;
  const name = executionName(decision.input);
  if (config.verifyInstances) {
    const check = await checkInstance(deps, decision.input);
    if (check.kind === 'late') {
      deps.log.info('late lifecycle event acknowledged and dropped', {
        stateMachine: decision.stateMachine,
        executionName: name,
        instanceId: decision.input.instanceId,
        reason: check.reason,
      });
      return { outcome: 'Late', executionName: name, reason: check.reason };
    }
  }
  const stateMachineArn =
    decision.stateMachine === 'acquire' ? config.acquireStateMachineArn : config.releaseStateMachineArn;
  try {
    const out = await deps.sfn.send(
      new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(decision.input) }),
    );
    deps.log.info('workflow started', {
      stateMachine: decision.stateMachine,
      executionName: name,
      executionArn: out.executionArn,
    });
    return { outcome: 'Started', executionName: name, executionArn: out.executionArn };
  } catch (err) {
    // The name is derived from the event and the input holds nothing delivery-specific, so this is a
    // second delivery (or a replay from the DLQ) of an event whose execution already ran or runs.
    if (!(err instanceof ExecutionAlreadyExists || hasName(err, 'ExecutionAlreadyExists'))) throw err;
    deps.log.info('duplicate lifecycle event: execution already exists', {
      stateMachine: decision.stateMachine,
      executionName: name,
    });
    return { outcome: 'Duplicate', executionName: name };
  }
}

/** Completes a lifecycle action Volsd has no work for; an action no longer open was completed before. */
async function continueLifecycle(deps: DispatchDeps, action: PendingLifecycleAction): Promise<void> {
  try {
    await deps.autoScaling.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: action.groupName,
        LifecycleHookName: action.hookName,
        LifecycleActionToken: action.token,
        InstanceId: action.instanceId,
        LifecycleActionResult: 'CONTINUE',
      }),
    );
  } catch (err) {
    if (!(hasName(err, 'ValidationError') && /no active lifecycle action/i.test((err as Error).message))) {
      throw err;
    }
  }
}

async function handle(record: IntakeRecord, deps: DispatchDeps): Promise<DispatchResult> {
  const { config } = deps;
  const decision = parseIntakeMessage(record.body, {
    account: config.expectedAccountId,
    region: config.region,
    groups: config.servedGroups,
    pool: config.pool,
  });
  if (decision.kind === 'start') return startWorkflow(deps, decision);
  if (decision.completeLifecycle) await continueLifecycle(deps, decision.completeLifecycle);
  deps.log.info('intake message ignored', {
    messageId: record.messageId,
    reason: decision.reason,
    instanceId: decision.completeLifecycle?.instanceId,
  });
  return { outcome: 'Ignored', reason: decision.reason };
}

/**
 * Handles one intake message: validates it, then starts the acquire (launch) or release (terminate)
 * workflow under a name derived from the event, so every delivery of one event maps to one execution.
 * Resolves for a started, duplicate, late or ignored message. Rejects with {@link InvalidInput} for a bad
 * message (logged with a one-line reason) and with the SDK's error for a transient failure; either way
 * the caller reports the message as a batch item failure and SQS delivers it again, then to the DLQ.
 */
export async function dispatchRecord(record: IntakeRecord, deps: DispatchDeps): Promise<DispatchResult> {
  try {
    const result = await handle(record, deps);
    deps.count(result.outcome);
    return result;
  } catch (err) {
    const where = {
      messageId: record.messageId,
      receiveCount: record.attributes?.ApproximateReceiveCount,
      bodyBytes: Buffer.byteLength(record.body, 'utf8'),
      bodyPreview: truncate(record.body, 200),
    };
    if (err instanceof InvalidInput) {
      deps.count('Rejected');
      deps.log.warn(`intake message rejected: ${truncate(err.message)}`, where);
    } else {
      deps.count('Failed');
      deps.log.error(`intake message failed, SQS will retry: ${truncate(String(err))}`, {
        ...where,
        errorName: err instanceof Error ? err.name : typeof err,
      });
    }
    throw err;
  }
}
