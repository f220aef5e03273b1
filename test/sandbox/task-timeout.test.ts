import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SimClock } from '../../sandbox/sim/clock.js';
import { type LocalExecution, LocalStepFunctions } from '../../sandbox/stepfunctions.js';

// 1 modelled second = 1 wall millisecond: the Task's 60 s last 60 ms when they count in modelled time,
// a wall minute (past the test's timeout) when only the interpreter's own wall-clock guard counts them.
const timeScale = 0.001;
const functionArn = 'arn:aws:lambda:eu-west-1:111111111111:function:slow';

const definition = {
  StartAt: 'Slow',
  States: {
    Slow: {
      Type: 'Task',
      Resource: functionArn,
      TimeoutSeconds: 60,
      Retry: [{ ErrorEquals: ['States.Timeout'], IntervalSeconds: 1, MaxAttempts: 1 }],
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'TimedOut' }],
      End: true,
    },
    TimedOut: { Type: 'Pass', End: true },
  },
};

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A LocalStepFunctions on a modelled clock whose one Lambda takes `handlerSeconds` modelled seconds. */
function machine(handlerSeconds: number, asl: object = definition) {
  const clock = new SimClock(timeScale);
  const dir = mkdtempSync(join(tmpdir(), 'volsd-task-timeout-'));
  cleanups.push(() => {
    clock.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const file = join(dir, 'slow.asl.json');
  writeFileSync(file, JSON.stringify(asl));
  let calls = 0;
  let finished = 0;
  const sfn = new LocalStepFunctions({
    region: 'eu-west-1',
    accountId: '111111111111',
    timeScale,
    substitutions: {},
    lambdas: {
      [functionArn]: async (event: unknown) => {
        calls++;
        await clock.sleep(handlerSeconds).catch(() => undefined);
        finished++;
        return { ...(event as object), done: true };
      },
    },
    now: () => clock.date().getTime(),
    setTimer: (seconds, fire) => clock.setTimer(seconds, fire),
  });
  const arn = sfn.register(file, 'slow');
  return { sfn, arn, clock, calls: () => calls, finished: () => finished };
}

async function run(sfn: LocalStepFunctions, arn: string): Promise<LocalExecution> {
  const { executionArn } = sfn.start(arn, 'one', JSON.stringify({ n: 1 }));
  const execution = sfn.executions.get(executionArn) as LocalExecution;
  await execution.done;
  return execution;
}

describe('local Step Functions: a Lambda Task past its TimeoutSeconds', () => {
  it('fails with States.Timeout after TimeoutSeconds modelled seconds, retried by its Retry, then caught', async () => {
    const { sfn, arn, calls } = machine(300);
    const execution = await run(sfn, arn);
    expect(execution.status).toBe('SUCCEEDED');
    expect(JSON.parse(execution.output ?? '{}').error.Error).toBe('States.Timeout');
    // The first attempt and its one retry were both invoked, and both timed out.
    expect(calls()).toBe(2);
    expect(execution.failures.map((f) => [f.state, f.error])).toEqual([
      ['Slow', 'States.Timeout'],
      ['Slow', 'States.Timeout'],
    ]);
    expect(execution.invocations.map((i) => i.error)).toEqual(['States.Timeout', 'States.Timeout']);
    for (const invocation of execution.invocations) {
      expect(invocation.seconds).toBeGreaterThanOrEqual(60);
      expect(invocation.seconds).toBeLessThan(600);
    }
    expect(execution.path.map((p) => p.state)).toEqual(['Slow', 'TimedOut']);
  });

  it('passes an invocation that ends within TimeoutSeconds through, recorded without an error', async () => {
    const { sfn, arn, calls } = machine(10);
    const execution = await run(sfn, arn);
    expect(execution.status).toBe('SUCCEEDED');
    expect(JSON.parse(execution.output ?? '{}')).toEqual({ n: 1, done: true });
    expect(calls()).toBe(1);
    expect(execution.failures).toEqual([]);
    expect(execution.invocations).toHaveLength(1);
    expect(execution.invocations[0]?.error).toBeUndefined();
    expect(execution.invocations[0]?.seconds).toBeGreaterThanOrEqual(10);
  });

  it('counts an invocation its Task stopped waiting for until it ends: idle() waits for it', async () => {
    const { sfn, arn, finished } = machine(300);
    const execution = await run(sfn, arn);
    expect(execution.invocations.map((i) => i.error)).toEqual(['States.Timeout', 'States.Timeout']);
    // The execution ended at the second timeout; both invocations still run, as on AWS.
    expect(finished()).toBe(0);
    await sfn.idle();
    expect(finished()).toBe(2);
  });
});

describe('local Step Functions: an execution past its TimeoutSeconds', () => {
  it('ends TIMED_OUT with States.Timeout after TimeoutSeconds modelled seconds', async () => {
    // Task timeouts far off: only the execution's own 100 s can end it before the 300 s invocation.
    const { sfn, arn, clock } = machine(300, {
      TimeoutSeconds: 100,
      StartAt: 'Slow',
      States: { Slow: { Type: 'Task', Resource: functionArn, TimeoutSeconds: 3600, End: true } },
    });
    const started = clock.now();
    const execution = await run(sfn, arn);
    expect(execution.status).toBe('TIMED_OUT');
    expect(execution.error).toBe('States.Timeout');
    const seconds = clock.now() - started;
    expect(seconds).toBeGreaterThanOrEqual(100);
    expect(seconds).toBeLessThan(300);
    await sfn.idle();
  });
});
