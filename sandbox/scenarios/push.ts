/**
 * The push scenario and the ground truth it (and the push tests) read: what is really on the volumes
 * and in the host trees, never what the table says.
 *
 * `runPushScenario` starts a sandbox with the push pipeline, fills the pool, scales the web group out,
 * then pushes with the real AWS CLI: one file (`aws s3 cp`), a batch holding keys that try to escape
 * the tree, and a push while instances launch. It returns the `push` fields of the scenario JSON.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { lstat, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { VolumeState } from '../../lambdas/shared/model.js';
import { validateKey } from '../../lambdas/shared/push-keys.js';
import type { PushRecord } from '../../lambdas/shared/push-records.js';
import { putObjectVerbatim } from '../agent/s3-fidelity.js';
import { type PushPipeline, wirePushPipeline } from '../push-wiring.js';
import { webMountPath } from '../readiness.js';
import { Sandbox, type SandboxOptions } from '../runtime.js';
import { localCredentials, localRegion } from '../servers.js';
import { ScenarioRecorder, type ScenarioResult } from './report.js';

const run = promisify(execFile);

export { webMountPath };
/** Where a sync worker mounts its idle volumes, one folder per volume id. */
export const workerMountRoot = 'var/lib/volsd/pool';

/** The AWS CLI's environment against the sandbox: fake credentials, no config files, no IMDS. */
export const awsCliEnv: Readonly<Record<string, string>> = {
  AWS_ACCESS_KEY_ID: localCredentials.accessKeyId,
  AWS_SECRET_ACCESS_KEY: localCredentials.secretAccessKey,
  AWS_DEFAULT_REGION: localRegion,
  AWS_REGION: localRegion,
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_PAGER: '',
};

/**
 * Runs the real AWS CLI (`/usr/bin/aws`, Debian's v2) against the sandbox's S3:
 * `aws --endpoint-url <s3> <args...>`. Asynchronous on purpose: s3rver answers in this process.
 */
export async function awsCli(sandbox: Sandbox, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('/usr/bin/aws', ['--endpoint-url', sandbox.s3.endpoint, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir(), ...awsCliEnv },
    maxBuffer: 16 * 1024 * 1024,
  });
}

/** An SDK S3 client on the sandbox's s3rver. */
export function sandboxS3(sandbox: Sandbox): S3Client {
  return new S3Client({
    endpoint: sandbox.s3.endpoint,
    forcePathStyle: true,
    region: localRegion,
    credentials: localCredentials,
    maxAttempts: 3,
  });
}

// Paths a host tree may hold besides its mount points: Volsd's records and locks, the shims' state
// and simulated devices (and their sizes), the mount table, the sync's scratch directories.
const systemPaths = [
  /^etc\/volsd\//,
  /^proc\/mounts$/,
  /^dev\//,
  // Block device sizes the simulator writes (/sys/block/<dev>/size).
  /^sys\/block\//,
  /^run\/volsd\//,
  /^run\/volsd-shim\//,
  /^tmp\/volsd-sync\.[^/]+\//,
  /^tmp\/volsd-sync\.[^/]+$/,
];
const mountPoints = [new RegExp(`^${webMountPath}$`), new RegExp(`^${workerMountRoot}/vol-[0-9a-f]+$`)];

async function walk(dir: string, visit: (path: string, isDir: boolean) => void): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return;
  }
  for (const name of entries) {
    const path = join(dir, name);
    const st = await lstat(path).catch(() => undefined);
    if (!st) continue;
    visit(path, st.isDirectory());
    if (st.isDirectory()) await walk(path, visit);
  }
}

/**
 * Every file or link in the sandbox tree that is outside any mount root and not a known system path:
 * under `hosts/<id>/` only the mount points (links to the volume data) and the paths Volsd's scripts
 * and the shims write; under `volumes/` only volume directories; under `snapshots/` only snapshot
 * directories; nothing else at the top. Empty when nothing escaped.
 */
export async function findWritesOutsideRoots(sandbox: Sandbox): Promise<string[]> {
  const root = sandbox.rootDir;
  const found: string[] = [];
  for (const name of await readdir(root)) {
    if (!['hosts', 'volumes', 'snapshots'].includes(name)) found.push(name);
  }
  for (const host of await readdir(join(root, 'hosts')).catch(() => [] as string[])) {
    const hostRoot = join(root, 'hosts', host);
    await walk(hostRoot, (path, isDir) => {
      if (isDir) return;
      const rel = relative(hostRoot, path);
      if (mountPoints.some((m) => m.test(rel)) || systemPaths.some((p) => p.test(rel))) return;
      found.push(relative(root, path));
    });
  }
  for (const [dir, pattern] of [
    ['volumes', /^vol-[0-9a-f]+$/],
    ['snapshots', /^snap-[0-9a-f]+$/],
  ] as const) {
    for (const name of await readdir(join(root, dir)).catch(() => [] as string[])) {
      const st = await lstat(join(root, dir, name));
      if (!st.isDirectory() || !pattern.test(name)) found.push(join(dir, name));
    }
  }
  return found.sort();
}

/** Files anywhere in the sandbox tree (links not followed) whose content contains `needle`. */
export async function findContent(sandbox: Sandbox, needle: string): Promise<string[]> {
  const found: string[] = [];
  const files: string[] = [];
  await walk(sandbox.rootDir, (path, isDir) => {
    if (!isDir) files.push(path);
  });
  for (const path of files) {
    const st = await lstat(path);
    if (!st.isFile() || st.size > 1024 * 1024) continue;
    const text = await readFile(path, 'utf8').catch(() => '');
    if (text.includes(needle)) found.push(relative(sandbox.rootDir, path));
  }
  return found;
}

/** A volume that should hold the current tree (IDLE on a worker, IN_USE on an instance), as found on disk. */
export interface VolumeTruth {
  volumeId: string;
  state: VolumeState;
  holder?: string;
  /** The generation in the volume's `.volsd/generation` marker (0 without one). */
  marker: number;
  /** Files of the volume's tree (outside `.volsd*`), relative path -> size. */
  files: Map<string, number>;
}

/** The volume's generation marker, read from its data directory (0 when it has none). */
export function readMarker(dataDir: string): number {
  try {
    const n = Number(readFileSync(join(dataDir, '.volsd', 'generation'), 'utf8').trim());
    return Number.isFinite(n) ? n : 0;
  } catch {
    return 0;
  }
}

async function filesOf(dataDir: string): Promise<Map<string, number>> {
  const files = new Map<string, number>();
  await walk(dataDir, (path, isDir) => {
    const rel = relative(dataDir, path);
    if (isDir || rel.split('/')[0]?.startsWith('.volsd')) return;
    files.set(rel, 0);
  });
  for (const rel of files.keys()) files.set(rel, (await lstat(join(dataDir, rel))).size);
  return files;
}

/** Every IDLE and IN_USE volume of the pool with its marker and files, read from its data directory. */
export async function volumeTruth(sandbox: Sandbox): Promise<VolumeTruth[]> {
  const volumes = await sandbox.repo.listVolumes({ pool: sandbox.options.pool });
  const out: VolumeTruth[] = [];
  for (const v of volumes) {
    if (v.state !== VolumeState.Idle && v.state !== VolumeState.InUse) continue;
    const dataDir = sandbox.cloud.volumeDataDir(v.volumeId);
    out.push({
      volumeId: v.volumeId,
      state: v.state,
      ...(v.holder ? { holder: v.holder } : {}),
      marker: readMarker(dataDir),
      files: await filesOf(dataDir),
    });
  }
  return out;
}

/**
 * The content tree as the bucket holds it: key below the prefix -> size, for the keys a volume
 * should hold (refused keys and directory markers are never synced).
 */
export async function bucketTree(sandbox: Sandbox, prefix = 'live/'): Promise<Map<string, number>> {
  const s3 = sandboxS3(sandbox);
  const tree = new Map<string, number>();
  let token: string | undefined;
  try {
    do {
      const page = await s3.send(
        new ListObjectsV2Command({ Bucket: sandbox.wiring.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) {
        const verdict = validateKey(o.Key ?? '', { prefix, encoded: false });
        if (verdict.kind === 'valid') tree.set(verdict.path, o.Size ?? 0);
      }
      token = page.NextContinuationToken;
    } while (token);
  } finally {
    s3.destroy();
  }
  return tree;
}

/** True when `volume` holds exactly `tree` (same paths, same sizes). */
export function holdsTree(volume: VolumeTruth, tree: Map<string, number>): boolean {
  if (volume.files.size !== tree.size) return false;
  for (const [path, size] of tree) if (volume.files.get(path) !== size) return false;
  return true;
}

/** When an instance entered service and what its volume held at that moment. */
export interface Readiness {
  instanceId: string;
  /** Modelled second the launch lifecycle action completed. */
  at: number;
  result?: string;
  /** The mounted volume's generation marker at that moment. */
  marker: number;
  /** The pool's generation read right then. */
  poolGeneration: Promise<number>;
}

/** Watches the web group's launches; `readiness` fills in as instances enter service. */
export interface LaunchWatch {
  readonly readiness: Map<string, Readiness>;
  stop(): void;
}

/**
 * Records, for every instance whose launch lifecycle action completes from now on, the generation
 * marker of the volume mounted at its web mount path at that very moment (the check runs on the
 * simulator's state change, synchronously) and the pool's generation.
 */
export function watchLaunches(sandbox: Sandbox): LaunchWatch {
  const readiness = new Map<string, Readiness>();
  const already = new Set(
    sandbox.cloud
      .lifecycleActions()
      .filter((a) => a.completedAt !== undefined)
      .map((a) => a.token),
  );
  let stopped = false;
  const check = () => {
    for (const a of sandbox.cloud.lifecycleActions()) {
      if (a.groupName !== sandbox.wiring.groupName || a.transition !== 'autoscaling:EC2_INSTANCE_LAUNCHING')
        continue;
      if (a.completedAt === undefined || already.has(a.token)) continue;
      already.add(a.token);
      readiness.set(a.instanceId, {
        instanceId: a.instanceId,
        at: a.completedAt,
        ...(a.result ? { result: a.result } : {}),
        marker: readMarker(join(sandbox.cloud.hostRoot(a.instanceId), webMountPath)),
        poolGeneration: sandbox.repo.getPool(sandbox.options.pool).then((p) => p.generation),
      });
    }
    return stopped;
  };
  sandbox.cloud.waitFor(check, 365 * 24 * 3600, 'launch watch').catch(() => undefined);
  return {
    readiness,
    stop() {
      stopped = true;
    },
  };
}

/**
 * Instances that entered service behind the content: their volume's marker was below the pool's
 * generation when they became ready, and the push of every newer generation did not reach them
 * either. (A push that bumps the generation while an instance is completing its launch reaches it
 * by its tag: that instance was mounted and online when the command went out.)
 */
export async function staleAtReady(readiness: Iterable<Readiness>, pushes: PushRecord[]): Promise<string[]> {
  const stale: string[] = [];
  for (const r of readiness) {
    if (r.result !== undefined && r.result !== 'CONTINUE') continue;
    const generation = await r.poolGeneration;
    if (r.marker >= generation) continue;
    const newer = pushes.filter((p) => p.generation > r.marker && p.generation <= generation && p.commandId);
    const covered =
      newer.length > 0 &&
      newer.every((p) => p.instances[r.instanceId]?.status === 'Success') &&
      newer.some((p) => p.generation === generation);
    if (!covered) stale.push(r.instanceId);
  }
  return stale;
}

/**
 * Uploads keys the fan-out must refuse, together with `valid` keys, as one burst: `live/../<name>`
 * and a key with a control character through S3's API (s3rver stores them verbatim once made
 * faithful), and `live//<absolute>` stored verbatim and announced as S3 would (s3rver's router
 * cannot address an empty segment). Each carries `payload`, so a test can look for it anywhere.
 */
export async function uploadHostileBatch(
  sandbox: Sandbox,
  o: { token: string; payload: string; valid: Record<string, string> },
): Promise<{ parent: string; control: string; absolute: string; realAbsolutePath: string }> {
  const bucket = sandbox.wiring.bucket;
  const parent = `live/../escape-${o.token}.txt`;
  const control = `live/bad\u0001${o.token}.txt`;
  const realAbsolutePath = join(tmpdir(), `volsd-escape-${o.token}.txt`);
  const absolute = `live/${realAbsolutePath}`;
  const s3 = sandboxS3(sandbox);
  try {
    await Promise.all([
      ...[parent, control].map((Key) =>
        s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: o.payload })),
      ),
      ...Object.entries(o.valid).map(([Key, Body]) =>
        s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body })),
      ),
      (async () => {
        await putObjectVerbatim(sandbox.s3.server, bucket, absolute, o.payload);
        sandbox.s3.server.emit('event', {
          Records: [
            {
              eventName: 'ObjectCreated:Put',
              s3: { bucket: { name: bucket }, object: { key: absolute, size: o.payload.length } },
            },
          ],
        });
      })(),
    ]);
  } finally {
    s3.destroy();
  }
  return { parent, control, absolute, realAbsolutePath };
}

/** Options of {@link runPushScenario}. */
export interface PushScenarioOptions {
  /** AWS-strict rules switched off, for comparison only. @default every rule on */
  rules?: SandboxOptions['rules'];
  /** Web instances in service before the pushes. */
  instances: number;
  idlePerAz: number;
  azs: number;
  seed: number;
  timeScale: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** The `push` fields of the scenario JSON, from ground truth. */
export interface PushScenarioResult {
  /** Pushes made (`aws s3 cp`/`rm`/uploads), whatever they became. */
  pushes: number;
  /** Volsd-Sync commands the fan-out sent. */
  fanOuts: number;
  /** IDLE and IN_USE volumes holding exactly the bucket's tree at the pool's generation. */
  volumesCurrent: number;
  volumesTotal: number;
  /** Keys the fan-out refused and reported. */
  rejectedKeys: number;
  /** Files written outside any mount root (host trees, volume and snapshot areas, the real path). */
  writesOutsideRoot: number;
  /** Instances launched during a push that entered service behind it (see {@link staleAtReady}). */
  staleAtReady: number;
  /** Instances launched during a push. */
  launchesDuringPush: number;
  /** Modelled seconds from `aws s3 cp` of one file to its push being collected, every volume current. */
  propagationSeconds: number;
  /** The whole scenario JSON (the `push` block filled from the fields above). */
  scenario: ScenarioResult;
}

/** Runs the push scenario in its own sandbox (started and stopped here). */
export async function runPushScenario(o: PushScenarioOptions): Promise<PushScenarioResult> {
  const log = o.log ?? (() => undefined);
  const sandbox = await Sandbox.start({
    azs: o.azs,
    idlePerAz: o.idlePerAz,
    seed: o.seed,
    timeScale: o.timeScale,
    ...(o.rules ? { rules: o.rules } : {}),
  });
  let push: PushPipeline | undefined;
  const scratch = await mkdtemp(join(tmpdir(), 'volsd-push-scenario-'));
  try {
    const recorder = new ScenarioRecorder(sandbox);
    push = await wirePushPipeline(sandbox);
    log(
      `pool ${sandbox.options.pool}: ${o.azs} AZ(s), target ${o.idlePerAz} idle per AZ, ${o.instances} instance(s)`,
    );
    await sandbox.replenishAll();
    sandbox.scaleTo(o.instances);
    await sandbox.settle();
    const { clock } = sandbox.cloud;
    let pushes = 0;

    log('push 1: aws s3 cp of one file');
    // 1. One file: the propagation time.
    const file = join(scratch, 'index.html');
    await writeFile(file, `<h1>volsd ${o.seed}</h1>\n`);
    const t0 = clock.now();
    await awsCli(sandbox, [
      's3',
      'cp',
      file,
      `s3://${sandbox.wiring.bucket}/live/index.html`,
      '--only-show-errors',
    ]);
    pushes++;
    await push.drained();
    const first = (await push.pushes()).find((p) => p.keys.includes('live/index.html'));
    const propagationSeconds = first?.completedAt
      ? Math.max(0, (Date.parse(first.completedAt) - clock.date(t0).getTime()) / 1000)
      : Number.NaN;

    log('push 2: keys that try to escape (../, absolute, control character) with a valid one');
    // 2. Keys that try to escape, with valid ones.
    const token = `s${o.seed}-${Math.round(clock.now())}`;
    const payload = `volsd escape payload ${token}`;
    const hostile = await uploadHostileBatch(sandbox, {
      token,
      payload,
      valid: { 'live/about.html': '<p>about</p>\n' },
    });
    pushes++;
    await push.drained();

    log('push 3: aws s3 cp while two instances launch');
    // 3. Launches during a push: one as the push starts, one while its command runs.
    const watch = watchLaunches(sandbox);
    await writeFile(file, `<h1>volsd ${o.seed} again</h1>\n`);
    await awsCli(sandbox, [
      's3',
      'cp',
      file,
      `s3://${sandbox.wiring.bucket}/live/news.html`,
      '--only-show-errors',
    ]);
    pushes++;
    sandbox.scaleTo(o.instances + 1);
    // The push of news.html is recorded when its command has been sent: launch again then.
    for (let waited = 0; !(await push.pushes()).some((p) => p.keys.includes('live/news.html')); waited++) {
      if (waited > 600) throw new Error('the push of live/news.html was never made');
      await clock.sleep(1);
    }
    sandbox.scaleTo(o.instances + 2);
    await push.drained();
    await sandbox.settle();
    await push.drained();
    watch.stop();

    const records = await push.pushes();
    const tree = await bucketTree(sandbox);
    const pool = await sandbox.repo.getPool(sandbox.options.pool);
    const volumes = await volumeTruth(sandbox);
    const outside = await findWritesOutsideRoots(sandbox);
    const escaped =
      (await findContent(sandbox, payload)).length + (existsSync(hostile.realAbsolutePath) ? 1 : 0);
    // Ground truth: what each launch served the moment it went InService against the bucket then.
    const stale = sandbox.readiness
      .staleAtReady(sandbox.wiring.groupName)
      .filter((r) => watch.readiness.has(r.instanceId));
    const figures = {
      pushes,
      fanOuts: records.filter((p) => p.commandId !== undefined).length,
      volumesCurrent: volumes.filter((v) => v.marker === pool.generation && holdsTree(v, tree)).length,
      volumesTotal: volumes.length,
      rejectedKeys: records.reduce((n, p) => n + p.rejectedCount, 0),
      writesOutsideRoot: outside.length + escaped,
    };
    const scenario = await recorder.result('push', figures);
    return {
      ...figures,
      staleAtReady: stale.length,
      launchesDuringPush: watch.readiness.size,
      propagationSeconds: Math.round(propagationSeconds * 10) / 10,
      scenario: { ...scenario, staleAtReady: stale.length },
    };
  } finally {
    push?.close();
    await sandbox.stop();
    await rm(scratch, { recursive: true, force: true });
  }
}
