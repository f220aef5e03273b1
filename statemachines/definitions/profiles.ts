/**
 * The retry and catch profiles every Task of Volsd's state machines is built from, and the Task
 * builder. Each Task invokes its workflow's function with `{ step, ctx }` and retries, in this order
 * (Step Functions takes the first retrier whose ErrorEquals matches):
 *
 * 1. `fatal`: the named errors the step can throw that no retry cures (MaxAttempts 0), so they go
 *    straight to the Catch. One list per step, written beside the state machine's definition.
 * 2. `poll`: "not yet" errors (VolumeNotReady, CommandPending, InstanceNotReady, NoIdleVolume, and EC2's
 *    "device name in use" InvalidParameterValue on attach), each with its own interval and attempts,
 *    tuned per Task.
 * 3. `transient`: Lambda service errors and AWS throttling that outlived the SDK's retries, plus
 *    ConcurrentModification (a retry re-reads), with backoff and full jitter.
 * 4. `unexpected`: States.ALL, a few times, for anything else.
 *
 * Timings are kept as they were tuned in the hand-written files; change them here, then run
 * `npm run generate:asl`.
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

/** A named error a step may throw (the class names of `lambdas/shared/errors.ts`). */
export type FatalError = VolsdErrorName;

/** Per step name (a key of the workflow's step table), the named errors that are fatal for it. */
export type FatalLists = Readonly<Record<string, readonly FatalError[]>>;

/**
 * Lambda's own transient errors, AWS throttling that outlived the SDK's retries in each protocol's
 * spelling (EC2 `RequestLimitExceeded`, SSM `ThrottlingException`, Auto Scaling `Throttling`, plus
 * `TooManyUpdates` and DynamoDB's `ProvisionedThroughputExceededException`), and a lost conditional
 * write (`ConcurrentModification`: the retry re-reads).
 */
export const transient: Retrier = {
  ErrorEquals: [
    'Lambda.ServiceException',
    'Lambda.AWSLambdaException',
    'Lambda.SdkClientException',
    'Lambda.TooManyRequestsException',
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

/** Anything else: a few tries, then the Catch. */
export const unexpected: Retrier = {
  ErrorEquals: ['States.ALL'],
  IntervalSeconds: 1,
  MaxAttempts: 3,
  BackoffRate: 2,
  JitterStrategy: 'FULL',
};

/** The errors that mean "not yet, ask again" and the one EC2 race that a new attempt resolves. */
export type PollError =
  | Extract<FatalError, 'VolumeNotReady' | 'CommandPending' | 'InstanceNotReady' | 'NoIdleVolume'>
  | 'InvalidParameterValue';

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

/** Catch everything, keep the error at `resultPath`, go on at `next`. */
export function catchAll(resultPath: string, next: string): Catcher {
  return { ErrorEquals: ['States.ALL'], ResultPath: resultPath, Next: next };
}

/** Catch the named errors only (listed before a {@link catchAll}). */
export function catchOn(errors: readonly FatalError[], resultPath: string, next: string): Catcher {
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
      Retry: [
        ...(fatalErrors.length > 0 ? [fatal(fatalErrors)] : []),
        ...(spec.poll ?? []),
        transient,
        unexpected,
      ],
      Catch: [...spec.catch],
      Next: spec.next,
    };
  };
  return task;
}

/** A state machine definition (identity, for the type). */
export function stateMachine(definition: StateMachineDefinition): StateMachineDefinition {
  return definition;
}
