/**
 * The retry and catch profiles every Task of Volsd's state machines is built from, and the Task
 * builder. Each Task invokes its workflow's function with `{ step, ctx }` and retries, in this order
 * (Step Functions takes the first retrier whose ErrorEquals matches):
 *
 * 1. `fatal`: the named errors the step can throw that no retry cures (MaxAttempts 0), so they go
 *    straight to the Catch. One list per step, written beside the state machine's definition.
 * 2. `poll`: "not yet" errors (VolumeNotReady, CommandPending, InstanceNotReady, NoIdleVolume,
 *    PoolNotReady, and EC2's "device name in use" InvalidParameterValue on attach), each with its own
 *    interval and attempts, tuned per Task.
 * 3. `transient`: Lambda service errors and AWS throttling that outlived the SDK's retries, plus
 *    ConcurrentModification (a retry re-reads), with backoff and full jitter.
 * 4. `unexpected`: States.ALL, a few times, for anything else.
 *
 * Except a callback Task with `stages` (its answerer runs later stages of the workflow under its token):
 * it retries Lambda's own errors only (`invokeTransient`), and its Catch routes every other error.
 *
 * Timings are kept as they were tuned in the hand-written files; change them here, then run
 * `npm run generate:asl`.
 *
 * How a step's fatal list is derived (by reading the code; nothing checks it mechanically, so
 * re-derive a step's list when its code changes):
 * - Every step can throw InvalidInput: `runStep` throws it for an unknown step or a missing ctx, and the
 *   repository validates every id it is given (`parseOrThrow`).
 * - Then the named errors the step throws itself, plus those of every helper it calls that it does not
 *   catch. The helpers, by what they throw (InvalidInput and ConcurrentModification aside):
 *   - repository: getPool, setTarget, bumpGeneration, setLatestSnapshot UnknownPool; getVolume,
 *     setVolumeGeneration VolumeNotFound; transition IllegalTransition, VolumeNotFound; forgetVolume
 *     IllegalTransition, VolumeNotFound; registerVolume UnknownPool, VolumeNotFound; claimVolume
 *     UnknownPool, AssignmentConflict, VolumeNotFound, IllegalTransition, NoIdleVolume; claimCreated
 *     UnknownPool, VolumeNotFound, VolumeHeldElsewhere, AssignmentConflict; dropAssignment with a volume
 *     id VolumeHeldElsewhere; findVolume, listVolumes, getAssignment, setHolder, leases and creation
 *     records none.
 *   - ec2-ops: requireVolume VolumeNotFound (VolumeNotReady when just created); requireLiveInstance
 *     InstanceGone (InstanceNotReady when just launched); attachAtFreeDevice / attachVolume
 *     NoFreeDevice, InstanceGone, InstanceNotReady; setDeleteOnTermination InstanceGone;
 *     createPoolVolume / createRecordedVolume VolumeNotReady; describeVolume, detachVolume, deleteVolume
 *     none.
 *   - commands: sendDocument CommandFailed, InstanceNotReady; commandOutcome (and `waitCommand`)
 *     CommandPending, CommandFailed. workers: findWorker InstanceGone. lifecycle, replenish-request:
 *     none.
 * - The fatal list is the hand-written list each Task had (nine names on most Tasks; InvalidInput,
 *   UnknownPool, CommandFailed on sync-all's), kept to the names the step can throw, so no error a step
 *   throws changes how it is handled. Names it can throw that were never fatal for it
 *   (e.g. CommandFailed after a wait, SnapshotFailed) are not added here: that would change behaviour.
 */
import type { VolsdErrorName } from '../../lambdas/shared/errors.js';

/** An ASL retrier. */
export interface Retrier {
  ErrorEquals: string[];
  IntervalSeconds?: number;
  MaxAttempts: number;
  BackoffRate?: number;
  MaxDelaySeconds?: number;
  JitterStrategy?: 'FULL' | 'NONE';
}

/** An ASL catcher. */
export interface Catcher {
  ErrorEquals: string[];
  ResultPath: string;
  Next: string;
}

/** Any ASL state; Tasks come from {@link taskBuilder}, the others are written out as plain ASL. */
export type State = Record<string, unknown>;

/** A state machine definition, as it is written to `statemachines/<name>.asl.json`. */
export interface StateMachineDefinition {
  Comment: string;
  StartAt: string;
  TimeoutSeconds: number;
  States: Record<string, State>;
}

/** The "not yet" errors a poll retrier retries. */
type NotYetError = Extract<
  VolsdErrorName,
  | 'VolumeNotReady'
  | 'CommandPending'
  | 'InstanceNotReady'
  | 'NoIdleVolume'
  | 'PoolNotReady'
  | 'VolumeInitializing'
>;

/**
 * A named error that may be fatal for a step: not one a poll or the transient retrier is there to
 * retry (the fatal retrier comes first and would shadow it).
 */
export type FatalError = Exclude<VolsdErrorName, NotYetError | 'ConcurrentModification'>;

/** Per step name (a key of the workflow's step table), the named errors that are fatal for it. */
export type FatalLists = Readonly<Record<string, readonly FatalError[]>>;

/**
 * Lambda's own transient errors, AWS throttling that outlived the SDK's retries in each protocol's
 * spelling (EC2 `RequestLimitExceeded`, SSM `ThrottlingException`, Auto Scaling `Throttling`, plus
 * `TooManyUpdates` and DynamoDB's `ProvisionedThroughputExceededException`), and a lost conditional
 * write (`ConcurrentModification`: the retry re-reads).
 */
const lambdaErrors = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
];

export const transient: Retrier = {
  ErrorEquals: [
    ...lambdaErrors,
    'RequestLimitExceeded',
    'ThrottlingException',
    'Throttling',
    'TooManyUpdates',
    'ConcurrentModification',
    'ProvisionedThroughputExceededException',
  ],
  IntervalSeconds: 1,
  MaxAttempts: 6,
  BackoffRate: 2,
  MaxDelaySeconds: 20,
  JitterStrategy: 'FULL',
};

/**
 * Lambda's own transient errors only, with the {@link transient} backoff: the retry of a callback Task whose
 * answerer runs later stages of the workflow (`stages` in {@link CallbackSpec}).
 */
export const invokeTransient: Retrier = { ...transient, ErrorEquals: [...lambdaErrors] };

/** Anything else: a few tries, then the Catch. */
export const unexpected: Retrier = {
  ErrorEquals: ['States.ALL'],
  IntervalSeconds: 1,
  MaxAttempts: 3,
  BackoffRate: 2,
  JitterStrategy: 'FULL',
};

/** The errors a poll retries: "not yet", and EC2's "device name in use" that a new attempt resolves. */
export type PollError = NotYetError | 'InvalidParameterValue';

/** How one Task polls: its own interval, growth, cap and attempts. */
export interface PollTiming {
  IntervalSeconds: number;
  BackoffRate: number;
  MaxDelaySeconds: number;
  MaxAttempts: number;
}

/** A "not yet" retrier, without jitter: polls keep their cadence. */
export function poll(error: PollError, timing: PollTiming): Retrier {
  return {
    ErrorEquals: [error],
    IntervalSeconds: timing.IntervalSeconds,
    BackoffRate: timing.BackoffRate,
    MaxDelaySeconds: timing.MaxDelaySeconds,
    MaxAttempts: timing.MaxAttempts,
  };
}

/** The errors no retry cures: no attempts, straight to the Catch. */
export function fatal(errors: readonly FatalError[]): Retrier {
  return { ErrorEquals: [...errors], MaxAttempts: 0 };
}

/**
 * A Choice rule taken when the boolean at `variable` is present and true: a missing path in a Choice rule
 * is States.Runtime on AWS, so a flag some steps never set is tested for presence first.
 */
export function whenTrue(variable: string, next: string) {
  return {
    And: [
      { Variable: variable, IsPresent: true },
      { Variable: variable, BooleanEquals: true },
    ],
    Next: next,
  };
}

/** A step's retriers, in order: its fatal errors (no attempt), its poll, then transient and unexpected. */
function stepRetries(fatalErrors: readonly FatalError[], poll: readonly Retrier[] = []): Retrier[] {
  return [...(fatalErrors.length > 0 ? [fatal(fatalErrors)] : []), ...poll, transient, unexpected];
}

/** Catch everything, keep the error at `resultPath`, go on at `next`. */
export function catchAll(resultPath: string, next: string): Catcher {
  return { ErrorEquals: ['States.ALL'], ResultPath: resultPath, Next: next };
}

/** Catch the named errors only (listed before a {@link catchAll}). */
export function catchOn(errors: readonly VolsdErrorName[], resultPath: string, next: string): Catcher {
  return { ErrorEquals: [...errors], ResultPath: resultPath, Next: next };
}

/** A Task: which step it runs, how it polls, where its errors go. */
export interface TaskSpec {
  /** Shown in Workflow Studio. */
  comment?: string;
  /** A key of the workflow's step table. */
  step: string;
  /** Its "not yet" retriers, if it polls. */
  poll?: readonly Retrier[];
  catch: readonly Catcher[];
  next: string;
}

/** Seconds one step invocation may take. */
const taskTimeoutSeconds = 60;

/**
 * The Task builder of one workflow: every Task invokes `${functionArnPlaceholder}` and its retries
 * are the profiles, with the step's own fatal list from `fatalLists`.
 */
export function taskBuilder(functionArnPlaceholder: string, fatalLists: FatalLists) {
  const task = (spec: TaskSpec): State => {
    const fatalErrors = fatalLists[spec.step];
    if (!fatalErrors) throw new Error(`step ${spec.step} has no fatal list`);
    return {
      ...(spec.comment === undefined ? {} : { Comment: spec.comment }),
      Type: 'Task',
      Resource: `\${${functionArnPlaceholder}}`,
      Parameters: { step: spec.step, 'ctx.$': '$' },
      TimeoutSeconds: taskTimeoutSeconds,
      Retry: stepRetries(fatalErrors, spec.poll),
      Catch: [...spec.catch],
      Next: spec.next,
    };
  };
  return task;
}

/** The service integration of a callback Task: invoke the function, wait for SendTaskSuccess/Failure. */
export const lambdaCallbackResource = 'arn:aws:states:::lambda:invoke.waitForTaskToken';

/** The errors that end a callback's wait (its own timeouts, or the answerer's failure): to the Catch. */
export type CallbackEndError = 'States.Timeout' | 'States.HeartbeatTimeout' | 'BootUnitFailed';

/** A callback Task: a Task that stores its token and waits for an answer (`.waitForTaskToken`). */
export interface CallbackSpec extends TaskSpec {
  /** Seconds without an answer before States.Timeout. */
  timeoutSeconds: number;
  /** Seconds without a heartbeat (SendTaskHeartbeat) before States.HeartbeatTimeout. */
  heartbeatSeconds?: number;
  /** Errors that end the wait and go to the Catch untried (they lead to the poll behind the wait). */
  ends: readonly CallbackEndError[];
  /**
   * The answerer (the events function) runs later stages of the workflow under the Task's token and fails
   * the Task with a stage's error. A retry would re-run every stage from the start (the unmount, its
   * event, the detach...) for one call that failed, so only the invoke's own Lambda errors are retried;
   * every other error goes to the Catch untried, whose rules must send the fatal ones to compensation and
   * the rest to the poll path, where each step retries its one call.
   */
  stages?: boolean;
}

/**
 * The callback Task builder of one workflow: like {@link taskBuilder}, but the Task invokes the
 * function through `lambda:invoke.waitForTaskToken` with `{ step, ctx, taskToken }` and waits for the
 * token's answer; the step's function returns at once. Its ends are never retried (a retry would
 * store a new token and wait again): they go straight to the Catch.
 */
export function callbackTaskBuilder(functionArnPlaceholder: string, fatalLists: FatalLists) {
  return (spec: CallbackSpec): State => {
    const fatalErrors = fatalLists[spec.step];
    if (!fatalErrors) throw new Error(`step ${spec.step} has no fatal list`);
    if (spec.stages) checkStagesCatch(spec, fatalErrors);
    return {
      ...(spec.comment === undefined ? {} : { Comment: spec.comment }),
      Type: 'Task',
      Resource: lambdaCallbackResource,
      Parameters: {
        FunctionName: `\${${functionArnPlaceholder}}`,
        Payload: { step: spec.step, 'ctx.$': '$', 'taskToken.$': '$$.Task.Token' },
      },
      TimeoutSeconds: spec.timeoutSeconds,
      ...(spec.heartbeatSeconds === undefined ? {} : { HeartbeatSeconds: spec.heartbeatSeconds }),
      Retry: spec.stages
        ? [invokeTransient]
        : [{ ErrorEquals: [...spec.ends], MaxAttempts: 0 }, ...stepRetries(fatalErrors, spec.poll)],
      Catch: [...spec.catch],
      Next: spec.next,
    };
  };
}

/**
 * A Task with stages retries nothing of its own: its Catch must name its ends and every fatal error before
 * a States.ALL rule (which would send them to the poll path), and it takes no poll retriers.
 */
function checkStagesCatch(spec: CallbackSpec, fatalErrors: readonly string[]): void {
  if (spec.poll && spec.poll.length > 0) throw new Error(`${spec.step}: a Task with stages does not poll`);
  const named = new Set<string>();
  for (const c of spec.catch) {
    if (c.ErrorEquals.includes('States.ALL')) break;
    for (const e of c.ErrorEquals) named.add(e);
  }
  const missing = [...spec.ends, ...fatalErrors].filter((e) => !named.has(e));
  if (missing.length > 0)
    throw new Error(`${spec.step}: its Catch does not name ${missing.join(', ')} before States.ALL`);
}

/** Catch the ends of a callback's wait (listed before a {@link catchAll}). */
export function catchEnds(errors: readonly CallbackEndError[], resultPath: string, next: string): Catcher {
  return { ErrorEquals: [...errors], ResultPath: resultPath, Next: next };
}

/** A state machine definition (identity, for the type). */
export function stateMachine(definition: StateMachineDefinition): StateMachineDefinition {
  return definition;
}
