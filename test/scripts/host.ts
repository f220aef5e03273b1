/**
 * A simulated host for the script tests, built as the simulator builds one: volumes are data dirs
 * under `${rootDir}/volumes/`, the host's "/" is `${rootDir}/hosts/<instance>`, an attached volume is
 * a `/dev/nvme<N>n1` file naming its data dir plus its by-id symlink, and `/proc/mounts` is the mount
 * table.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import {
  type DocumentName,
  documents,
  parseResults,
  readScript,
  type ScriptResult,
} from '../../lambdas/shared/documents.js';
import {
  type RunnerResult,
  resolveAwsCli,
  type ScriptRunnerOptions,
  scriptRunner,
  shimsDir,
} from '../../sandbox/agent/runner.js';

export const instanceId = 'i-0123456789abcdef0';

/** A temp sandbox with one host. */
export interface TestHost {
  rootDir: string;
  hostRoot: string;
  /** Creates a volume's data dir; `formatted` writes the filesystem marker the shims look for. */
  createVolume(
    volumeId: string,
    options?: { formatted?: boolean; files?: Record<string, string> },
  ): Promise<string>;
  /** Attaches a volume as /dev/nvme<n>n1 (with its by-id link unless `byId` is false). */
  attach(volumeId: string, n: number, options?: { byId?: boolean }): Promise<string>;
  volumeDir(volumeId: string): string;
  /** Makes the shim of `command` fail as the real command would (sandbox/shims/shim-lib.sh). */
  injectFault(command: string): Promise<void>;
  /**
   * Holds the volume's Volsd lock (flock on <root>/run/volsd/lock/<volume>, as the scripts take it) from
   * another process until `release`; the holder is killed at cleanup if still there.
   */
  holdLock(volumeId: string): Promise<{ release: () => void }>;
  /** The host's mount table, one entry per line. */
  mounts(): string[];
  /** Runs a document through the sandbox runner with string parameters. */
  run(doc: DocumentName, params: Record<string, string>, options?: ScriptRunnerOptions): Promise<RunOutcome>;
  cleanup(): Promise<void>;
}

/** A runner result with its parsed last VOLSD_RESULT. */
export interface RunOutcome extends RunnerResult {
  results: ScriptResult[];
  /** The last VOLSD_RESULT (a script's verdict). */
  result: Record<string, unknown>;
}

export const serialOf = (volumeId: string) => volumeId.replace('-', '');

export async function createHost(): Promise<TestHost> {
  const rootDir = await mkdtemp(join(tmpdir(), 'volsd-scripts-'));
  const hostRoot = join(rootDir, 'hosts', instanceId);
  await mkdir(join(hostRoot, 'dev', 'disk', 'by-id'), { recursive: true });
  await mkdir(join(hostRoot, 'proc'), { recursive: true });
  await writeFile(join(hostRoot, 'proc', 'mounts'), '');
  const volumeDir = (volumeId: string) => join(rootDir, 'volumes', volumeId);
  const devices: { device: string; serial: string; volumeId: string; attachDevice: string }[] = [];
  const holders: ChildProcess[] = [];

  return {
    rootDir,
    hostRoot,
    volumeDir,
    async createVolume(volumeId, options = {}) {
      const dir = volumeDir(volumeId);
      await mkdir(dir, { recursive: true });
      if (options.formatted) await writeFile(join(dir, '.volsd-fs'), 'TYPE=xfs\nLABEL=volsd\n');
      for (const [name, body] of Object.entries(options.files ?? {})) {
        await mkdir(join(dir, name, '..'), { recursive: true });
        await writeFile(join(dir, name), body);
      }
      return dir;
    },
    async attach(volumeId, n, options = {}) {
      const device = `/dev/nvme${n}n1`;
      await writeFile(join(hostRoot, device), `${volumeDir(volumeId)}\n`);
      if (options.byId !== false) {
        const link = join(
          hostRoot,
          'dev',
          'disk',
          'by-id',
          `nvme-Amazon_Elastic_Block_Store_${serialOf(volumeId)}`,
        );
        if (existsSync(link)) await unlink(link);
        await symlink(`../../nvme${n}n1`, link);
      }
      devices.push({
        device,
        serial: serialOf(volumeId),
        volumeId,
        attachDevice: `/dev/sd${String.fromCharCode(101 + n)}`,
      });
      return device;
    },
    async injectFault(command) {
      const dir = join(hostRoot, 'run', 'volsd-shim', 'fail');
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, command), '');
    },
    mounts() {
      return readFileSync(join(hostRoot, 'proc', 'mounts'), 'utf8')
        .split('\n')
        .filter(Boolean);
    },
    async run(doc, params, options = {}) {
      const runner = scriptRunner(doc, { timeoutMs: 45_000, ...options });
      const parameters = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, [v]]));
      const out = await runner({ instanceId, hostRoot, rootDir, parameters, devices });
      return withResults(out);
    },
    async holdLock(volumeId) {
      const dir = join(hostRoot, 'run', 'volsd', 'lock');
      await mkdir(dir, { recursive: true });
      const held = join(rootDir, `lock-held.${holders.length}`);
      const release = join(rootDir, `lock-release.${holders.length}`);
      holders.push(
        spawn('flock', [
          join(dir, volumeId),
          'sh',
          '-c',
          `touch '${held}'; while [ ! -e '${release}' ]; do sleep 0.05; done`,
        ]),
      );
      if (!(await eventually(() => existsSync(held)))) throw new Error('the test could not take the lock');
      return { release: () => writeFileSync(release, '') };
    },
    async cleanup() {
      for (const holder of holders) holder.kill();
      await rm(rootDir, { recursive: true, force: true });
    },
  };
}

export function withResults(out: RunnerResult): RunOutcome {
  const results = parseResults(out.stdout);
  return { ...out, results, result: (results.at(-1) ?? {}) as Record<string, unknown> };
}

/**
 * Runs a document's bundled script with a raw environment, bypassing the document's parameter
 * validation: the scripts' own checks are the second gate.
 */
export function runRaw(
  doc: DocumentName,
  hostRoot: string,
  env: Record<string, string>,
): Promise<RunOutcome> {
  const script = readScript(documents[doc]);
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script, doc], {
      // As scriptRunner: the shims, then the AWS CLI v2 (Volsd-Mount checks it), then the PATH.
      env: {
        PATH: [shimsDir, dirname(resolveAwsCli()), process.env.PATH ?? ''].join(':'),
        VOLSD_ROOT: hostRoot,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve(withResults({ exitCode: code ?? 1, stdout, stderr })));
  });
}

/** Every path under `dir` (relative, symlinks not followed), sorted. */
export function walk(dir: string): string[] {
  const out: string[] = [];
  const visit = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      out.push(relative(dir, path));
      if (lstatSync(path).isDirectory()) visit(path);
    }
  };
  visit(dir);
  return out.sort();
}

/** Every path under `dir` with its type, size and modification time, to compare before and after. */
export function snapshot(dir: string): Map<string, string> {
  return new Map(
    walk(dir).map((p) => {
      const st = lstatSync(join(dir, p));
      const kind = st.isSymbolicLink() ? 'link' : st.isDirectory() ? 'dir' : 'file';
      return [p, kind === 'dir' ? 'dir' : `${kind}:${st.size}:${st.mtimeMs}`];
    }),
  );
}

export async function readText(path: string): Promise<string> {
  return readFile(path, 'utf8');
}

/** Polls `check` until it is true or `timeoutMs` passes; returns its last answer. */
export async function eventually(check: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}
