import { describe, expect, it } from 'vitest';
import { parseTargets, type ScaleJsonFile, scaleMarkdown, sizedForBurst } from '../../bench/scale.js';
import type { ScaleResult } from '../../sandbox/scenarios/scale.js';

const p = (p50: number, max: number) => ({ p50, p95: max, p99: max, max });
const counts = { awsCalls: 50, stateTransitions: 20, lambdaInvocations: 18, tableWrites: 9 };

/** A scale result with `direct` direct creations in each of two bursts of 100 launches. */
function result(direct: number, violations = 0): ScaleResult {
  const burst = {
    launches: 100,
    ready: 100,
    failed: 0,
    timeToReadySeconds: p(100, 140),
    directCreates: direct,
    poolRecoverySeconds: 300,
    pushConvergenceSeconds: 40,
    volumesSyncedByPush: 160,
  };
  return {
    scenario: 'scale',
    seed: 1,
    strictRules: ['ssmDelivery'],
    intakeDeadLetters: 0,
    instancesLaunched: 200,
    instancesReady: 200,
    instancesFailed: 0,
    doubleAssignments: 0,
    leakedVolumes: 0,
    staleAtReady: 0,
    timeToReadySeconds: p(100, 140),
    addedBeyondBootSeconds: p(60, 100),
    perAcquire: counts,
    perPush: counts,
    push: { pushes: 2, fanOuts: 2 },
    invariants: {
      checked: ['noSharedVolume'],
      violations: Array.from({ length: violations }, () => ({ invariant: 'noSharedVolume', detail: 'x' })),
    },
    modelledSeconds: 2000,
    wallSeconds: 500,
    bursts: [burst, burst],
    throttling: { rateLimited: 10, executionsFailedOnThrottling: 0 },
    eventLoopDelayMs: { p50: 20, p99: 200, max: 900 },
    agent: 'model',
    workersPerAz: { a: 1, b: 3 },
  } as unknown as ScaleResult;
}

describe('bench:scale page', () => {
  it('sizes the pool for the largest share of a burst one AZ receives', () => {
    expect([sizedForBurst(200, 3), sizedForBurst(120, 2), sizedForBurst(10, 1)]).toEqual([67, 60, 10]);
  });

  it('takes a list of idle targets and refuses anything but integers 0..1000', () => {
    expect(parseTargets('20,67')).toEqual([20, 67]);
    expect(parseTargets(' 5 ')).toEqual([5]);
    for (const bad of ['', '20,', '1001', '-1', '2.5', 'x'])
      expect(() => parseTargets(bad), bad).toThrow(/--idle-per-az/);
  });

  it('renders the runs side by side, each column naming its target and the commit it ran on', () => {
    const file: ScaleJsonFile = {
      command: 'npm run bench:scale',
      instances: 200,
      burst: 100,
      azs: 2,
      runs: [
        { idlePerAz: 20, commit: 'aaaa111', timeScale: 0.1, result: result(30) },
        { idlePerAz: 50, commit: 'bbbb222', timeScale: 0.1, result: result(0, 1) },
      ],
    };

    const page = scaleMarkdown(file);
    const row = (name: string) => page.split('\n').find((l) => l.startsWith(`| ${name} |`));

    expect({
      head: row('figure'),
      commit: row('code (commit)'),
      direct: row('served from the pool / direct creations'),
      perBurst: row('direct creations per burst'),
      workers: row('sync workers per AZ at the end'),
      violated: row('invariants violated'),
      sections: page.split('\n').filter((l) => l.startsWith('## ')),
    }).toEqual({
      head: '| figure | 20 idle per AZ | 50 idle per AZ (sized for the burst) |',
      commit: '| code (commit) | aaaa111 | bbbb222 |',
      direct: '| served from the pool / direct creations | 140 / 60 | 200 / 0 |',
      perBurst: '| direct creations per burst | 30, 30 | 0, 0 |',
      workers: '| sync workers per AZ at the end | 1, 3 | 1, 3 |',
      violated: '| invariants violated | 0 | 1 |',
      sections: ['## 20 idle per AZ, per burst', '## 50 idle per AZ, per burst'],
    });
  });
});
