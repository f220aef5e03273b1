import { describe, expect, it } from 'vitest';
import { runChaos } from '../../sandbox/scenarios/chaos.js';

// Its own file, so it runs beside the other scenarios rather than after them.
describe('chaos on the boot-unit path', () => {
  it('keeps every invariant on the boot-unit path, its events delivered twice and run again after crashes', async () => {
    // The served group runs the boot unit: the events function detaches and attaches in the acquire's one
    // Task, the unit mounts and signals; its events come twice (20%) and run again after a crash (2%).
    const r = await runChaos({ operations: 300, seed: 8, timeScale: 0.01, azs: 2, bootUnit: true });
    expect(r.bootUnit).toBe(true);
    expect(r.bootUnitSignals).toBeGreaterThan(0);
    for (const fault of ['throttle', 'lambdaCrash', 'eventDuplicate', 'eventCrash']) {
      expect(r.faultsInjected[fault], fault).toBeGreaterThan(0);
    }
    expect(r.instancesReady).toBeGreaterThan(0);
    expect(r.invariants.violations).toEqual([]);
    expect(r.endOfRun.reconcile?.status).toBe('SUCCEEDED');
  }, 1_800_000);
});
