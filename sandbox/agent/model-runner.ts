/**
 * A fast, modelled stand-in for the sandbox's script runner (`scriptRunner` in runner.ts): the five
 * Volsd documents as in-process TypeScript twins of scripts/volsd-*.sh + sandbox/shims/, with the
 * same effects on the same files of the host tree, the same VOLSD_RESULT / VOLSD_REJECTED lines and
 * the same exit codes, but no child process (no bash, no shims, no AWS CLI: Volsd-Sync reads S3 with
 * the AWS SDK v3; the one exception is a `flock` holder on a host where the boot unit runs). Each run
 * reports a modelled duration (`modelledSeconds`, see {@link ModelCosts}) that the simulator's SSM keeps
 * the invocation InProgress for on its modelled clock.
 *
 * Differences from the scripts, all invisible to the Lambdas: runs of one volume on one host are serialised
 * by an in-process mutex instead of flock, with no lock timeout (exit 11), except on a host where a real
 * script (the boot unit) runs, where the twins take its flock too (see scriptRunsOn); no tool check (exit 12),
 * the scripts' sleeps (device wait, busy unmount) and the freeze watchdog run on the clock given in
 * the options (real time by default), the watchdog is a timer of this process, not a detached
 * `volsd-autothaw` (its pid line in /run/volsd/frozen/<volume> is this process's), the text of a
 * failed download differs from the AWS CLI's, and stderr's log lines are close to, not exactly, the
 * scripts'.
 */
import { spawn } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { mkdirSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import {
  allDocuments,
  type DocumentName,
  getDocument,
  toEnv,
  type VolsdDocument,
} from '../../lambdas/shared/documents.js';
import type { DocumentRunner, RunnerContext, RunnerResult } from '../sim/ssm.js';
import { Exit, Host, Output, ScriptExit, type Sleep } from './model/host.js';
import { formatOp, freezeOp, mountOp, type SetTimer, unmountOp } from './model/ops.js';
import { type SyncStats, syncOp } from './model/sync.js';
import { defaultAwsEnv, withDefaultEndpoint } from './runner.js';

/**
 * Modelled seconds per step of a document run. The defaults are assumptions for a Nitro instance
 * with gp3 EBS volumes in the bucket's region, not measurements:
 * - a run's fixed cost (SSM agent hands the script to bash, the library's checks, a few lsblk/awk
 *   processes): 0.2 s;
 * - mount of an XFS volume (log check, nouuid) 1 s; mkfs.xfs of an empty volume 2 s (discard of the
 *   blocks EBS has not yet allocated is quick); unmount 1 s per mount (flush + umount); freeze or
 *   thaw 0.2 s;
 * - Volsd-Sync: 0.6 s for the listing (one AWS CLI v2 start, ~0.6 s measured on the sandbox machine,
 *   plus one request per 1,000 keys at 0.05 s); per volume 0.6 s (the `aws s3 sync` start and its
 *   walk of the tree), 0.005 s per downloaded object (a ~50 ms GET with the CLI's 10 requests in
 *   flight), 0.001 s per deleted file, and the bytes at 100 MB/s (an instance's single-stream S3
 *   download rate and below gp3's 125 MB/s baseline); volumes run `Concurrency` at a time.
 * The scripts' sleeps (the device wait's 0.2 s polls, the busy unmount's 0.5 s retries) happen on
 * the runner's clock ({@link ModelRunnerOptions.sleep}) and add to the modelled duration.
 */
export interface ModelCosts {
  scriptSeconds: number;
  mountSeconds: number;
  formatSeconds: number;
  unmountSeconds: number;
  freezeSeconds: number;
  listingSeconds: number;
  listingPageSeconds: number;
  syncVolumeSeconds: number;
  syncObjectSeconds: number;
  syncDeleteSeconds: number;
  syncBytesPerSecond: number;
}

/** The default {@link ModelCosts}. */
export const defaultModelCosts: Readonly<ModelCosts> = {
  scriptSeconds: 0.2,
  mountSeconds: 1,
  formatSeconds: 2,
  unmountSeconds: 1,
  freezeSeconds: 0.2,
  listingSeconds: 0.6,
  listingPageSeconds: 0.05,
  syncVolumeSeconds: 0.6,
  syncObjectSeconds: 0.005,
  syncDeleteSeconds: 0.001,
  syncBytesPerSecond: 100e6,
};

/** Options of {@link modelRunner}. */
export interface ModelRunnerOptions {
  /** The S3 endpoint (the sandbox's s3rver) Volsd-Sync reads from when the command sets no S3Endpoint. */
  s3Endpoint?: string;
  /** Modelled seconds per operation; see {@link ModelCosts} for the defaults and their assumptions. */
  costs?: Partial<ModelCosts>;
  /**
   * Starts the freeze watchdog's timer (it thaws after MaxFreezeSeconds unless a thaw comes first).
   * @default a real-time, unref'd setTimeout
   */
  setTimer?: SetTimer;
  /**
   * The scripts' `sleep` (device wait polls, busy unmount retries): pass the simulator's modelled
   * clock (`(s) => cloud.clock.sleep(s)`) so a wait takes modelled, not wall, time.
   * @default real time
   */
  sleep?: Sleep;
  /** Credentials for the S3 client. @default S3RVER/S3RVER, as runner.ts's defaultAwsEnv */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

const realTimer: SetTimer = (seconds, fire) => {
  const timer = setTimeout(fire, seconds * 1000);
  timer.unref();
  return () => clearTimeout(timer);
};

/** Serialises runs per key (host root + volume), as volsd_lock's flock does for the scripts. */
const lockTails = new Map<string, Promise<unknown>>();

/**
 * Hosts where a real script runs beside the twins: the boot unit (scripts/volsd-boot.sh), from its start
 * to its exit, by host root. The twins' mutex is in-process and the scripts' lock is flock(1) on
 * <root>/run/volsd/lock/<volume>, so on such a host a twin's run also takes that flock (a `flock` child
 * holds it for the run), and the unit's flock and the twin's exclude each other as the scripts' do.
 * Without it a twin's Volsd-Unmount could run in the middle of the unit's own sync, whose markers then
 * land on the host's disk under the emptied mount point: an interleaving AWS never shows. On every other
 * host nothing but the twins runs, and no child is started.
 */
const unitHosts = new Map<string, number>();
/** Runs holding (or queued for) a twin's lock, by host root: a unit's start waits for them first. */
const runsOnHost = new Map<string, Set<Promise<unknown>>>();

/**
 * Marks the host rooted at `hostRoot` as running a real script that takes the Volsd locks (see
 * {@link unitHosts}): resolves once the twins' runs already holding or queued for a lock of that host
 * ended (they took no flock), and gives the function that ends the mark.
 */
export async function scriptRunsOn(hostRoot: string): Promise<() => void> {
  unitHosts.set(hostRoot, (unitHosts.get(hostRoot) ?? 0) + 1);
  await Promise.allSettled([...(runsOnHost.get(hostRoot) ?? [])]);
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    const left = (unitHosts.get(hostRoot) ?? 1) - 1;
    if (left > 0) unitHosts.set(hostRoot, left);
    else unitHosts.delete(hostRoot);
  };
}

/** True while a real script runs on the host rooted at `hostRoot` (see {@link scriptRunsOn}). */
export function scriptRunning(hostRoot: string): boolean {
  return unitHosts.has(hostRoot);
}

/** Runs `fn` holding the twin's lock on `volume` of the host rooted at `hostRoot` (as a test holds flock). */
export function withVolumeLock<T>(hostRoot: string, volume: string, fn: () => Promise<T>): Promise<T> {
  return withLock(hostRoot, volume, 120, fn);
}

/** Raised when a twin's run could not take a script's flock in the script's wait. */
export class LockTimeout extends Error {
  constructor(
    readonly volume: string,
    readonly waitSeconds: number,
  ) {
    super(`another Volsd operation on ${volume} held its lock for ${waitSeconds}s`);
  }
}

async function withLock<T>(
  hostRoot: string,
  volume: string,
  waitSeconds: number,
  fn: () => Promise<T>,
): Promise<T> {
  const run = lockedRun(`${hostRoot}\0${volume}`, async () => {
    if (!unitHosts.has(hostRoot)) return fn();
    const release = await takeFlock(hostRoot, volume, waitSeconds);
    try {
      return await fn();
    } finally {
      await release();
    }
  });
  const runs = runsOnHost.get(hostRoot) ?? new Set<Promise<unknown>>();
  runsOnHost.set(hostRoot, runs);
  runs.add(run);
  try {
    return await run;
  } finally {
    runs.delete(run);
    if (runs.size === 0 && runsOnHost.get(hostRoot) === runs) runsOnHost.delete(hostRoot);
  }
}

/**
 * volsd_lock's flock, held by a `flock` child until the returned release: `flock -w WAIT FILE` runs a
 * shell that says it holds the lock, then waits for its stdin to close.
 */
async function takeFlock(
  hostRoot: string,
  volume: string,
  waitSeconds: number,
): Promise<() => Promise<void>> {
  const dir = join(hostRoot, 'run', 'volsd', 'lock');
  mkdirSync(dir, { recursive: true });
  const child = spawn(
    'flock',
    ['-w', String(waitSeconds), join(dir, volume), 'sh', '-c', 'echo locked; exec cat >/dev/null'],
    { stdio: ['pipe', 'pipe', 'ignore'] },
  );
  const exited = new Promise<void>((ok) => {
    child.on('close', () => ok());
    child.on('error', () => ok());
  });
  const locked = await new Promise<boolean>((ok) => {
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      if (c.includes('locked')) ok(true);
    });
    void exited.then(() => ok(false));
  });
  if (!locked) throw new LockTimeout(volume, waitSeconds);
  return async () => {
    child.stdin.end();
    await exited;
  };
}

async function lockedRun<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const before = lockTails.get(key) ?? Promise.resolve();
  let release = () => {};
  const mine = new Promise<void>((resolve) => {
    release = resolve;
  });
  const tail = before.then(() => mine);
  lockTails.set(key, tail);
  await before;
  try {
    return await fn();
  } finally {
    release();
    if (lockTails.get(key) === tail) lockTails.delete(key);
  }
}

class Aborted extends Error {}

/**
 * A signal that follows `signal` and may carry many listeners: every S3 request in flight (the
 * CLI's 10 downloads, per volume) listens to it, past Node's warning threshold of 10.
 */
function fanOutSignal(signal: AbortSignal | undefined): AbortSignal {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  if (signal?.aborted) controller.abort();
  else signal?.addEventListener('abort', () => controller.abort(), { once: true });
  return controller.signal;
}

/** A sleep that ends early, with Aborted, when the run's signal fires. */
function abortableSleep(sleep: Sleep | undefined, signal: AbortSignal | undefined): Sleep {
  return (seconds) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(new Aborted());
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        if (timer) clearTimeout(timer);
        reject(new Aborted());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      if (sleep) sleep(seconds).then(done, reject);
      else timer = setTimeout(done, seconds * 1000);
    });
}

/** Returns the modelled runner of one document (by value or by name). */
export function modelRunner(
  docOrName: VolsdDocument | DocumentName,
  options: ModelRunnerOptions = {},
): DocumentRunner {
  const doc = typeof docOrName === 'string' ? getDocument(docOrName) : docOrName;
  const costs: ModelCosts = { ...defaultModelCosts, ...options.costs };
  const setTimer = options.setTimer ?? realTimer;
  const clients = new Map<string, S3Client>();
  const s3 = (endpoint: string, region: string): S3Client => {
    const key = `${endpoint}|${region}`;
    let client = clients.get(key);
    if (!client) {
      client = new S3Client({
        ...(endpoint ? { endpoint } : {}),
        region: region || defaultAwsEnv.AWS_REGION || 'us-east-1',
        forcePathStyle: true,
        // One client serves every host of the sandbox: a burst of syncs queues for sockets, as
        // expected, and is no reason for the SDK's warning.
        requestHandler: {
          httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 64 }),
          httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 64 }),
          socketAcquisitionWarningTimeout: 600_000,
        },
        credentials: options.credentials ?? {
          accessKeyId: defaultAwsEnv.AWS_ACCESS_KEY_ID ?? 'S3RVER',
          secretAccessKey: defaultAwsEnv.AWS_SECRET_ACCESS_KEY ?? 'S3RVER',
        },
      });
      clients.set(key, client);
    }
    return client;
  };

  return async (ctx: RunnerContext): Promise<RunnerResult> => {
    const parameters = withDefaultEndpoint(doc, ctx.parameters, options.s3Endpoint);
    // As scriptRunner: parameters that fail the document's validation reject the run.
    const env = toEnv(doc, parameters);
    const op = doc.script.replace(/^.*volsd-/, '').replace(/\.sh$/, '');
    const out = new Output(op, abortableSleep(options.sleep, ctx.signal));
    if (ctx.signal?.aborted) return { exitCode: 143, stdout: '', stderr: 'aborted before it started\n' };
    const host = new Host(ctx.hostRoot.replace(/\/+$/, ''));
    let seconds = costs.scriptSeconds;
    let exitCode = 0;
    try {
      if (!host.validRoot()) {
        out.fail(
          Exit.BadParameters,
          'bad-parameters',
          'VOLSD_ROOT must be an existing directory with a plain path',
        );
      }
      const volume = env.VOLSD_VOLUME_ID ?? '';
      const locked = async <T>(fn: () => T | Promise<T>, waitSeconds = 120): Promise<T> => {
        try {
          return await withLock(host.root, volume, waitSeconds, async () => fn());
        } catch (error) {
          if (error instanceof LockTimeout) out.fail(Exit.LockTimeout, 'lock-timeout', error.message);
          throw error;
        }
      };
      switch (op) {
        case 'mount':
          if ((await locked(() => mountOp(host, env, out))) === 'mounted') seconds += costs.mountSeconds;
          break;
        case 'format': {
          const { formatted, state } = await locked(() => formatOp(host, env, out));
          if (formatted) seconds += costs.formatSeconds;
          if (state === 'mounted') seconds += costs.mountSeconds;
          break;
        }
        case 'unmount':
          seconds += costs.unmountSeconds * (await locked(() => unmountOp(host, env, out)));
          break;
        case 'freeze':
          await locked(() => freezeOp(host, env, out, setTimer), 60);
          seconds += costs.freezeSeconds;
          break;
        case 'sync': {
          const done = await syncOp(host, env, out, {
            s3,
            signal: fanOutSignal(ctx.signal),
            withLock: (v, fn) => withLock(host.root, v, 600, fn),
          });
          exitCode = done.exitCode;
          seconds += syncSeconds(done.stats, costs, Number.parseInt(env.VOLSD_SYNC_CONCURRENCY || '4', 10));
          break;
        }
        default:
          throw new Error(`no model for ${doc.name}`);
      }
      if (ctx.signal?.aborted) throw new Aborted();
    } catch (error) {
      if (error instanceof ScriptExit) exitCode = error.exitCode;
      else if (ctx.signal?.aborted || error instanceof Aborted) {
        return { exitCode: 143, stdout: out.stdout, stderr: `${out.stderr}volsd model runner: aborted\n` };
      } else {
        // What `set -e` and the ERR trap make of an unexpected failure.
        out.log(`unexpected failure (exit 1): ${error instanceof Error ? error.message : String(error)}`);
        exitCode = 1;
      }
    }
    return { exitCode, stdout: out.stdout, stderr: out.stderr, modelledSeconds: seconds + out.waited };
  };
}

/** The modelled duration of a sync: the listing, then the volumes `concurrency` at a time. */
function syncSeconds(stats: SyncStats, costs: ModelCosts, concurrency: number): number {
  if (!stats.listed) return 0;
  const slots = new Array<number>(Math.max(1, concurrency)).fill(0);
  for (const v of stats.volumes) {
    const cost =
      costs.syncVolumeSeconds +
      v.downloads * costs.syncObjectSeconds +
      v.deletes * costs.syncDeleteSeconds +
      v.bytes / costs.syncBytesPerSecond;
    const i = slots.indexOf(Math.min(...slots));
    slots[i] = (slots[i] ?? 0) + cost;
  }
  return costs.listingSeconds + stats.pages * costs.listingPageSeconds + Math.max(...slots);
}

/** Registers the modelled runner for every Volsd document (Volsd-Mount, -Unmount, -Format, -Sync, -Freeze). */
export function registerModelledDocuments(
  host: { registerDocument(name: string, runner: DocumentRunner): void },
  options: ModelRunnerOptions = {},
): void {
  for (const doc of allDocuments) host.registerDocument(doc.name, modelRunner(doc, options));
}
