import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireSteps } from '../../lambdas/acquire/steps.js';
import { reconcileSteps } from '../../lambdas/reconcile/steps.js';
import { releaseSteps } from '../../lambdas/release/steps.js';
import { replenishSteps } from '../../lambdas/replenish/steps.js';
import { awsErrorNames, namedErrors } from '../../lambdas/shared/errors.js';
import { snapshotSteps } from '../../lambdas/snapshot/steps.js';
import { syncAllSteps } from '../../lambdas/syncall/steps.js';
import {
  callbackTaskBuilder,
  catchAll,
  catchEnds,
  catchOn,
} from '../../statemachines/definitions/profiles.js';
import { aslFile, renderStateMachine, stateMachineNames } from '../../statemachines/generate.js';

const root = join(import.meta.dirname, '../..');
const committedNames = readdirSync(join(root, 'statemachines'))
  .filter((f) => f.endsWith('.asl.json'))
  .map((f) => f.slice(0, -'.asl.json'.length))
  .sort();

const readAsl = (name: string): string => readFileSync(join(root, aslFile(name)), 'utf8');

/** The step table each state machine's function runs (as its handler builds it). */
const stepTables: Record<string, Record<string, unknown>> = {
  acquire: acquireSteps,
  release: releaseSteps,
  replenish: replenishSteps,
  snapshot: snapshotSteps,
  reconcile: reconcileSteps(),
  syncall: syncAllSteps,
};

interface TaskState {
  Type: string;
  /** `{ step, ctx }`, or for a callback Task (lambda:invoke.waitForTaskToken) `{ FunctionName, Payload: { step, ... } }`. */
  Parameters?: { step?: string; Payload?: { step?: string } };
  Retry?: Array<{ ErrorEquals: string[] }>;
  Catch?: Array<{ ErrorEquals: string[] }>;
}

const statesOf = (name: string): Array<[string, TaskState]> =>
  Object.entries((JSON.parse(readAsl(name)) as { States: Record<string, TaskState> }).States);

describe('generated ASL', () => {
  it('has a generator definition for every committed statemachines/*.asl.json, and a file for each', () => {
    expect([...stateMachineNames].sort()).toEqual(committedNames);
  });

  it.each(committedNames)('%s.asl.json is byte for byte the generator output', (name) => {
    expect(readAsl(name), `statemachines/${name}.asl.json is stale: run npm run generate:asl`).toBe(
      renderStateMachine(name),
    );
  });

  it.each(committedNames)('%s names only steps of its handler step table', (name) => {
    const table = stepTables[name];
    expect(table, `no step table for ${name}`).toBeDefined();
    const tasks = statesOf(name).filter(([, state]) => state.Type === 'Task');
    expect(tasks.length).toBeGreaterThan(0);
    for (const [stateName, task] of tasks) {
      const step = task.Parameters?.step ?? task.Parameters?.Payload?.step;
      expect(typeof step, `${name}.${stateName} names no step`).toBe('string');
      expect(Object.keys(table ?? {}), `${name}.${stateName} runs step ${step}`).toContain(step);
    }
  });

  it.each(committedNames)('%s matches only named, AWS, Lambda.* and States.* errors', (name) => {
    const known = (error: string) =>
      error in namedErrors ||
      awsErrorNames.includes(error) ||
      error.startsWith('Lambda.') ||
      error.startsWith('States.');
    for (const [stateName, state] of statesOf(name)) {
      for (const matcher of [...(state.Retry ?? []), ...(state.Catch ?? [])]) {
        expect(matcher.ErrorEquals.length, `${name}.${stateName}`).toBeGreaterThan(0);
        expect(
          matcher.ErrorEquals.filter((error) => !known(error)),
          `${name}.${stateName}`,
        ).toEqual([]);
      }
    }
  });
});

describe('a callback Task whose answerer runs stages (profiles.ts, `stages`)', () => {
  const build = callbackTaskBuilder('F', { s: ['InvalidInput', 'InstanceGone'] });
  const spec = {
    step: 's',
    timeoutSeconds: 60,
    ends: ['States.Timeout'] as const,
    stages: true,
    next: 'N',
  };

  it("retries Lambda's own errors only: a retry would re-run every stage", () => {
    const state = build({
      ...spec,
      catch: [
        catchEnds(spec.ends, '$.e', 'Poll'),
        catchOn(['InvalidInput', 'InstanceGone'], '$.error', 'Compensate'),
        catchAll('$.stageError', 'Poll'),
      ],
    }) as { Retry: Array<{ ErrorEquals: string[] }> };
    expect(state.Retry.flatMap((r) => r.ErrorEquals).every((e) => e.startsWith('Lambda.'))).toBe(true);
  });

  it('refuses a Catch that would send a fatal error or an end to the poll path', () => {
    expect(() =>
      build({ ...spec, catch: [catchEnds(spec.ends, '$.e', 'Poll'), catchAll('$.stageError', 'Poll')] }),
    ).toThrow(/does not name InvalidInput, InstanceGone before States.ALL/);
    expect(() =>
      build({
        ...spec,
        catch: [catchOn(['InvalidInput', 'InstanceGone'], '$.error', 'C'), catchAll('$.stageError', 'Poll')],
      }),
    ).toThrow(/does not name States.Timeout/);
  });
});
