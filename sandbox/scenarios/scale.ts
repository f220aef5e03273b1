import { monitorEventLoopDelay } from 'node:perf_hooks';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { VolumeState } from '../../lambdas/shared/model.js';
import { Role, roleTag } from '../../lambdas/shared/tags.js';
import { volumeGeneration } from '../invariants.js';
import { type PushPipeline, wirePushPipeline } from '../push-wiring.js';
import { Sandbox, type SandboxOptions } from '../runtime.js';
import { localCredentials, localRegion } from '../servers.js';
import { percentiles, pipelineFigures, round, ScenarioRecorder, type ScenarioResult } from './report.js';

/** Options of the scale scenario. */
export interface ScaleOptions {
  /** AWS-strict rules switched off, for comparison only. @default every rule on */
  rules?: SandboxOptions['rules'];
  /** Instances launched in all. @default 1000 */
  instances?: number;
  /** Launches per burst. @default 200 */
  burst?: number;
  /** @default 3 */
  azs?: number;
  /** Idle target per AZ. @default 20 */
  idlePerAz?: number;
  seed: number;
  timeScale: number;
  /**
   * `model` runs the scripts' in-process twins (minutes for 1,000 instances); `scripts` the real
   * scripts and AWS CLI (hours at this size). @default 'model'
   */
  agent?: 'scripts' | 'model';
  log?: (line: string) => void;
}

/** One burst's figures, in modelled seconds. */
export interface BurstFigures {
  launches: number;
  ready: number;
  failed: number;
  /** Launch (lifecycle action started) to InService, for this burst's instances. */
  timeToReadySeconds: ReturnType<typeof percentiles>;
  /** Acquires served by a volume created from the snapshot for the instance (no idle volume in the AZ). */
  directCreates: number;
  /** Burst start to every AZ back at its idle target; null if not within the wait. */
  poolRecoverySeconds: number | null;
  /** The push after the burst: PutObject to every attached and idle volume holding the new generation. */
  pushConvergenceSeconds: number | null;
  volumesSyncedByPush: number;
}

/** What the scale scenario prints. */
export interface ScaleResult extends ScenarioResult {
  bursts: BurstFigures[];
  throttling: {
    /** EC2 calls refused by the simulator's token buckets (EC2's request-rate limits). */
    rateLimited: number;
    /** Executions that failed on a throttling error (0 = every throttle absorbed by retries). */
    executionsFailedOnThrottling: number;
  };
  /** Control-plane counts per operation and their cost at list prices (bench/run.ts, docs/cost.md). */
  perPush: Record<'awsCalls' | 'stateTransitions' | 'lambdaInvocations' | 'tableWrites', number | null>;
  /** How late the sandbox's event loop ran (ms): when high, modelled times are inflated by CPU. */
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  agent: 'scripts' | 'model';
  /** Running sync workers per AZ at the end (simulator ground truth). */
  workersPerAz: Record<string, number>;
}

/**
 * 1,000 instances over 3 AZs in bursts of 200 on a pool of 20 idle volumes per AZ, a push to every
 * volume after each burst, the replenish schedule ticking every 5 minutes. Measures time to ready,
 * pool recovery and push convergence per burst, the throttling met and absorbed, the counts per
 * operation, then checks every invariant against ground truth.
 */
export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  const log = o.log ?? (() => undefined);
  const instances = o.instances ?? 1000;
  const burstSize = o.burst ?? 200;
  const agent = o.agent ?? 'model';
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  const sandbox = await Sandbox.start({
    azs: o.azs ?? 3,
    idlePerAz: o.idlePerAz ?? 20,
    seed: o.seed,
    timeScale: o.timeScale,
    heartbeatTimeout: 900,
    maxGroupSize: instances,
    agent,
    ...(o.rules ? { rules: o.rules } : {}),
  });
  const s3 = new S3Client({
    endpoint: sandbox.s3.endpoint,
    region: localRegion,
    credentials: localCredentials,
    forcePathStyle: true,
  });
  const { clock } = sandbox.cloud;
  // Pollers wake at least every 50 ms of wall time, however compressed the modelled clock is.
  const poll = (modelled: number) => clock.sleep(Math.max(modelled, 0.05 / o.timeScale));
  let ticking = true;
  let push: PushPipeline | undefined;
  try {
    const recorder = new ScenarioRecorder(sandbox);
    push = await wirePushPipeline(sandbox, { batchingWindowSeconds: 5 });
    const put = (key: string, body: string) =>
      s3.send(new PutObjectCommand({ Bucket: sandbox.wiring.bucket, Key: key, Body: body }));
    log(
      `pool: ${sandbox.options.azs.length} AZs, ${sandbox.options.idlePerAz} idle per AZ; content and snapshot`,
    );
    for (let i = 0; i < 20; i++) await put(`live/page-${i}.html`, `<p>page ${i}</p>\n`.repeat(50));
    await push.drained();
    await sandbox.replenishAll();
    await runSnapshot(sandbox);

    // The replenish schedule (EventBridge, rate 5 minutes), one target per AZ.
    const schedule = (async () => {
      while (ticking) {
        await clock.sleep(300).catch(() => undefined);
        if (!ticking) break;
        for (const az of sandbox.options.azs) {
          sandbox.sfn.start(
            sandbox.wiring.stateMachines.replenish,
            `schedule-${az}-${Math.round(clock.now())}`,
            JSON.stringify({ pool: sandbox.options.pool, az, reason: 'schedule' }),
          );
        }
      }
    })();

    const bursts: BurstFigures[] = [];
    let desired = 0;
    for (let b = 1; desired < instances; b++) {
      const before = new Set(launchActions(sandbox).map((a) => a.instanceId));
      desired = Math.min(instances, desired + burstSize);
      log(`burst ${b}: ${desired - before.size} launches at once (group to ${desired})`);
      const burstAt = clock.now();
      sandbox.scaleTo(desired);
      const recovery = watchRecovery(sandbox, poll);
      await sandbox.settle();
      const mine = launchActions(sandbox).filter((a) => !before.has(a.instanceId));
      const ready = mine.filter((a) => a.result === 'CONTINUE' && a.completedAt !== undefined);
      const direct = [...sandbox.sfn.executions.values()].filter(
        (e) =>
          e.stateMachineArn === sandbox.wiring.stateMachines.acquire &&
          mine.some((a) => e.name.includes(a.instanceId)) &&
          (JSON.parse(e.output ?? '{}') as { direct?: boolean }).direct === true,
      ).length;

      log(`burst ${b}: ${ready.length}/${mine.length} ready; pushing to every volume`);
      const pushAt = clock.now();
      await put(`live/burst-${b}.html`, `<p>burst ${b}</p>\n`.repeat(100));
      const converged = await waitConverged(sandbox, pushAt, poll);
      await push.drained();
      const recoveredAt = await recovery.until(clock.now() + 1800);
      bursts.push({
        launches: mine.length,
        ready: ready.length,
        failed: mine.filter((a) => a.result !== undefined && a.result !== 'CONTINUE').length,
        timeToReadySeconds: percentiles(ready.map((a) => (a.completedAt ?? 0) - a.startedAt)),
        directCreates: direct,
        poolRecoverySeconds: recoveredAt === undefined ? null : round(recoveredAt - burstAt, 1),
        pushConvergenceSeconds: converged ? round(converged.at - pushAt, 1) : null,
        volumesSyncedByPush: converged?.volumes ?? 0,
      });
      log(`burst ${b}: ${JSON.stringify(bursts[bursts.length - 1])}`);
    }
    ticking = false;
    await schedule;
    await sandbox.settle();
    await sandbox.replenishAll();

    const result = await recorder.result('scale', await pipelineFigures(push));
    const executions = [...sandbox.sfn.executions.values()];
    const throttleFailures = executions.filter(
      (e) =>
        e.status === 'FAILED' && /RequestLimitExceeded|Throttling/.test(`${e.error ?? ''}${e.cause ?? ''}`),
    ).length;
    loopDelay.disable();
    return {
      ...result,
      bursts,
      throttling: { rateLimited: sandbox.cloud.rateLimited, executionsFailedOnThrottling: throttleFailures },
      perPush: perPushCounts(sandbox, (await push.pushes()).length),
      eventLoopDelayMs: {
        p50: round(loopDelay.percentile(50) / 1e6, 1),
        p99: round(loopDelay.percentile(99) / 1e6, 1),
        max: round(loopDelay.max / 1e6, 1),
      },
      agent,
      workersPerAz: Object.fromEntries(
        sandbox.options.azs.map((az) => [
          az,
          sandbox.cloud
            .snapshotState()
            .instances.filter((i) => i.az === az && i.state === 'running' && i.tags[roleTag] === Role.Worker)
            .length,
        ]),
      ),
    };
  } finally {
    push?.close();
    ticking = false;
    loopDelay.disable();
    s3.destroy();
    await sandbox.stop();
  }
}

function launchActions(sandbox: Sandbox) {
  return sandbox.cloud
    .snapshotState()
    .lifecycleActions.filter(
      (a) =>
        a.groupName === sandbox.wiring.groupName && a.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING',
    );
}

async function runSnapshot(sandbox: Sandbox): Promise<void> {
  const arn = sandbox.wiring.stateMachines.snapshot;
  if (!arn) throw new Error('the sandbox runs no snapshot state machine');
  sandbox.sfn.start(arn, 'scale-snapshot', JSON.stringify({ pool: sandbox.options.pool, reason: 'scale' }));
  await sandbox.settle();
  if (!(await sandbox.repo.getPool(sandbox.options.pool)).latestSnapshot) {
    throw new Error('the snapshot workflow recorded no snapshot');
  }
}

/** Every AZ's IDLE count at or above the target (the table, confirmed by EC2 attachments to workers). */
async function poolAtTarget(sandbox: Sandbox): Promise<boolean> {
  const pool = await sandbox.repo.getPool(sandbox.options.pool);
  const idle = await sandbox.repo.listVolumes({ pool: pool.pool, state: VolumeState.Idle });
  const state = sandbox.cloud.snapshotState();
  const attached = new Map(state.volumes.map((v) => [v.volumeId, v.attachment?.instanceId] as const));
  // An AZ may run several sync workers (a target above one worker's attachments).
  const workers = new Set(
    state.instances
      .filter((i) => i.state === 'running' && i.tags['volsd:role'] === 'worker')
      .map((i) => i.instanceId),
  );
  return sandbox.options.azs.every(
    (az) =>
      idle.filter((v) => v.az === az && workers.has(attached.get(v.volumeId) ?? '')).length >=
      pool.targetIdlePerAz,
  );
}

/** Watches for the pool to be back at target after a burst (it first has to fall below). */
function watchRecovery(sandbox: Sandbox, poll: (s: number) => Promise<void>) {
  let recoveredAt: number | undefined;
  let stop = false;
  const watcher = (async () => {
    let dipped = false;
    while (!stop) {
      const full = await poolAtTarget(sandbox);
      if (!full) dipped = true;
      else if (dipped) {
        recoveredAt = sandbox.cloud.clock.now();
        return;
      }
      await poll(5).catch(() => undefined);
    }
  })();
  return {
    /** The recovery instant, waiting up to `deadline` (modelled) for it. */
    async until(deadline: number): Promise<number | undefined> {
      while (recoveredAt === undefined && sandbox.cloud.clock.now() < deadline) await poll(5);
      stop = true;
      await watcher;
      return recoveredAt;
    },
  };
}

/**
 * Waits until the pool's generation moved past what it was at `since` and every IN_USE and IDLE
 * volume holds it on disk (the `.volsd/generation` marker in its data: ground truth).
 */
async function waitConverged(
  sandbox: Sandbox,
  since: number,
  poll: (s: number) => Promise<void>,
): Promise<{ at: number; volumes: number } | undefined> {
  const { clock } = sandbox.cloud;
  const start = (await sandbox.repo.getPool(sandbox.options.pool)).generation;
  while (clock.now() - since < 1800) {
    const { generation } = await sandbox.repo.getPool(sandbox.options.pool);
    if (generation > start) {
      const volumes = (await sandbox.repo.listVolumes({ pool: sandbox.options.pool })).filter(
        (v) => v.state === VolumeState.InUse || v.state === VolumeState.Idle,
      );
      const behind = volumes.filter((v) => (volumeGeneration(sandbox, v.volumeId) ?? 0) < generation);
      if (behind.length === 0) return { at: clock.now(), volumes: volumes.length };
    }
    await poll(2);
  }
  return undefined;
}

/** The push pipeline's counts (all attributed to the operation `push`) divided by the pushes recorded. */
function perPushCounts(sandbox: Sandbox, pushes: number) {
  const c = sandbox.accounting.forOperation('push');
  if (pushes === 0)
    return { awsCalls: null, stateTransitions: null, lambdaInvocations: null, tableWrites: null };
  const avg = (n: number) => round(n / pushes, 1);
  return {
    awsCalls: avg(c.awsCall),
    stateTransitions: avg(c.stateTransition),
    lambdaInvocations: avg(c.lambdaInvocation),
    tableWrites: avg(c.tableWrite),
  };
}
