/**
 * The sandbox's way of running Volsd's SSM documents on a simulated host: the real script (library
 * inlined, as in the document) under bash, with the document's parameters as environment variables,
 * `VOLSD_ROOT` set to the host's directory and the shims of `sandbox/shims/` first on PATH, so the
 * commands that need a block device act on the simulated one. The simulator's agent calls one runner
 * per document for each command invocation.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  allDocuments,
  DocumentName,
  documentContent,
  getDocument,
  readScript,
  resolveParameters,
  toEnv,
  type VolsdDocument,
} from '../../lambdas/shared/documents.js';

/** An attached volume as the simulator describes it to the runner. */
export interface HostDevice {
  /** The NVMe device (/dev/nvme1n1). */
  device: string;
  /** Its NVMe serial (the volume id without the dash). */
  serial: string;
  volumeId: string;
  /** The device name given to AttachVolume (/dev/sdf). */
  attachDevice: string;
}

/** What the simulator's agent hands a runner for one command invocation. */
export interface RunnerContext {
  instanceId: string;
  /** The host's "/". */
  hostRoot: string;
  /** The sandbox's root (volumes live in `${rootDir}/volumes/<volumeId>`). */
  rootDir: string;
  /** SendCommand's Parameters. */
  parameters: Record<string, string[]>;
  devices: HostDevice[];
  /** Aborted by the simulator (execution timeout, instance gone): the script is killed then. */
  signal?: AbortSignal;
}

/** The outcome of one invocation. */
export interface RunnerResult {
  /** The script's exit code; 124 when the runner's timeout (or the simulator's abort) killed it. */
  exitCode: number;
  stdout: string;
  stderr: string;
  /** True when the timeout killed the script (SSM: Execution Timed Out). */
  timedOut?: boolean;
}

/** Runs one document on one simulated host. */
export type ScriptRunner = (ctx: RunnerContext) => Promise<RunnerResult>;

/** Options of {@link scriptRunner}. */
export interface ScriptRunnerOptions {
  /**
   * The S3 endpoint (the sandbox's s3rver) given to documents with an `S3Endpoint` parameter when the
   * command does not set one.
   */
  s3Endpoint?: string;
  /**
   * AWS settings for the script's AWS CLI.
   * @default fake credentials S3RVER/S3RVER, region us-east-1, no config files, no instance metadata
   */
  awsEnv?: Record<string, string>;
  /**
   * Kills the script (its whole process group) after this long.
   * @default the document's timeoutSeconds
   */
  timeoutMs?: number;
  /**
   * `env` runs the script with the parameters as environment variables; `document` runs the SSM
   * document's own runCommand under /bin/sh, with the parameters substituted as the SSM agent does
   * (tests the document wrapper too).
   * @default 'env'
   */
  via?: 'env' | 'document';
  /**
   * The AWS CLI to put on PATH.
   * @default /usr/bin/aws (Debian's awscli, v2) if present, else the first `aws` on PATH
   */
  awsCli?: string;
  /** The repository the scripts are read from. @default this checkout */
  repoRoot?: string;
  /** Extra environment variables for the script. */
  extraEnv?: Record<string, string>;
}

/** A command the sandbox needs is not installed. */
export class ToolMissing extends Error {
  override name = 'ToolMissing';
}

/** The directory of the shims the runner puts first on PATH. */
export const shimsDir = fileURLToPath(new URL('../shims/', import.meta.url)).replace(/\/$/, '');

/** The Debian package that provides each command the scripts, the shims or the tests run. */
export const debianPackages: Readonly<Record<string, string>> = {
  aws: 'awscli',
  bash: 'bash',
  sh: 'dash',
  shellcheck: 'shellcheck',
  flock: 'util-linux',
  setsid: 'util-linux',
  awk: 'mawk',
  find: 'findutils',
  realpath: 'coreutils',
  mktemp: 'coreutils',
};

/** The absolute path of `name` on PATH (or `name` itself when it is an executable path), if any. */
export function findTool(name: string, path = process.env.PATH ?? ''): string | undefined {
  const candidates = name.includes('/') ? [name] : path.split(delimiter).map((dir) => join(dir || '.', name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Like {@link findTool}, but throws ToolMissing naming the Debian package to install. */
export function requireTool(name: string, why: string): string {
  const found = findTool(name);
  if (found) return found;
  const command = name.replace(/^.*\//, '');
  const pkg = debianPackages[command] ?? command;
  throw new ToolMissing(
    `${name} is needed ${why} but was not found on PATH: install it with apt-get install ${pkg}`,
  );
}

/** The AWS CLI v2 the sandbox uses: Debian's /usr/bin/aws when present (a plain `aws` may be a v1 shim). */
export function resolveAwsCli(preferred?: string): string {
  if (preferred) return requireTool(preferred, 'to run Volsd-Sync');
  if (existsSync('/usr/bin/aws')) return '/usr/bin/aws';
  return requireTool('aws', 'to run Volsd-Sync (the AWS CLI)');
}

/** The fake AWS settings used when `awsEnv` is not given: never real credentials. */
export const defaultAwsEnv: Readonly<Record<string, string>> = {
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_DEFAULT_REGION: 'us-east-1',
  AWS_REGION: 'us-east-1',
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_PAGER: '',
};

/**
 * Renders a document's runCommand as the SSM agent does: `{{ Name }}` replaced by the parameter's
 * value (defaults filled in, values validated first), lines joined.
 */
export function renderRunCommand(
  doc: VolsdDocument,
  scriptText: string,
  parameters: Record<string, string[]>,
) {
  const values = resolveParameters(doc, parameters);
  const content = documentContent(doc, scriptText);
  const lines = content.mainSteps.flatMap((step) => step.inputs.runCommand);
  return lines.join('\n').replace(/\{\{ ([A-Za-z0-9]+) \}\}/g, (_, name: string) => values[name] ?? '');
}

const maxOutput = 4 * 1024 * 1024;

/**
 * The command's parameters, with `s3Endpoint` (the sandbox's s3rver) as S3Endpoint for a document that
 * has the parameter when the command leaves it empty. Used by both runners.
 */
export function withDefaultEndpoint(
  doc: VolsdDocument,
  given: Record<string, string[]>,
  s3Endpoint: string | undefined,
): Record<string, string[]> {
  const parameters = { ...given };
  if (s3Endpoint && doc.parameters.some((p) => p.name === 'S3Endpoint') && !parameters.S3Endpoint?.[0]) {
    parameters.S3Endpoint = [s3Endpoint];
  }
  return parameters;
}

/** Returns the runner for one document (by value or by name). */
export function scriptRunner(
  docOrName: VolsdDocument | DocumentName,
  options: ScriptRunnerOptions = {},
): ScriptRunner {
  const doc = typeof docOrName === 'string' ? getDocument(docOrName) : docOrName;
  const scriptText = readScript(doc, options.repoRoot);
  // Volsd-Sync runs the CLI; Volsd-Mount checks that it is v2 (the instance requirements).
  const usesAws = doc.parameters.some((p) => p.name === 'Bucket') || doc.name === DocumentName.Mount;
  let tools: { bash: string; sh: string; awsDir?: string } | undefined;

  return async (ctx) => {
    tools ??= {
      bash: requireTool('bash', 'to run the Volsd scripts'),
      sh: requireTool('sh', 'to run SSM documents'),
      awsDir: usesAws ? dirname(resolveAwsCli(options.awsCli)) : undefined,
    };
    for (const tool of ['flock', 'awk', 'find', 'realpath', 'setsid'])
      requireTool(tool, 'by the Volsd scripts');

    const parameters = withDefaultEndpoint(doc, ctx.parameters, options.s3Endpoint);
    const path = [shimsDir, tools.awsDir, process.env.PATH].filter(Boolean).join(delimiter);
    const env: Record<string, string> = {
      PATH: path,
      HOME: process.env.HOME ?? tmpdir(),
      TMPDIR: process.env.TMPDIR ?? tmpdir(),
      LANG: 'C.UTF-8',
      ...(options.awsEnv ?? defaultAwsEnv),
      ...options.extraEnv,
      VOLSD_ROOT: ctx.hostRoot,
    };
    let command: string;
    let args: string[];
    if (options.via === 'document') {
      command = tools.sh;
      args = ['-c', renderRunCommand(doc, scriptText, parameters), doc.name];
    } else {
      Object.assign(env, toEnv(doc, parameters));
      command = tools.bash;
      args = ['-c', scriptText, doc.name];
    }
    return run(command, args, env, ctx.hostRoot, options.timeoutMs ?? doc.timeoutSeconds * 1000, ctx.signal);
  };
}

/** Something that runs documents by name: the simulator's SSM (`cloud.ssm`). */
export interface DocumentHost {
  registerDocument(name: string, runner: ScriptRunner): void;
}

/** Registers a runner for every Volsd document (Volsd-Mount, -Unmount, -Format, -Sync, -Freeze). */
export function registerVolsdDocuments(host: DocumentHost, options: ScriptRunnerOptions = {}): void {
  for (const doc of allDocuments) host.registerDocument(doc.name, scriptRunner(doc, options));
}

function run(
  command: string,
  args: string[],
  env: Record<string, string>,
  cwd: string,
  timeoutMs: number,
  signal?: AbortSignal,
) {
  return new Promise<RunnerResult>((resolve, reject) => {
    // Its own process group, so a timeout kills the script and everything it started (but not the
    // freeze watchdog, which leaves the group on purpose).
    const child = spawn(command, args, { env, cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      if (stdout.length < maxOutput) stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < maxOutput) stderr += chunk;
    });
    const kill = () => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(kill, timeoutMs);
    if (signal?.aborted) kill();
    signal?.addEventListener('abort', kill, { once: true });
    const settle = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', kill);
    };
    child.on('error', (err) => {
      settle();
      reject(err);
    });
    child.on('close', (code, killedBy) => {
      settle();
      if (timedOut) {
        resolve({
          exitCode: 124,
          stdout,
          stderr: `${stderr}volsd runner: timed out after ${timeoutMs} ms\n`,
          timedOut,
        });
      } else {
        resolve({ exitCode: code ?? (killedBy ? 128 : 1), stdout, stderr });
      }
    });
  });
}
