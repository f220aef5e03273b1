import './polyfills.js';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SFNServiceException } from '@aws-sdk/client-sfn';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { ExecutionHistory } from './gateway/history.js';
import type { Accounting } from './sim/accounting.js';

/** A Lambda handler as the sandbox calls it: the real exported `handler` of `lambdas/<name>/handler.ts`. */
export type LocalLambda = (event: unknown, context: unknown) => Promise<unknown>;

/** One execution of a local state machine. */
export interface LocalExecution {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  input: string;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED' | 'TIMED_OUT';
  output?: string;
  error?: string;
  cause?: string;
  startDate: Date;
  stopDate?: Date;
  /** States entered, retries included: what Step Functions bills as state transitions. */
  transitions: number;
  lambdaInvocations: number;
  /** The states entered, in order (for tests and the per-step breakdown). */
  path: { state: string; at: number }[];
  /**
   * Each Lambda invocation of a plain Task (diagnostics): its state, when it started (epoch ms of the
   * modelled clock), how long it took in modelled seconds and in wall milliseconds, the AWS calls its
   * execution made meanwhile, and the error it ended with (States.Timeout when the Task's TimeoutSeconds
   * ran out first).
   */
  invocations: Invocation[];
  /** Every failed attempt of a state (retried, caught or final), in order: its error and when. */
  failures: { state: string; at: number; error: string }[];
  /**
   * The input of the last state entered, as the last `StateEntered` event of GetExecutionHistory shows it.
   * For a FAILED execution that is its Fail state's input: what the execution carried when it failed
   * (a failed execution has no output).
   */
  lastStateInput?: unknown;
  done: Promise<void>;
}

/** One Lambda invocation of a Task state, as {@link LocalExecution.invocations} records it. */
export interface Invocation {
  state: string;
  at: number;
  seconds: number;
  wallMs: number;
  awsCalls: number;
  error?: string;
}

/** Faults the local Lambda runtime can inject: a crash after the handler ran (its effects stay, its result is lost). */
export interface LambdaFaults {
  /** Chance that an invocation's result is lost after the handler ran, as when the runtime dies. */
  crashAfterRate?: number;
  /** Seeded draw in [0, 1). */
  random?: () => number;
  /** Called for each injected crash (counted by the caller). */
  onCrash?: (stateName: string) => void;
}

export interface LocalStepFunctionsOptions {
  region: string;
  accountId: string;
  /** Wall seconds per modelled second: Wait and Retry intervals of the ASL are scaled by it. */
  timeScale: number;
  /** The same DefinitionSubstitutions the CDK construct passes (`${AcquireFunctionArn}` -> ARN). */
  substitutions: Record<string, string>;
  /** Local Lambda functions by ARN. */
  lambdas: Record<string, LocalLambda>;
  accounting?: Accounting;
  faults?: LambdaFaults;
  /** Milliseconds since the epoch of the modelled clock, for execution dates. */
  now?: () => number;
  /**
   * Waits the modelled cost of invoking a Lambda function from a state (a warm invoke plus the state
   * transition, about 30 ms on AWS; assumed, not measured), so orchestration overhead shows in modelled time.
   */
  invokeDelay?: () => Promise<void>;
  /**
   * A timer on the modelled clock (returns its cancel): the HeartbeatSeconds and TimeoutSeconds of a
   * `.waitForTaskToken` Task count in modelled seconds. @default setTimeout scaled by the time scale
   */
  setTimer?: (modelSeconds: number, fire: () => void) => () => void;
}

/** The service integration that invokes a Lambda function and waits for SendTaskSuccess/Failure. */
export const lambdaCallbackResource = 'arn:aws:states:::lambda:invoke.waitForTaskToken';
/** What `$$.Task.Token` resolves to in the interpreter; each invocation replaces it with a fresh token. */
const tokenPlaceholder = 'volsd-local-task-token';
/** Longest task token AWS accepts (SendTaskSuccess: taskToken 1-2048 characters). */
const maxTokenLength = 2048;

/** A task waiting for its token, as the callback pattern keeps it. */
interface PendingTask {
  resolve: (output: unknown) => void;
  reject: (error: Error) => void;
  heartbeat: () => void;
  execution: LocalExecution;
}

/** The error of an invocation whose runtime died after the handler ran (`Runtime.ExitError`). */
function runtimeExit(): Error {
  const crash = new Error('RequestId: local Error: Runtime exited with error: signal: killed');
  crash.name = 'Runtime.ExitError';
  return crash;
}

/** Replaces `${Name}` placeholders with their substitutions; an unknown placeholder is an error. */
export function substitute(text: string, substitutions: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_m, key: string) => {
    const value = substitutions[key];
    if (value === undefined) throw new Error(`no substitution for \${${key}}`);
    return value;
  });
}

type Json = Record<string, unknown>;

/** Resource of the Task a Wait with `SecondsPath` becomes in the sandbox (see {@link scaleDefinition}). */
const secondsPathWait = 'volsd-sandbox:wait-seconds-path:';

/**
 * Scales the definition's waiting times by the time scale: Wait `Seconds`, Retry `IntervalSeconds` and
 * `MaxDelaySeconds`. Backoff and jitter then work as written, in modelled time. A Wait with `SecondsPath`
 * (a number the execution computed) becomes a Task of the sandbox that waits that many modelled seconds
 * and passes its input on: the path's value cannot be scaled in the definition. Task and execution
 * timeouts are left in wall seconds: the interpreter's guard of the local run. A Task's TimeoutSeconds
 * also counts in modelled seconds (`timed`, `invokeAndWait`), as AWS counts it.
 */
export function scaleDefinition(definition: Json, timeScale: number): Json {
  const states = (definition.States ?? {}) as Record<string, Json>;
  const scaled: Record<string, Json> = {};
  for (const [name, state] of Object.entries(states)) {
    const copy: Json = { ...state };
    if (typeof copy.Seconds === 'number') copy.Seconds = copy.Seconds * timeScale;
    if (copy.Type === 'Wait' && typeof copy.SecondsPath === 'string') {
      const { SecondsPath: path, Type: _type, ...rest } = copy;
      scaled[name] = { ...rest, Type: 'Task', Resource: `${secondsPathWait}${path}` };
      continue;
    }
    if (Array.isArray(copy.Retry)) {
      copy.Retry = (copy.Retry as Json[]).map((r) => ({
        ...r,
        ...(typeof r.IntervalSeconds === 'number' ? { IntervalSeconds: r.IntervalSeconds * timeScale } : {}),
        ...(typeof r.MaxDelaySeconds === 'number' ? { MaxDelaySeconds: r.MaxDelaySeconds * timeScale } : {}),
        // The interpreter's default interval is 1 s: make it explicit so it scales too.
        ...(r.IntervalSeconds === undefined ? { IntervalSeconds: timeScale } : {}),
      }));
    }
    for (const key of ['Iterator', 'ItemProcessor'] as const) {
      if (copy[key]) copy[key] = scaleDefinition(copy[key] as Json, timeScale);
    }
    if (Array.isArray(copy.Branches))
      copy.Branches = (copy.Branches as Json[]).map((b) => scaleDefinition(b, timeScale));
    scaled[name] = copy;
  }
  return { ...definition, States: scaled };
}

/** The value at a plain JSONPath (`$.a.b`) of `input`. */
function readPath(input: unknown, path: string): unknown {
  let value: unknown = input;
  for (const key of path
    .replace(/^\$\.?/, '')
    .split('.')
    .filter(Boolean)) {
    value = value && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  }
  return value;
}

function sfnError(name: string, message: string): Error {
  return new SFNServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: 400 }, message });
}

/**
 * A local Step Functions service: runs the project's real `statemachines/*.asl.json` in
 * aws-local-stepfunctions with the real Lambda handlers as Task resources, and answers the SFN API
 * (StartExecution with AWS's name semantics, DescribeExecution, ListExecutions) for the SDK client the
 * handlers and volsd-client use.
 */
export class LocalStepFunctions {
  readonly executions = new Map<string, LocalExecution>();
  private readonly machines = new Map<string, { name: string; definition: Json }>();
  private readonly byName = new Map<string, LocalExecution>();
  private readonly running = new Set<LocalExecution>();
  private readonly aborts = new Set<() => void>();
  private readonly crashes = new Map<string, number>();
  /** GetExecutionHistory, rebuilt from the states each execution entered (the host API reads it). */
  private readonly history = new ExecutionHistory(
    resolve(fileURLToPath(new URL('..', import.meta.url)), 'statemachines'),
  );
  private readonly tasks = new Map<string, PendingTask>();
  /**
   * Lambda invocations still running, their Task's included after it stopped waiting (timed out or
   * aborted): on AWS such an invocation runs on to its end, writing as it goes. `idle()` waits for them.
   */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Lambda crashes injected so far, by state name. */
  readonly crashCounts = new Map<string, number>();

  constructor(private readonly o: LocalStepFunctionsOptions) {}

  /** Registers `statemachines/<file>` under a name; returns its ARN. */
  register(aslPath: string, name = basename(aslPath, '.asl.json')): string {
    const text = substitute(readFileSync(aslPath, 'utf8'), this.o.substitutions);
    const arn = `arn:aws:states:${this.o.region}:${this.o.accountId}:stateMachine:${name}`;
    this.machines.set(arn, { name, definition: JSON.parse(text) as Json });
    return arn;
  }

  private now(): Date {
    return new Date(this.o.now ? this.o.now() : Date.now());
  }

  /** StartExecution: a name already used with the same input while running returns that execution. */
  start(
    stateMachineArn: string,
    name: string | undefined,
    input = '{}',
  ): { executionArn: string; startDate: Date } {
    const machine = this.machines.get(stateMachineArn);
    if (!machine)
      throw sfnError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${stateMachineArn}'`);
    const executionName = name ?? randomUUID();
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(executionName))
      throw sfnError('InvalidName', `Invalid Name: '${executionName}'`);
    const key = `${stateMachineArn}|${executionName}`;
    const existing = this.byName.get(key);
    if (existing) {
      if (existing.status === 'RUNNING' && existing.input === input) {
        return { executionArn: existing.executionArn, startDate: existing.startDate };
      }
      throw sfnError('ExecutionAlreadyExists', `Execution Already Exists: '${existing.executionArn}'`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(input);
    } catch {
      throw sfnError('InvalidExecutionInput', 'Invalid execution input: not JSON');
    }
    const executionArn = `arn:aws:states:${this.o.region}:${this.o.accountId}:execution:${machine.name}:${executionName}`;
    const execution: LocalExecution = {
      executionArn,
      stateMachineArn,
      name: executionName,
      input,
      status: 'RUNNING',
      startDate: this.now(),
      transitions: 0,
      lambdaInvocations: 0,
      path: [],
      invocations: [],
      failures: [],
      done: Promise.resolve(),
    };
    this.byName.set(key, execution);
    this.executions.set(executionArn, execution);
    this.running.add(execution);
    const op = `${machine.name}:${executionName}`;
    const run = () => this.run(machine.definition, execution, parsed);
    execution.done = (this.o.accounting ? this.o.accounting.withOperation(op, run) : run()).finally(() =>
      this.running.delete(execution),
    );
    return { executionArn, startDate: execution.startDate };
  }

  private async run(definition: Json, execution: LocalExecution, input: unknown): Promise<void> {
    const scaled = scaleDefinition(definition, this.o.timeScale) as unknown as StateMachineDefinition;
    const handlers: Record<string, (input: never) => Promise<never>> = {};
    for (const [stateName, state] of Object.entries(
      (scaled.States ?? {}) as unknown as Record<string, Json>,
    )) {
      if (state.Type !== 'Task') continue;
      const callback = state.Resource === lambdaCallbackResource;
      const resource = callback
        ? String((state.Parameters as Json | undefined)?.FunctionName)
        : String(state.Resource);
      if (resource.startsWith(secondsPathWait)) {
        const path = resource.slice(secondsPathWait.length);
        handlers[stateName] = (async (event: unknown) => {
          const seconds = Number(readPath(event, path));
          if (!Number.isFinite(seconds) || seconds < 0)
            throw sfnError('States.Runtime', `SecondsPath ${path} is not a number of seconds`);
          await new Promise((done) => setTimeout(done, seconds * this.o.timeScale * 1000));
          return event as never;
        }) as never;
        continue;
      }
      const lambda = this.o.lambdas[resource];
      if (!lambda) throw new Error(`state ${stateName}: no local Lambda for ${resource}`);
      if (callback) {
        handlers[stateName] = ((parameters: { Payload?: unknown }) =>
          this.invokeAndWait(stateName, state, execution, resource, lambda, parameters.Payload)) as never;
        continue;
      }
      handlers[stateName] = (async (event: unknown) => {
        execution.lambdaInvocations++;
        this.o.accounting?.count('lambdaInvocation', resource.split(':').pop() ?? resource);
        await this.o.invokeDelay?.();
        const result = await this.timed(stateName, state, execution, () =>
          lambda(event, lambdaContext(resource)),
        );
        const faults = this.o.faults;
        const oneShot = this.crashes.get(stateName) ?? 0;
        if (oneShot > 0) this.crashes.set(stateName, oneShot - 1);
        const drawn = faults?.crashAfterRate
          ? (faults.random ?? Math.random)() < faults.crashAfterRate
          : false;
        if (oneShot > 0 || drawn) {
          this.crashCounts.set(stateName, (this.crashCounts.get(stateName) ?? 0) + 1);
          faults?.onCrash?.(stateName);
          throw runtimeExit();
        }
        return result as never;
      }) as never;
    }
    const machine = new StateMachine(scaled, { validationOptions: { noValidate: true } });
    const execution$ = machine.run(input as never, {
      overrides: { taskResourceLocalHandlers: handlers as never },
      context: {
        Execution: {
          Id: execution.executionArn,
          Name: execution.name,
          StartTime: execution.startDate.toISOString(),
          Input: input as never,
        },
        // The interpreter has no per-task context: each callback invocation swaps in its own token.
        Task: { Token: tokenPlaceholder },
      } as never,
    });
    this.aborts.add(execution$.abort);
    // The execution's own TimeoutSeconds, in modelled seconds as AWS counts it: TIMED_OUT with
    // States.Timeout, its callback tasks answered no more (the interpreter's wall-second guard stays).
    let timedOut = false;
    const executionTimeout = definition.TimeoutSeconds;
    const cancelTimeout =
      typeof executionTimeout === 'number'
        ? this.modelTimer(executionTimeout, () => {
            timedOut = true;
            for (const [token, task] of this.tasks) {
              if (task.execution !== execution) continue;
              this.tasks.delete(token);
              task.reject(Object.assign(new Error('execution timed out'), { name: 'States.Timeout' }));
            }
            execution$.abort();
          })
        : () => {};
    const logs = (async () => {
      for await (const event of execution$.eventLogs) {
        if (event.type === 'StateFailed') {
          const failed = event as { state: { name: string }; Error?: string; error?: { Error?: string } };
          execution.failures.push({
            state: failed.state.name,
            at: this.now().getTime(),
            error: failed.Error ?? failed.error?.Error ?? 'unknown',
          });
        }
        if (event.type === 'StateEntered' || event.type === 'StateRetried') {
          execution.transitions++;
          this.o.accounting?.count(
            'stateTransition',
            (event as { state?: { name?: string } }).state?.name ?? event.type,
          );
          if (event.type === 'StateEntered') {
            execution.lastStateInput = (event as { state: { input?: unknown } }).state.input;
            execution.path.push({
              state: (event as { state: { name: string } }).state.name,
              at: this.now().getTime(),
            });
          }
        }
      }
    })();
    try {
      const output = await execution$.result;
      execution.status = 'SUCCEEDED';
      execution.output = JSON.stringify(output);
    } catch (err) {
      const e = err as { name?: string; message?: string; cause?: unknown };
      if (timedOut) {
        execution.status = 'TIMED_OUT';
        execution.error = 'States.Timeout';
        execution.cause = `the execution ran past its TimeoutSeconds (${executionTimeout} s)`;
        return;
      }
      execution.status =
        e.name === 'ExecutionAbortedError'
          ? 'ABORTED'
          : e.name === 'ExecutionTimeoutError'
            ? 'TIMED_OUT'
            : 'FAILED';
      const cause = e.cause as { name?: string; message?: string } | undefined;
      execution.error = cause?.name ?? e.name;
      execution.cause = cause?.message ?? e.message;
    } finally {
      cancelTimeout();
      execution.stopDate = this.now();
      this.aborts.delete(execution$.abort);
      await logs.catch(() => undefined);
    }
  }

  /**
   * Runs one invocation of a plain Lambda Task and records it ({@link LocalExecution.invocations}). The
   * Task's TimeoutSeconds counts in modelled seconds, as on AWS: when it runs out first the Task fails
   * with States.Timeout (its Retry and Catch decide what next) while the invocation runs on, its result
   * discarded, as a Lambda invocation outlives the Task that stopped waiting for it. The interpreter's
   * own timeout counts the same number in wall seconds: a guard for the local run only.
   */
  private async timed<T>(
    stateName: string,
    state: Json,
    execution: LocalExecution,
    invoke: () => Promise<T>,
  ): Promise<T> {
    const at = this.now().getTime();
    const wallStart = performance.now();
    const op = this.o.accounting?.currentOperation();
    const callsBefore = op ? this.o.accounting?.countOf(op, 'awsCall') : undefined;
    let cancel = () => {};
    const outcome: { error?: string } = {};
    try {
      const invocation = this.track(invoke());
      if (typeof state.TimeoutSeconds !== 'number') return await invocation;
      invocation.catch(() => undefined);
      const seconds = state.TimeoutSeconds;
      const timeout = new Promise<never>((_, reject) => {
        const fire = () => {
          const error = new Error(`task timed out after ${seconds} s`);
          error.name = 'States.Timeout';
          reject(error);
        };
        cancel = this.modelTimer(seconds, fire);
      });
      return await Promise.race([invocation, timeout]);
    } catch (err) {
      outcome.error = (err as Error).name || 'Error';
      throw err;
    } finally {
      cancel();
      const end = this.now().getTime();
      execution.invocations.push({
        state: stateName,
        at,
        seconds: (end - at) / 1000,
        wallMs: Math.round(performance.now() - wallStart),
        awsCalls:
          op && callsBefore !== undefined
            ? (this.o.accounting?.countOf(op, 'awsCall') ?? 0) - callsBefore
            : 0,
        ...outcome,
      });
    }
  }

  /**
   * `arn:aws:states:::lambda:invoke.waitForTaskToken`: invokes the function with the payload (its
   * `$$.Task.Token` replaced by a fresh token), ignores its result, then waits for SendTaskSuccess or
   * SendTaskFailure with that token. HeartbeatSeconds (reset by SendTaskHeartbeat) and TimeoutSeconds
   * are modelled seconds and end the wait with States.HeartbeatTimeout / States.Timeout, as on AWS; a
   * function error fails the task at once (its Retry then invokes again, with a new token).
   */
  private async invokeAndWait(
    stateName: string,
    state: Json,
    execution: LocalExecution,
    functionArn: string,
    lambda: LocalLambda,
    payload: unknown,
  ): Promise<unknown> {
    const token = `${randomUUID()}.${Buffer.from(execution.executionArn).toString('base64url')}`.slice(
      0,
      maxTokenLength,
    );
    const withToken = JSON.parse(
      JSON.stringify(payload ?? {})
        .split(tokenPlaceholder)
        .join(token),
    );
    let resolve: (output: unknown) => void = () => undefined;
    let reject: (error: Error) => void = () => undefined;
    const promise = new Promise<unknown>((ok, ko) => {
      resolve = ok;
      reject = ko;
    });
    // Awaited only once the function returned; an answer or a timeout may come before that.
    promise.catch(() => undefined);
    const timers: (() => void)[] = [];
    const timer = (seconds: number, fire: () => void) => this.modelTimer(seconds, fire);
    const fail = (name: string, message: string) => {
      const error = new Error(message);
      error.name = name;
      reject(error);
    };
    let cancelHeartbeat = () => {};
    const heartbeat = () => {
      cancelHeartbeat();
      if (typeof state.HeartbeatSeconds === 'number') {
        cancelHeartbeat = timer(state.HeartbeatSeconds, () =>
          fail('States.HeartbeatTimeout', `no heartbeat for ${state.HeartbeatSeconds} s`),
        );
      }
    };
    this.tasks.set(token, { resolve, reject, heartbeat, execution });
    try {
      execution.lambdaInvocations++;
      this.o.accounting?.count('lambdaInvocation', functionArn.split(':').pop() ?? functionArn);
      await this.o.invokeDelay?.();
      // The token is live from the invocation on: the function may hand it to someone who answers at once.
      heartbeat();
      if (typeof state.TimeoutSeconds === 'number') {
        timers.push(
          timer(state.TimeoutSeconds, () =>
            fail('States.Timeout', `task timed out after ${state.TimeoutSeconds} s`),
          ),
        );
      }
      await this.track(lambda(withToken, lambdaContext(functionArn)));
      // The invocation is synchronous (RequestResponse): a function error, the runtime's death after the
      // handler ran included, fails the Task whatever its token's answer would have been.
      const oneShot = this.crashes.get(stateName) ?? 0;
      if (oneShot > 0) {
        this.crashes.set(stateName, oneShot - 1);
        this.crashCounts.set(stateName, (this.crashCounts.get(stateName) ?? 0) + 1);
        this.o.faults?.onCrash?.(stateName);
        throw runtimeExit();
      }
      return await promise;
    } finally {
      this.tasks.delete(token);
      cancelHeartbeat();
      for (const cancel of timers) cancel();
    }
  }

  /** SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat on a waiting task. */
  private answerTask(command: string, input: Json): Json {
    const token = String(input.taskToken ?? '');
    if (token.length < 1 || token.length > maxTokenLength)
      throw sfnError('InvalidToken', 'Invalid Token: taskToken must be 1-2048 characters');
    const task = this.tasks.get(token);
    // AWS answers TaskTimedOut for a token whose task ended (succeeded, failed, timed out, or retried).
    if (!task) throw sfnError('TaskTimedOut', 'Task Timed Out: the task of this token is no longer waiting');
    if (command === 'SendTaskHeartbeat') {
      task.heartbeat();
      return {};
    }
    this.tasks.delete(token);
    if (command === 'SendTaskSuccess') {
      let output: unknown;
      try {
        output = JSON.parse(String(input.output ?? ''));
      } catch {
        throw sfnError('InvalidOutput', 'Invalid Output: not JSON');
      }
      task.resolve(output);
    } else {
      const error = new Error(String(input.cause ?? ''));
      error.name = String(input.error ?? 'States.TaskFailed');
      task.reject(error);
    }
    return {};
  }

  /**
   * Makes the next `times` invocations of the Task state `stateName` crash after their handler ran: the
   * effects stay, the result is lost, and the state machine sees `Runtime.ExitError`. For a callback Task
   * too (`.waitForTaskToken`): its invocation is synchronous, so the Task fails though the function may
   * have handed its token on (the random `crashAfterRate` of chaos still crashes plain Tasks only).
   */
  crashNext(stateName: string, times = 1): void {
    this.crashes.set(stateName, (this.crashes.get(stateName) ?? 0) + times);
  }

  /** A timer of `seconds` modelled seconds (the `setTimer` option, else setTimeout scaled); returns its cancel. */
  private modelTimer(seconds: number, fire: () => void): () => void {
    if (this.o.setTimer) return this.o.setTimer(seconds, fire);
    const t = setTimeout(fire, seconds * this.o.timeScale * 1000);
    return () => clearTimeout(t);
  }

  /** Counts a Lambda invocation in flight until it ends (see {@link inFlight}); returns it unchanged. */
  private track<T>(invocation: Promise<T>): Promise<T> {
    this.inFlight.add(invocation);
    invocation.then(
      () => this.inFlight.delete(invocation),
      () => this.inFlight.delete(invocation),
    );
    return invocation;
  }

  /**
   * Resolves when no execution is running and no Lambda invocation is in flight, an invocation whose
   * Task timed out or was aborted included (new ones started meanwhile are waited for too).
   */
  async idle(): Promise<void> {
    while (this.running.size > 0 || this.inFlight.size > 0) {
      await Promise.all([
        ...[...this.running].map((e) => e.done),
        ...[...this.inFlight].map((p) => p.catch(() => undefined)),
      ]);
    }
  }

  /** Aborts every running execution. */
  abortAll(): void {
    for (const abort of this.aborts) abort();
    for (const [token, task] of this.tasks) {
      this.tasks.delete(token);
      task.reject(Object.assign(new Error('execution aborted'), { name: 'States.Aborted' }));
    }
  }

  /**
   * Answers an SFN API call (StartExecution, DescribeExecution, ListExecutions, SendTaskSuccess,
   * SendTaskFailure, SendTaskHeartbeat).
   */
  handle(command: string, input: Json): Json {
    switch (command) {
      case 'SendTaskSuccess':
      case 'SendTaskFailure':
      case 'SendTaskHeartbeat':
        return this.answerTask(command, input);
      case 'StartExecution':
        return this.start(
          String(input.stateMachineArn),
          input.name as string | undefined,
          (input.input as string) ?? '{}',
        );
      case 'DescribeExecution': {
        const e = this.executions.get(String(input.executionArn));
        if (!e)
          throw sfnError(
            'ExecutionDoesNotExist',
            `Execution Does Not Exist: '${String(input.executionArn)}'`,
          );
        return {
          executionArn: e.executionArn,
          stateMachineArn: e.stateMachineArn,
          name: e.name,
          status: e.status,
          startDate: e.startDate,
          stopDate: e.stopDate,
          input: e.input,
          output: e.output,
          error: e.error,
          cause: e.cause,
        };
      }
      case 'GetExecutionHistory': {
        const e = this.executions.get(String(input.executionArn));
        if (!e)
          throw sfnError(
            'ExecutionDoesNotExist',
            `Execution Does Not Exist: '${String(input.executionArn)}'`,
          );
        return this.history.page(e, input) as Json;
      }
      case 'ListExecutions': {
        const list = [...this.executions.values()]
          .filter((e) => e.stateMachineArn === input.stateMachineArn)
          .filter((e) => !input.statusFilter || e.status === input.statusFilter)
          .map((e) => ({
            executionArn: e.executionArn,
            stateMachineArn: e.stateMachineArn,
            name: e.name,
            status: e.status,
            startDate: e.startDate,
            stopDate: e.stopDate,
          }));
        return { executions: list.slice(0, Number(input.maxResults ?? 1000)) };
      }
      default:
        throw sfnError(
          'UnknownOperationException',
          `the sandbox's Step Functions does not implement ${command}`,
        );
    }
  }

  /** Makes an SFNClient answer from this service, in process (same placement as the EC2 simulator). */
  attach(client: { middlewareStack: { add(mw: unknown, options: unknown): void } }): void {
    client.middlewareStack.add(
      (_next: unknown, context: { commandName?: string }) => async (args: { input: Json }) => {
        const command = String(context.commandName ?? '').replace(/Command$/, '');
        this.o.accounting?.count('awsCall', `states:${command}`);
        const output = this.handle(command, args.input ?? {});
        return {
          output: { ...output, $metadata: { httpStatusCode: 200 } },
          response: { statusCode: 200, headers: {}, body: undefined },
        };
      },
      { step: 'deserialize', priority: 'high', name: 'volsdLocalStepFunctions', override: true },
    );
  }
}

function lambdaContext(functionArn: string) {
  const functionName = functionArn.split(':').pop() ?? 'volsd';
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: functionArn,
    memoryLimitInMB: '512',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => 60_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
