import { describe, expect, it } from 'vitest';
import {
  type AdaptiveSettings,
  atRestDollarsPerMonth,
  chooseTarget,
  gp3VolumeDollarsPerMonth,
  percentileOf,
} from '../../lambdas/shared/adaptive-sizing.js';

// docs/cost.md: a 20 GiB gp3 volume $1.60 a month; a t4g.small worker with its 16 GiB root $13.54.
const prices = {
  volumeDollarsPerMonth: gp3VolumeDollarsPerMonth(20),
  workerDollarsPerMonth: 13.54,
  perWorker: 26,
};
const settings: AdaptiveSettings = {
  min: 2,
  max: 200,
  budgetDollarsPerMonth: 1000,
  lookbackDays: 7,
  windowHours: 2,
  percentile: 95,
  prices,
};
const at = '2026-12-03T12:00:00.000Z';

describe('adaptive target', () => {
  it('prices volumes and workers as docs/cost.md: 30 per AZ in 2 AZs is 60 volumes and 4 workers', () => {
    expect(gp3VolumeDollarsPerMonth(20)).toBeCloseTo(1.6);
    expect(gp3VolumeDollarsPerMonth(100, 4000, 250)).toBeCloseTo(8 + 5 + 5);
    expect(atRestDollarsPerMonth(30, 2, prices)).toBeCloseTo(60 * 1.6 + 4 * 13.54);
  });

  it('takes the nearest-rank 95th percentile of the daily demands', () => {
    expect(percentileOf([3, 1, 2], 95)).toBe(3);
    expect(
      percentileOf(
        Array.from({ length: 20 }, (_, i) => i + 1),
        95,
      ),
    ).toBe(19);
    expect(percentileOf([], 95)).toBe(0);
  });

  it('follows the demand between the bounds', () => {
    expect(chooseTarget([40, 38, 41], 2, settings, at)).toMatchObject({ target: 41, demand: 41 });
    expect(chooseTarget([0, 0, 0], 2, settings, at)).toMatchObject({ target: 2, boundedBy: 'min' });
    expect(chooseTarget([500], 2, settings, at)).toMatchObject({ target: 200, boundedBy: 'max' });
  });

  it('never goes above the budget, and says so', () => {
    const decision = chooseTarget([100], 2, { ...settings, budgetDollarsPerMonth: 200 }, at);
    expect(decision.boundedBy).toBe('budget');
    expect(decision.atRestDollarsPerMonth).toBeLessThanOrEqual(200);
    // One volume more would break the budget.
    expect(atRestDollarsPerMonth(decision.target + 1, 2, prices)).toBeGreaterThan(200);
  });
});
