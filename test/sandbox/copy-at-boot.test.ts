import { beforeAll, describe, expect, it } from 'vitest';
import { copyLimits, copyRate, copySeconds } from '../../sandbox/copy-at-boot.js';
import { type CopyAtBootResult, runCopyAtBoot } from '../../sandbox/scenarios/copy-at-boot.js';

describe('copy at boot: the copy model', () => {
  const limits = copyLimits('m7g.large');

  it('copies at the slowest limit of each moment: the gp3 volume first, the instance baselines after the bursts', () => {
    // Prepare
    const slowestAt = (t: number) =>
      Math.min(...limits.map((l) => (t < l.burstSeconds ? l.burst : l.baseline)));

    // Act
    const early = copyRate(limits, 0);
    const late = copyRate(limits, 10 * 3600);

    // Assess
    expect(early).toBe(slowestAt(0));
    expect(early).toBe(125 * 2 ** 20);
    expect(late).toBe(slowestAt(10 * 3600));
    expect(late).toBeLessThan(early);
  });

  it('takes bytes over the gp3 rate while every burst lasts', () => {
    // Prepare
    const bytes = 10 * 2 ** 30;

    // Act
    const seconds = copySeconds(bytes, limits);

    // Assess
    expect(seconds).toBeCloseTo(bytes / (125 * 2 ** 20), 6);
  });

  it('adds each byte past the last burst at the slowest baseline', () => {
    // Prepare
    const baseline = Math.min(...limits.map((l) => l.baseline));
    const extra = 100e9;

    // Act
    const added = copySeconds(1e12 + extra, limits) - copySeconds(1e12, limits);

    // Assess
    expect(added).toBeCloseTo(extra / baseline, 3);
  });

  it('refuses an instance type it has no bandwidth data for', () => {
    expect(() => copyLimits('x9.huge')).toThrow(/no EBS\/network bandwidth data for x9.huge/);
  });
});

describe('copy at boot in the sandbox', () => {
  let result: CopyAtBootResult;

  beforeAll(async () => {
    result = await runCopyAtBoot({ instances: 2, contentGiB: 2, seed: 5, timeScale: 0.01 });
  }, 300_000);

  it('puts every launch in service with the bucket content on its own new volume', () => {
    expect(result.errors).toEqual([]);
    expect(result.instancesReady).toBe(2);
    expect(result.staleAtReady).toBe(0);
  });

  it('gives each instance an empty volume, never one made from a snapshot', () => {
    expect(result.volumesNotEmptyBorn).toBe(0);
  });

  it('goes InService only after the modelled copy of the whole content', () => {
    for (const launch of result.launches) {
      expect(launch.copySeconds).not.toBeNull();
      expect(launch.readySeconds).toBeGreaterThanOrEqual(launch.copySeconds ?? Infinity);
    }
  });
});
