import { describe, expect, it } from 'vitest';
import { runAbuse } from '../../sandbox/scenarios/abuse.js';

describe('the abuse scenario', () => {
  it('refuses every hostile attempt of every kind, and ground truth finds nothing harmed', async () => {
    const r = await runAbuse({ seed: 18 });

    expect(r.harms).toEqual([]);
    expect(r.harmed).toBe(0);
    expect(r.attempts).toBeGreaterThanOrEqual(25);
    expect(r.log.filter((e) => !e.refused)).toEqual([]);
    for (const [kind, counts] of Object.entries(r.byKind)) expect(counts.attempts, kind).toBeGreaterThan(0);
  }, 600_000);
});
