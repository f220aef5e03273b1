import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalExecution } from '../stepfunctions.js';
import { ProtocolError } from './protocol.js';

const enteredType: Record<string, string> = {
  Task: 'TaskStateEntered',
  Choice: 'ChoiceStateEntered',
  Pass: 'PassStateEntered',
  Wait: 'WaitStateEntered',
  Succeed: 'SucceedStateEntered',
  Fail: 'FailStateEntered',
  Parallel: 'ParallelStateEntered',
  Map: 'MapStateEntered',
};

/**
 * GetExecutionHistory for the local Step Functions, which keeps no history of its own: the events
 * are rebuilt from what the local service does record, the execution's start, the states it entered
 * (in order, retries included once) and its end. Enough for a client to show which step an execution
 * is in, in the event shapes of the real API. State types come from the ASL files, so a Choice is a
 * `ChoiceStateEntered` as in AWS.
 */
export class ExecutionHistory {
  private readonly stateTypes = new Map<string, Record<string, string>>();

  constructor(private readonly statemachinesDir: string) {}

  /** Answers GetExecutionHistory for `execution` (maxResults, nextToken, reverseOrder). */
  page(execution: LocalExecution, input: Record<string, unknown>): Record<string, unknown> {
    const events = this.events(execution);
    if (input.reverseOrder === true) events.reverse();
    const maxResults = input.maxResults === undefined ? 100 : Number(input.maxResults);
    if (!Number.isInteger(maxResults) || maxResults < 0 || maxResults > 1000) {
      throw new ProtocolError('ValidationException', 'maxResults must be between 0 and 1000');
    }
    const size = maxResults === 0 ? 100 : maxResults;
    const start = input.nextToken === undefined ? 0 : Number(input.nextToken);
    if (!Number.isInteger(start) || start < 0 || start > events.length) {
      throw new ProtocolError('InvalidToken', 'Invalid Token');
    }
    const slice = events.slice(start, start + size);
    const next = start + size < events.length ? String(start + size) : undefined;
    return { events: slice, ...(next ? { nextToken: next } : {}) };
  }

  private events(e: LocalExecution): Record<string, unknown>[] {
    const types = this.typesOf(e.stateMachineArn);
    const events: Record<string, unknown>[] = [
      {
        id: 1,
        previousEventId: 0,
        timestamp: e.startDate,
        type: 'ExecutionStarted',
        executionStartedEventDetails: { input: e.input },
      },
    ];
    for (const step of e.path) {
      events.push({
        id: events.length + 1,
        previousEventId: events.length,
        timestamp: new Date(step.at),
        type: enteredType[types[step.state] ?? 'Task'] ?? 'TaskStateEntered',
        stateEnteredEventDetails: { name: step.state },
      });
    }
    const end = e.stopDate ?? new Date();
    const closing: Record<string, Record<string, unknown>> = {
      SUCCEEDED: { type: 'ExecutionSucceeded', executionSucceededEventDetails: { output: e.output } },
      FAILED: { type: 'ExecutionFailed', executionFailedEventDetails: { error: e.error, cause: e.cause } },
      ABORTED: { type: 'ExecutionAborted', executionAbortedEventDetails: {} },
      TIMED_OUT: { type: 'ExecutionTimedOut', executionTimedOutEventDetails: {} },
    };
    const last = closing[e.status];
    if (last) events.push({ id: events.length + 1, previousEventId: events.length, timestamp: end, ...last });
    return events;
  }

  private typesOf(stateMachineArn: string): Record<string, string> {
    const name = stateMachineArn.split(':stateMachine:')[1] ?? '';
    let types = this.stateTypes.get(name);
    if (!types) {
      types = {};
      try {
        const definition = JSON.parse(
          readFileSync(join(this.statemachinesDir, `${name}.asl.json`), 'utf8'),
        ) as { States?: Record<string, { Type?: string }> };
        for (const [state, body] of Object.entries(definition.States ?? {}))
          types[state] = body.Type ?? 'Task';
      } catch {
        // A machine registered from elsewhere: every state is reported as a Task.
      }
      this.stateTypes.set(name, types);
    }
    return types;
  }
}
