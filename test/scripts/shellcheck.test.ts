import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { allDocuments, readScript } from '../../lambdas/shared/documents.js';
import { findTool, shimsDir } from '../../sandbox/agent/runner.js';

const repo = join(import.meta.dirname, '../..');
const shellcheck = findTool('shellcheck');
const files = [
  ...readdirSync(join(repo, 'scripts'))
    .filter((f) => f.endsWith('.sh'))
    .map((f) => `scripts/${f}`),
  ...readdirSync(shimsDir)
    .filter((f) => !f.endsWith('.md'))
    .map((f) => `sandbox/shims/${f}`),
];

interface Finding {
  file: string;
  line: number;
  code: number;
  level: string;
  message: string;
}

/** Runs shellcheck once over `args`, returning its findings (json1 format). */
async function check(args: string[], input?: string): Promise<Finding[]> {
  const run = promisify(execFile);
  const child = run(shellcheck ?? 'shellcheck', ['-f', 'json1', ...args], { cwd: repo, maxBuffer: 16 << 20 });
  if (input !== undefined) child.child.stdin?.end(input);
  const { stdout } = await child.catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
  return (JSON.parse(stdout || '{"comments":[]}') as { comments: Finding[] }).comments;
}

if (!shellcheck)
  console.warn('shellcheck is not installed (apt-get install shellcheck): the shell lint is skipped');

describe.runIf(Boolean(shellcheck))('shellcheck', () => {
  let findings: Finding[];
  let bundles: Finding[][];

  beforeAll(async () => {
    [findings, bundles] = await Promise.all([
      check(['-x', ...files]),
      // SC2034 and SC2317 aside: each script uses only some of the library's constants and functions.
      Promise.all(
        allDocuments.map((doc) => check(['-s', 'bash', '-e', 'SC2034,SC2317', '-'], readScript(doc))),
      ),
    ]);
  });

  it('finds the scripts and the shims', () => {
    // Assess
    expect(files).toEqual(expect.arrayContaining(['scripts/volsd-sync.sh', 'sandbox/shims/mount']));
  });

  it.each(files)('%s is clean', (file) => {
    // Assess
    expect(findings.filter((f) => f.file === file)).toEqual([]);
  });

  it.each(allDocuments.map((d, i) => [d.name, i] as const))('the bundled script of %s is clean', (_, i) => {
    // Assess
    expect(bundles[i]).toEqual([]);
  });
});
