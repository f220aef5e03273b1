import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox } from '../../sandbox/runtime.js';
import { ScenarioRecorder } from '../../sandbox/scenarios/report.js';
import { contentAndSnapshot, executions, refillFromSnapshot, scaleAndSettle } from '../helpers/sandbox.js';

// Warm volumes (issue 17) with COLD_DIRECT_VOLUME=continue: a direct creation goes InService at once,
// still initializing, and is counted as a cold handoff; the pool still hands out only warm volumes.
let sandbox: Sandbox;
let recorder: ScenarioRecorder;
let launched: string[];

beforeAll(async () => {
  sandbox = await Sandbox.start({
    azs: 1,
    idlePerAz: 1,
    timeScale: 0.02,
    seed: 18,
    agent: 'model',
    contentGiB: 100,
    coldDirectVolume: 'continue',
  });
  await contentAndSnapshot(sandbox, 'cold');
  await refillFromSnapshot(sandbox, 1);
  recorder = new ScenarioRecorder(sandbox);
  launched = await scaleAndSettle(sandbox, 3);
}, 600_000);

afterAll(async () => {
  await sandbox?.stop();
});

describe('warm volumes, cold direct volumes go InService at once (continue)', () => {
  it('puts the two direct creations InService below 100% and counts them cold, the pool one warm', () => {
    expect(launched).toHaveLength(3);
    const outputs = executions(sandbox, 'launch-')
      .filter((e) => e.status === 'SUCCEEDED')
      .map((e) => JSON.parse(e.output ?? '{}') as { direct?: boolean; initialization?: string });
    expect(outputs.map((o) => `${o.direct === true}:${o.initialization}`).sort()).toEqual([
      'false:warm',
      'true:cold',
      'true:cold',
    ]);
    const figures = recorder.initializationFigures();
    expect(figures.coldAtReady).toBe(2);
    expect(figures.coldFromPool).toBe(0);
    const cold = [...recorder.atInService.values()].flat().filter((v) => v.progress < 100);
    expect(cold.map((v) => v.fromPool)).toEqual([false, false]);
  });

  it('reports the seconds each snapshot-born volume took to initialize, as max below 100 samples', () => {
    const { initializationSeconds } = recorder.initializationFigures();
    expect(initializationSeconds.samples).toBeGreaterThanOrEqual(1);
    expect(initializationSeconds.p99).toBeUndefined();
    // 100 GiB at 300 MiB/s.
    expect(initializationSeconds.max).toBeCloseTo((100 * 1024) / 300, 0);
  });
});
