import { describe, expect, it } from 'vitest';
import { runBurst } from '../../sandbox/scenarios/burst.js';
import { runChaos } from '../../sandbox/scenarios/chaos.js';

// Each scenario starts and stops its own sandbox; one at a time in this process.
describe('scenarios', () => {
  it('serves a burst larger than the pool in two AZs: all ready, nothing shared or leaked, pool back at target', async () => {
    const r = await runBurst({ instances: 8, idlePerAz: 2, azs: 2, seed: 5, timeScale: 0.05 });
    expect(r.instancesLaunched).toBe(8);
    expect(r.instancesReady).toBe(8);
    expect(r.instancesFailed).toBe(0);
    expect(r.doubleAssignments).toBe(0);
    expect(r.leakedVolumes).toBe(0);
    expect(r.poolAtTargetAfter).toBe(true);
    expect(r.invariants.violations).toEqual([]);
    expect(r.perAcquire.awsCalls).toBeGreaterThan(0);
  }, 900_000);

  it('keeps every invariant through random operations under injected faults', async () => {
    const r = await runChaos({ operations: 20, seed: 7, timeScale: 0.05, azs: 2 });
    const injected = Object.values(r.faultsInjected).reduce((a, b) => a + b, 0);
    expect(injected).toBeGreaterThan(0);
    expect(r.operations.replaceWorker).toBe(1);
    expect(r.invariants.checked.length).toBeGreaterThanOrEqual(8);
    expect(r.invariants.violations).toEqual([]);
  }, 900_000);
});
