import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  type SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { awsCall } from './aws.js';
import { ClientError, ExitCode } from './errors.js';
import type { Progress } from './progress.js';

/** Step Functions' longest execution name. */
const maxExecutionNameLength = 80;

/**
 * `name` as an execution name: itself when it fits in 80 characters, else its first 63 and 16 hex
 * digits of its SHA-256 (still unique, still readable), as the workflows shorten theirs.
 */
export function boundedExecutionName(name: string): string {
  if (name.length <= maxExecutionNameLength) return name;
  return `${name.slice(0, 63)}-${createHash('sha256').update(name).digest('hex').slice(0, 16)}`;
}

/** A started execution. */
export interface StartedExecution {
  executionArn: string;
  startDate?: Date;
}

/** How an execution ended (or stands). */
export interface ExecutionOutcome {
  executionArn: string;
  status: string;
  /** The parsed output of a SUCCEEDED execution. */
  output?: Record<string, unknown>;
  error?: string;
  cause?: string;
}

/** Starts `stateMachineArn` under `name` with `input`. */
export async function startExecution(
  sfn: SFNClient,
  stateMachineArn: string,
  name: string,
  input: unknown,
): Promise<StartedExecution> {
  const out = await awsCall('states:StartExecution', () =>
    sfn.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) })),
  );
  if (!out.executionArn)
    throw new ClientError(ExitCode.Unexpected, 'AwsError', 'StartExecution returned no ARN');
  return { executionArn: out.executionArn, ...(out.startDate ? { startDate: out.startDate } : {}) };
}

/** Options of {@link waitForExecution}. */
export interface WaitOptions {
  /** Give up after this long (the execution goes on). */
  timeoutMs: number;
  progress: Progress;
  /** What is waited for, in the timeout message ("acquire"). */
  label: string;
  /** Also read the step from GetExecutionHistory (only while a progress display is shown). */
  steps: boolean;
  now?: () => number;
}

/** First and longest pause between two DescribeExecution polls. */
const firstPollMs = 200;
const maxPollMs = 2000;

/**
 * Polls DescribeExecution until the execution ends or `timeoutMs` passes (then a Timeout error: the
 * execution is not stopped). Pauses grow from 0.2 to 2 s. When `steps` is set it also reads the last
 * state entered from GetExecutionHistory for the progress display; a history that cannot be read
 * (no permission, an API that lacks it) only hides the step, it never fails the wait.
 */
export async function waitForExecution(
  sfn: SFNClient,
  executionArn: string,
  options: WaitOptions,
): Promise<ExecutionOutcome> {
  return pollExecution(sfnDescriber(sfn), executionArn, options);
}

/** How an execution stands: what one poll learns (the step only when asked and allowed). */
export interface ExecutionState {
  status: string;
  output?: string;
  error?: string;
  cause?: string;
  step?: string;
}

/** Reads an execution's state; `withStep` asks for the state it last entered too. */
export type ExecutionDescriber = (executionArn: string, withStep: boolean) => Promise<ExecutionState>;

/** Describes executions with Step Functions itself (DescribeExecution, GetExecutionHistory). */
export function sfnDescriber(sfn: SFNClient): ExecutionDescriber {
  let steps = true;
  return async (executionArn, withStep) => {
    const described = await awsCall('states:DescribeExecution', () =>
      sfn.send(new DescribeExecutionCommand({ executionArn })),
    );
    const status = described.status ?? 'UNKNOWN';
    let step: string | undefined;
    if (withStep && steps && status === 'RUNNING') {
      step = await currentStep(sfn, executionArn).catch(() => {
        steps = false;
        return undefined;
      });
    }
    return {
      status,
      ...(described.output ? { output: described.output } : {}),
      ...(described.error ? { error: described.error } : {}),
      ...(described.cause ? { cause: described.cause } : {}),
      ...(step ? { step } : {}),
    };
  };
}

/**
 * Polls `describe` until the execution ends or `timeoutMs` passes (then a Timeout error: the execution
 * is not stopped). Pauses grow from 0.2 to 2 s.
 */
export async function pollExecution(
  describe: ExecutionDescriber,
  executionArn: string,
  options: WaitOptions,
): Promise<ExecutionOutcome> {
  const now = options.now ?? Date.now;
  const deadline = now() + options.timeoutMs;
  let pause = firstPollMs;
  for (;;) {
    const described = await describe(executionArn, options.steps);
    const status = described.status;
    options.progress.update(status, described.step);
    if (status !== 'RUNNING') {
      return {
        executionArn,
        status,
        ...(described.output ? { output: parseOutput(described.output) } : {}),
        ...(described.error ? { error: described.error } : {}),
        ...(described.cause ? { cause: described.cause } : {}),
      };
    }
    const left = deadline - now();
    if (left <= 0) {
      throw new ClientError(
        ExitCode.Timeout,
        'Timeout',
        `timed out after ${options.timeoutMs / 1000}s waiting for ${options.label}; the workflow goes on: ${executionArn}`,
        { executionArn },
      );
    }
    await sleep(Math.min(pause, left));
    pause = Math.min(maxPollMs, Math.round(pause * 1.5));
  }
}

async function currentStep(sfn: SFNClient, executionArn: string): Promise<string | undefined> {
  const history = await sfn.send(
    new GetExecutionHistoryCommand({ executionArn, reverseOrder: true, maxResults: 20 }),
  );
  return history.events?.find((e) => e.stateEnteredEventDetails?.name)?.stateEnteredEventDetails?.name;
}

function parseOutput(text: string): Record<string, unknown> {
  try {
    const value = JSON.parse(text) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}
