/**
 * `npm run sandbox -- --scenario growth`, small: content pushed past the volumes' size. Every figure
 * comes from ground truth (the simulator's volumes, modifications and invocations, the volumes' data
 * directories), see `sandbox/scenarios/growth.ts`.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { type GrowthScenarioResult, runGrowthScenario } from '../../sandbox/scenarios/growth.js';

let result: GrowthScenarioResult;

describe('the growth scenario', () => {
  beforeAll(async () => {
    result = await runGrowthScenario({
      seed: 3,
      timeScale: 0.05,
      agent: 'model',
      instances: 2,
      idlePerAz: 2,
    });
  }, 600_000);

  it('ends with every pool volume at the new size, a larger one than configured', () => {
    // Assess
    expect(result.volumesTotal).toBeGreaterThanOrEqual(5);
    expect(result.newSizeGiB).toBeGreaterThan(4);
    expect(result.volumesAtNewSize).toBe(result.volumesTotal);
  });

  it('resized the volumes that existed (idle and in use) online; the new one was created at the new size', () => {
    // Assess: 2 idle + 2 in use before the growth; the scale-out's volume needed no resize.
    expect(result.resizes).toBe(4);
  });

  it('refuses the push that does not fit as a whole, and half-applies none', () => {
    // Assess
    expect(result.refusedPushes).toBe(1);
    expect(result.partialPushes).toBe(0);
    expect(result.pushes).toBe(3);
  });

  it('never lets a sync fail, and ends with every volume holding the whole tree', () => {
    // Assess
    expect(result.syncFailures).toBe(0);
    expect(result.contentCurrent).toBe(true);
  });
});
