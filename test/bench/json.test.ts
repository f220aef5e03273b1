import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { writeJson } from '../../bench/json.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('writeJson', () => {
  it("writes a report's JSON in the layout Biome's check (npm test's lint) accepts, values unchanged", () => {
    // Prepare: inside the repository (Biome's root), where docs/*.json live; short arrays are what
    // JSON.stringify lays out one item per line and Biome puts on one.
    const dir = mkdtempSync(join(repo, 'test', 'bench', '.json-'));
    dirs.push(dir);
    const file = join(dir, 'report.json');
    const value = { commit: 'abc1234', states: ['Init', 'Plan', 'Done'], runs: [{ seed: 1, p50: 0.5 }] };
    // Act
    writeJson(file, value);
    // Assess
    const check = spawnSync(join(repo, 'node_modules', '.bin', 'biome'), ['format', file], {
      cwd: repo,
      encoding: 'utf8',
    });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(value);
  });
});
