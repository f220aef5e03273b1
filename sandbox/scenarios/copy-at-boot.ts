import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { type CopyLimit, copyLimits, startCopyAtBoot } from '../copy-at-boot.js';
import { Sandbox, type SandboxOptions } from '../runtime.js';
import { localCredentials } from '../servers.js';
import { percentiles, round } from './report.js';

/** Options of {@link runCopyAtBoot}. */
export interface CopyAtBootScenarioOptions {
  rules?: SandboxOptions['rules'];
  /** Launches at once. */
  instances: number;
  /** Modelled content size in GiB: what each instance copies from the bucket at boot. */
  contentGiB: number;
  seed: number;
  timeScale: number;
  log?: (line: string) => void;
}

/** The scenario's JSON (modelled seconds). */
export interface CopyAtBootResult {
  scenario: 'copy-at-boot';
  seed: number;
  strictRules: string[];
  contentGiB: number;
  instancesLaunched: number;
  instancesReady: number;
  /** Went InService with a served tree that differed from the bucket (ground truth, `readiness.ts`). */
  staleAtReady: number;
  /** Instances whose data volume, from EC2, was not a new empty one (a snapshot id): must be 0. */
  volumesNotEmptyBorn: number;
  /** Lifecycle event (Pending:Wait) to InService. */
  timeToReady: ReturnType<typeof percentiles>;
  /** End of the boot (user data starts) to the volume attached, mounted and holding the real files. */
  prepareSeconds: ReturnType<typeof percentiles>;
  /** The copy alone (mkfs, mount, CLI start, the bytes at the modelled rate). */
  copySeconds: ReturnType<typeof percentiles>;
  /** Per launch: lifecycle event to InService (null if it never went), and its modelled copy. */
  launches: { instanceId: string; readySeconds: number | null; copySeconds: number | null }[];
  /** The copy's limits (bytes/s), each with its source. */
  limits: CopyLimit[];
  errors: string[];
  wallSeconds: number;
}

/**
 * N launches of a group without Volsd: each instance creates an empty volume at boot and copies the
 * whole content from the bucket onto it before completing its launch hook (`sandbox/copy-at-boot.ts`).
 * The baseline of the time-to-ready chart.
 */
export async function runCopyAtBoot(o: CopyAtBootScenarioOptions): Promise<CopyAtBootResult> {
  const log = o.log ?? (() => undefined);
  const wallStart = Date.now();
  const sandbox = await Sandbox.start({
    azs: 1,
    idlePerAz: 0,
    seed: o.seed,
    timeScale: o.timeScale,
    agent: 'model',
    waitForWorkers: false,
    ...(o.rules ? { rules: o.rules } : {}),
  });
  try {
    // The content: a small tree of real files; its modelled size is `contentGiB`.
    const s3 = new S3Client({
      endpoint: sandbox.s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: localCredentials,
    });
    for (let i = 0; i < 20; i++) {
      await s3.send(
        new PutObjectCommand({
          Bucket: sandbox.wiring.bucket,
          Key: `live/pages/page-${i}.html`,
          Body: `<h1>page ${i}</h1>\n`.repeat(10 + i),
        }),
      );
    }
    const groupName = `${sandbox.options.pool}-copy-at-boot`;
    const hookName = 'copy-at-boot-launch';
    // AWS's default heartbeat timeout (FACTS §4); the user data heartbeats through longer copies.
    const heartbeatTimeout = 3600;
    const copy = startCopyAtBoot({
      cloud: sandbox.cloud,
      groupName,
      hookName,
      heartbeatTimeout,
      bucket: sandbox.wiring.bucket,
      s3Endpoint: sandbox.s3.endpoint,
      contentGiB: o.contentGiB,
    });
    try {
      sandbox.cloud.createAutoScalingGroup({
        name: groupName,
        azs: sandbox.options.azs,
        launchHook: { name: hookName, heartbeatTimeout, defaultResult: 'ABANDON' },
        desiredCapacity: 0,
        maxSize: Math.max(100, o.instances),
        replaceAbandoned: false,
      });
      log(`copy at boot: ${o.instances} launches, ${o.contentGiB} GiB each`);
      sandbox.cloud.setDesiredCapacity(groupName, o.instances);
      const launches = () =>
        sandbox.cloud
          .lifecycleActions()
          .filter((a) => a.groupName === groupName && a.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING');
      // Every launch decided (at most the hook's global timeout, 48 h).
      await sandbox.cloud.waitFor(
        () => launches().length === o.instances && launches().every((a) => a.completedAt !== undefined),
        48 * 3600,
        'copy-at-boot launches completed',
      );
      await copy.idle();
      const actions = launches();
      const ready = actions.filter((a) => a.result === 'CONTINUE' && a.completedBy === 'api');
      const state = sandbox.cloud.snapshotState();
      const runs = [...copy.runs.values()];
      const volumesNotEmptyBorn = runs.filter((r) => {
        const v = state.volumes.find((x) => x.volumeId === r.volumeId);
        return !v || v.snapshotId !== undefined;
      }).length;
      return {
        scenario: 'copy-at-boot',
        seed: o.seed,
        strictRules: sandbox.cloud.strictRules(),
        contentGiB: o.contentGiB,
        instancesLaunched: actions.length,
        instancesReady: ready.length,
        staleAtReady: sandbox.readiness.staleAtReady(groupName).length,
        volumesNotEmptyBorn,
        timeToReady: percentiles(ready.map((a) => (a.completedAt ?? 0) - a.startedAt)),
        prepareSeconds: percentiles(
          runs.flatMap((r) => (r.preparedAt === undefined ? [] : [r.preparedAt - r.startedAt])),
        ),
        copySeconds: percentiles(runs.flatMap((r) => (r.copySeconds === undefined ? [] : [r.copySeconds]))),
        launches: actions.map((a) => ({
          instanceId: a.instanceId,
          readySeconds: ready.includes(a) ? round((a.completedAt ?? 0) - a.startedAt) : null,
          copySeconds: copy.runs.get(a.instanceId)?.copySeconds ?? null,
        })),
        limits: copyLimits('m7g.large'),
        errors: runs.flatMap((r) => (r.error ? [`${r.instanceId}: ${r.error}`] : [])),
        wallSeconds: round((Date.now() - wallStart) / 1000, 1),
      };
    } finally {
      copy.stop();
    }
  } finally {
    await sandbox.stop();
  }
}
