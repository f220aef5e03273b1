/**
 * Two identical simulated hosts, one driven by the real scripts (scriptRunner: bash + shims + AWS CLI)
 * and one by the modelled runner, and the comparison of what each run printed and left on disk.
 * Hosts are built as the simulator builds them (sandbox/sim/devices.ts `materializeDevices`).
 */
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import {
  type DocumentName,
  parseRejectedKeys,
  parseResults,
  type RejectedKey,
  type ScriptResult,
} from '../../lambdas/shared/documents.js';
import { type ModelRunnerOptions, modelRunner } from '../../sandbox/agent/model-runner.js';
import { findTool, scriptRunner } from '../../sandbox/agent/runner.js';
import { type HostDevice, materializeDevices, nvmeSerial } from '../../sandbox/sim/devices.js';
import type { RunnerResult } from '../../sandbox/sim/ssm.js';

export const instanceId = 'i-0123456789abcdef0';

/** A fixed mtime for fixture files, so both trees carry the same one. */
const fixtureTime = 1_700_000_000;

/** What the script needs that may be missing here; undefined when everything is installed. */
export function missingTools(sync = false): string | undefined {
  const tools = ['bash', 'sh', 'flock', 'awk', 'find', 'realpath', 'setsid', 'mktemp'];
  for (const tool of tools) if (!findTool(tool)) return tool;
  if (sync && !findTool('/usr/bin/aws') && !findTool('aws')) return 'aws';
  return undefined;
}

/** One sandbox root with one host. */
export class Side {
  readonly rootDir: string;
  readonly hostRoot: string;
  readonly devices: HostDevice[] = [];

  constructor(readonly kind: 'script' | 'model') {
    this.rootDir = mkdtempSync(join(tmpdir(), `volsd-model-${kind}-`));
    this.hostRoot = join(this.rootDir, 'hosts', instanceId);
    mkdirSync(join(this.hostRoot, 'proc'), { recursive: true });
    writeFileSync(join(this.hostRoot, 'proc', 'mounts'), '');
    materializeDevices(this.hostRoot, []);
  }

  volumeDir(volumeId: string): string {
    return join(this.rootDir, 'volumes', volumeId);
  }
}

/** A normalised run: exit code, VOLSD_RESULT objects, VOLSD_REJECTED keys. */
export interface Outcome {
  exitCode: number;
  results: ScriptResult[];
  rejected: RejectedKey[];
  raw: RunnerResult;
}

/** The two hosts, prepared and run in lockstep. */
export class Pair {
  readonly script = new Side('script');
  readonly model = new Side('model');

  constructor(private readonly options: ModelRunnerOptions = {}) {}

  private both(fn: (side: Side) => void): void {
    fn(this.script);
    fn(this.model);
  }

  /** Creates a volume's data dir; `formatted` writes the shims' filesystem marker. */
  createVolume(
    volumeId: string,
    options: { formatted?: boolean; files?: Record<string, string> } = {},
  ): void {
    this.both((side) => {
      const dir = side.volumeDir(volumeId);
      mkdirSync(dir, { recursive: true });
      if (options.formatted) writeFileSync(join(dir, '.volsd-fs'), 'TYPE=xfs\nLABEL=volsd\n');
      for (const [name, body] of Object.entries(options.files ?? {})) {
        mkdirSync(dirname(join(dir, name)), { recursive: true });
        writeFileSync(join(dir, name), body);
        utimesSync(join(dir, name), fixtureTime, fixtureTime);
      }
    });
  }

  /** Attaches a volume as /dev/nvme<n>n1, as the simulator materialises it. */
  attach(volumeId: string, n: number): void {
    this.both((side) => {
      side.devices.push({
        device: `/dev/nvme${n}n1`,
        serial: nvmeSerial(volumeId),
        volumeId,
        attachDevice: `/dev/sd${String.fromCharCode(101 + n)}`,
        dataDir: side.volumeDir(volumeId),
      });
      materializeDevices(side.hostRoot, side.devices);
    });
  }

  /** Detaches a volume (its device files go, a mount of it stays in the table). */
  detach(volumeId: string): void {
    this.both((side) => {
      const i = side.devices.findIndex((d) => d.volumeId === volumeId);
      if (i >= 0) side.devices.splice(i, 1);
      materializeDevices(side.hostRoot, side.devices);
    });
  }

  /** Any preparation, applied to both sides (`root` is the side's sandbox root). */
  prepare(fn: (side: Side) => void): void {
    this.both(fn);
  }

  /** Makes the shim of `command` fail (the model reads the same file). */
  injectFault(command: string): void {
    this.both((side) => {
      const dir = join(side.hostRoot, 'run', 'volsd-shim', 'fail');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, command), '');
    });
  }

  clearFault(command: string): void {
    this.both((side) => rmSync(join(side.hostRoot, 'run', 'volsd-shim', 'fail', command), { force: true }));
  }

  /** A symlink at `path` inside a volume to `target` (absolute targets are taken inside the sandbox root). */
  symlinkInVolume(volumeId: string, path: string, target: string): void {
    this.both((side) => {
      const link = join(side.volumeDir(volumeId), path);
      mkdirSync(dirname(link), { recursive: true });
      symlinkSync(target, link);
    });
  }

  private async runOn(side: Side, doc: DocumentName, params: Record<string, string>): Promise<Outcome> {
    const parameters = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, [v]]));
    const ctx = {
      instanceId,
      hostRoot: side.hostRoot,
      rootDir: side.rootDir,
      parameters,
      devices: side.devices.map(({ dataDir: _dataDir, ...view }) => view),
      commandId: 'cmd-1',
      documentName: doc,
      signal: new AbortController().signal,
    };
    const raw =
      side.kind === 'script'
        ? await scriptRunner(doc, { timeoutMs: 45_000, s3Endpoint: this.options.s3Endpoint })(ctx)
        : await modelRunner(doc, this.options)(ctx);
    const stdout = raw.stdout.replaceAll(side.rootDir, '<root>');
    return {
      exitCode: raw.exitCode,
      results: parseResults(stdout),
      rejected: parseRejectedKeys(stdout),
      raw,
    };
  }

  /** Runs the document on both hosts (the script first). */
  async run(doc: DocumentName, params: Record<string, string>): Promise<{ script: Outcome; model: Outcome }> {
    const script = await this.runOn(this.script, doc, params);
    const model = await this.runOn(this.model, doc, params);
    return { script, model };
  }

  /** Both trees, normalised (see {@link tree}). */
  trees(): { script: Record<string, string>; model: Record<string, string> } {
    return { script: tree(this.script.rootDir), model: tree(this.model.rootDir) };
  }

  cleanup(): void {
    this.both((side) => rmSync(side.rootDir, { recursive: true, force: true }));
  }
}

/**
 * Every path under `rootDir` with its kind and, for a symlink, its target (the root's own path
 * replaced by `<root>`), for a file its content (same replacement; the random filesystem UUID and the
 * watchdog pid blanked) and, for content files of a volume, its mtime in whole seconds.
 */
export function tree(rootDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const rel = relative(rootDir, path);
      const st = lstatSync(path);
      if (st.isSymbolicLink()) out[rel] = `link ${readlinkSync(path).replaceAll(rootDir, '<root>')}`;
      else if (st.isDirectory()) {
        out[rel] = 'dir';
        visit(path);
      } else {
        let content = readFileSync(path, 'utf8')
          .replaceAll(rootDir, '<root>')
          .replace(/^UUID=.*$/m, 'UUID=<uuid>');
        if (/^hosts\/[^/]+\/run\/volsd\/frozen\//.test(rel))
          content = content.replace(/\n\d+\n$/, '\n<pid>\n');
        const synced = rel.startsWith('volumes/') && !/^volumes\/[^/]+\/\.volsd/.test(rel);
        out[rel] = `file ${JSON.stringify(content)}${synced ? ` @${Math.floor(st.mtimeMs / 1000)}` : ''}`;
      }
    }
  };
  visit(rootDir);
  return out;
}
