import { describe, expect, it } from 'vitest';
import { runBurst } from '../../sandbox/scenarios/burst.js';
import { runChaos } from '../../sandbox/scenarios/chaos.js';
import { runScale } from '../../sandbox/scenarios/scale.js';

// Each scenario starts and stops its own sandbox; one at a time in this process.
describe('scenarios', () => {
  it('serves a burst larger than the pool in two AZs: all ready, nothing shared or leaked, pool back at target', async () => {
    const r = await runBurst({ instances: 8, idlePerAz: 2, azs: 2, seed: 5, timeScale: 0.05 });
    expect(r.instancesLaunched).toBe(8);
    expect(r.instancesReady).toBe(8);
    expect(r.instancesFailed).toBe(0);
    expect(r.servedFromPool + r.directCreates).toBe(8);
    expect(r.doubleAssignments).toBe(0);
    expect(r.leakedVolumes).toBe(0);
    expect(r.poolAtTargetAfter).toBe(true);
    expect(r.invariants.violations).toEqual([]);
    expect(r.perAcquire.awsCalls).toBeGreaterThan(0);
  }, 900_000);

  it('keeps every invariant through 500 random operations under injected faults', async () => {
    // The documents run as the scripts' in-process twins (held to the scripts by the conformance tests).
    const r = await runChaos({ operations: 500, seed: 7, timeScale: 0.01, azs: 2 });
    expect(Object.values(r.operations).reduce((a, b) => a + b, 0)).toBe(500);
    expect(r.operations.replaceWorker).toBe(1);
    for (const fault of ['throttle', 'ssmFailure', 'lambdaCrash']) {
      expect(r.faultsInjected[fault], fault).toBeGreaterThan(0);
    }
    expect(r.duplicateEvents).toBeGreaterThan(0);
    expect(r.clientsRetired).toBeGreaterThan(0);
    expect(r.instancesReady).toBeGreaterThan(0);
    expect(r.invariants.violations).toEqual([]);
    // The closing reconcile and each AZ's replenish ran to their end. Whether the pool is then exactly at
    // target (poolAtTargetAfter) is reported, not asserted: it depends on timing, and failed once in a CI
    // run under load while every invariant held.
    expect(r.endOfRun.reconcile?.status).toBe('SUCCEEDED');
    expect(r.endOfRun.replenish.map((x) => `${x.az} ${x.status}`)).toEqual([
      'us-east-1a SUCCEEDED',
      'us-east-1b SUCCEEDED',
    ]);
  }, 1_800_000);

  it('issues the same operations for the same seed, and others for another seed', async () => {
    const a = await runChaos({ operations: 12, seed: 11, timeScale: 0.01, azs: 2 });
    const b = await runChaos({ operations: 12, seed: 11, timeScale: 0.01, azs: 2 });
    const c = await runChaos({ operations: 12, seed: 12, timeScale: 0.01, azs: 2 });
    expect(a.sequence).toHaveLength(12);
    expect(b.sequence).toBe(a.sequence);
    expect(c.sequence).not.toBe(a.sequence);
    expect([a, b, c].map((r) => r.invariants.violations)).toEqual([[], [], []]);
  }, 900_000);

  it('takes bursts larger than the pool in three AZs, with a push after each: all ready and current', async () => {
    const r = await runScale({ instances: 30, burst: 15, azs: 3, idlePerAz: 2, seed: 3, timeScale: 0.05 });
    expect(r.instancesLaunched).toBe(30);
    expect(r.instancesReady).toBe(30);
    expect(r.bursts).toHaveLength(2);
    // 15 launches on 6 idle volumes: the rest are created from the snapshot for their instance.
    expect(r.bursts[0]?.directCreates).toBeGreaterThan(0);
    expect(r.directCreates).toBe(r.bursts.reduce((a, b) => a + b.directCreates, 0));
    expect(r.servedFromPool + r.directCreates).toBe(30);
    for (const burst of r.bursts) {
      expect(burst.ready).toBe(15);
      expect(burst.poolRecoverySeconds).not.toBeNull();
      expect(burst.pushConvergenceSeconds).not.toBeNull();
    }
    // The second push reached the 30 instances and the idle volumes.
    expect(r.bursts[1]?.volumesSyncedByPush).toBeGreaterThanOrEqual(30 + 3 * 2);
    expect(r.perPush.lambdaInvocations).toBeGreaterThan(0);
    expect(r.invariants.violations).toEqual([]);
  }, 900_000);
});
