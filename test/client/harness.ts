import { spawn } from 'node:child_process';
import { buildClient, defaultBundlePath } from '../../client/build.js';
import { VolumeState } from '../../lambdas/shared/model.js';
import { poolTag, Role, roleTag } from '../../lambdas/shared/tags.js';
import { type Gateway, startGateway } from '../../sandbox/gateway/gateway.js';
import { publishConfig } from '../../sandbox/gateway/publish-config.js';
import { Sandbox, type SandboxOptions } from '../../sandbox/runtime.js';
import { type NodeRun, runNode } from '../helpers/run-node.js';

/** What one run of the built client produced. */
export type ClientRun = NodeRun;

/** Builds dist/volsd-client.mjs (atomically: test files may build at the same time). */
export function buildBundle(): Promise<string> {
  return buildClient(defaultBundlePath);
}

/**
 * Runs `node dist/volsd-client.mjs ...args` as a separate process with exactly `env` (plus PATH), and
 * collects its output. Asynchronous, so the sandbox in this process keeps serving while it runs.
 */
export function runClient(args: readonly string[], env: Record<string, string>): Promise<ClientRun> {
  return runNode(defaultBundlePath, args, { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env });
}

/**
 * Runs the built client under a pseudo-terminal (util-linux `script`), as a person at a terminal
 * would: stdout and stderr are both the terminal, so they arrive merged, with CRLF line ends.
 */
export function runInTerminal(args: readonly string[], env: Record<string, string>): Promise<ClientRun> {
  const quote = (word: string) => `'${word.replace(/'/g, "'\\''")}'`;
  const command = [process.execPath, defaultBundlePath, ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SHELL: '/bin/sh', TERM: 'xterm', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A sandbox with its gateway and its configuration published: what a client test runs against. */
export interface ClientWorld {
  sandbox: Sandbox;
  gateway: Gateway;
  /**
   * Environment of a client process that talks to the sandbox with the operator's keys, seeing `imds` as
   * its metadata service.
   */
  env(imds?: string, extra?: Record<string, string>): Record<string, string>;
  /** Environment of a client process on a host: no keys, so it signs with the host's own credentials. */
  hostEnv(imds: string, extra?: Record<string, string>): Record<string, string>;
  /** Launches a host outside any group, tagged for the pool, and waits until its SSM agent answers. */
  launchHost(az?: string): Promise<string>;
  /**
   * Replenishes every AZ up to its target of idle volumes. A round that fails leaves SYNCING volumes
   * that the next round adopts, so it tries up to three rounds (on a loaded machine a sync can outlast
   * the replenish workflow's wait, which is counted in modelled time).
   */
  fillPool(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a sandbox, a gateway in front of it, and publishes the pool's configuration. */
export async function startWorld(options: SandboxOptions = {}): Promise<ClientWorld> {
  const sandbox = await Sandbox.start(options);
  try {
    const gateway = await startGateway(sandbox);
    await publishConfig(sandbox, { values: { hostApiUrl: gateway.hostApiUrl } });
    return {
      sandbox,
      gateway,
      env: (imds, extra) => ({ ...gateway.clientEnv(imds), ...extra }),
      hostEnv: (imds, extra) => {
        // No keys: the SDK takes the host's own instance-profile credentials from its metadata service.
        const { AWS_ACCESS_KEY_ID: _key, AWS_SECRET_ACCESS_KEY: _secret, ...rest } = gateway.clientEnv(imds);
        return { ...rest, ...extra };
      },
      async launchHost(az = sandbox.options.azs[0] ?? 'us-east-1a') {
        const id = sandbox.cloud.launchInstance({
          az,
          tags: { [poolTag]: sandbox.options.pool, [roleTag]: Role.Client },
        });
        await sandbox.cloud.waitFor(
          () => sandbox.cloud.ec2.view().instances.some((i) => i.instanceId === id && i.agentOnline),
          600,
          `host ${id} online`,
        );
        return id;
      },
      async fillPool() {
        const { repo, options } = sandbox;
        for (let round = 1; ; round++) {
          await sandbox.replenishAll();
          const idle = await repo.listVolumes({ pool: options.pool, state: VolumeState.Idle });
          const short = options.azs.filter(
            (az) => idle.filter((v) => v.az === az).length < options.idlePerAz,
          );
          if (short.length === 0) return;
          if (round === 3)
            throw new Error(`the pool did not fill in ${short.join(', ')} after ${round} rounds`);
        }
      },
      async stop() {
        await gateway.stop();
        // Stopping while workflows run lets an in-flight Lambda write to a closed dynalite, which throws
        // an uncaught "Database is closed": let the runs that tests left behind finish first.
        await sandbox.settle().catch(() => undefined);
        await sandbox.stop();
      },
    };
  } catch (err) {
    await sandbox.stop();
    throw err;
  }
}

/** Parses a client's JSON stdout (fails the test with the output when it is not JSON). */
export function parseJson<T = unknown>(run: ClientRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${run.code}):\n${run.stdout}\nstderr:\n${run.stderr}`);
  }
}
