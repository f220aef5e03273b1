import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import packageJson from '../../package.json' with { type: 'json' };
import { type NodeRun, runNode } from '../helpers/run-node.js';

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const binPath = packageJson.bin['volsd-client'];

/** Runs the package's bin the way npm's link to it does: `node <bin> ...args`, from the repository. */
function runBin(args: readonly string[]): Promise<NodeRun> {
  // No AWS here: help and usage errors never reach it.
  return runNode(
    resolve(repoRoot, binPath),
    args,
    { PATH: process.env.PATH ?? '/usr/bin:/bin', AWS_EC2_METADATA_DISABLED: 'true' },
    repoRoot,
  );
}

// `npm ci && npx volsd-client --help` on a fresh clone: npm links the bin only if its file exists then,
// so it must be a committed file that works without a build step.
describe('the volsd-client bin of package.json', () => {
  it('is a file a fresh clone has: git does not ignore it', () => {
    // `git check-ignore` exits 0 for an ignored path and 1 for one that is not (dist/ is ignored).
    const check = spawnSync('git', ['check-ignore', '--no-index', '-q', binPath], { cwd: repoRoot });

    expect(check.error).toBeUndefined();
    expect(check.status).toBe(1);
  });

  it('prints the usage and exits 0 with --help', async () => {
    const run = await runBin(['--help']);

    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Usage: volsd-client COMMAND [options] [global options]');
  });

  it("passes the client's exit code through: a usage error exits 2", async () => {
    const run = await runBin(['--bogus']);

    expect(run.code).toBe(2);
    expect(run.stderr).toContain("unknown option '--bogus'");
  });
});
