import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tailOf } from '../../bench/cost.js';
import { type BenchJson, committedCostMarkdown, costMarkdown } from '../../bench/cost-page.js';

const docs = join(import.meta.dirname, '..', '..', 'docs');
const bench = JSON.parse(readFileSync(join(docs, 'bench.json'), 'utf8')) as BenchJson;

describe('docs/cost.md', () => {
  it('is the generator output for the committed bench and scale JSON (npm run bench:cost)', () => {
    expect(readFileSync(join(docs, 'cost.md'), 'utf8')).toBe(committedCostMarkdown());
  });

  it('follows the counts: twice the acquire transitions, a higher acquire total', () => {
    const doubled: BenchJson = {
      ...bench,
      acquire: {
        ...bench.acquire,
        perOperation: {
          ...bench.acquire.perOperation,
          stateTransitions: bench.acquire.perOperation.stateTransitions * 2,
        },
      },
    };
    const total = (page: string) => Number(/about \$([0-9.]+) per 1,000 acquires/.exec(page)?.[1]);

    expect(total(costMarkdown(doubled))).toBeGreaterThan(total(costMarkdown(bench)));
  });

  it('calls the figures sandbox-modelled, never measured', () => {
    const page = committedCostMarkdown();
    expect(page).toContain('sandbox-modelled');
    expect(page).not.toMatch(/\bmeasured\b(?! on AWS)/);
  });
});

describe('tailOf', () => {
  it('is the maximum, named max, below 100 samples and the p99 from 100 on', () => {
    const p = { p99: 9, max: 12 };
    expect([tailOf(p, 10), tailOf(p, 99), tailOf(p, 100)]).toEqual([
      { label: 'max', value: 12 },
      { label: 'max', value: 12 },
      { label: 'p99', value: 9 },
    ]);
  });
});
