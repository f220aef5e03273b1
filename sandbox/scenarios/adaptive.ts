import { atRestDollarsPerMonth, gp3VolumeDollarsPerMonth } from '../../lambdas/shared/adaptive-sizing.js';
import { checkInvariants } from '../invariants.js';
import { Sandbox, type SandboxOptions } from '../runtime.js';
import { round } from './report.js';

export interface AdaptiveOptions {
  /** Days with a burst, then `quietDays` without. */
  days: number;
  quietDays: number;
  burstSize: number;
  azs: number;
  /** Adaptive bounds and budget. */
  min: number;
  max: number;
  budgetDollarsPerMonth: number;
  /** Past days adaptive sizing looks at. */
  lookbackDays: number;
  seed: number;
  timeScale: number;
  agent?: 'scripts' | 'model';
  rules?: SandboxOptions['rules'];
  log?: (line: string) => void;
}

/** One modelled day of the adaptive scenario. */
export interface AdaptiveDay {
  day: number;
  burst: number;
  /** The idle target per AZ when the burst came (set by that day's schedule tick). */
  targetPerAz: number;
  idleBeforeBurst: number;
  directCreates: number;
  servedFromPool: number;
}

const dayMs = 86_400_000;
/** The modelled volume size and worker price of the scenario (docs/cost.md, "At rest"). */
const volumeGiB = 20;
const workerDollarsPerMonth = 13.54;

/**
 * Adaptive sizing over modelled days: every day at the same hour the replenish schedule ticks (which sets
 * the target from the launches of the past days), the pool fills, and a burst of `burstSize` launches
 * comes; then the instances are released. After `days` burst days, `quietDays` without bursts. The
 * handlers' clock jumps one day between days (nothing runs then), so the hourly launch counts land on
 * successive days at the same hour.
 */
export async function runAdaptive(o: AdaptiveOptions) {
  const log = o.log ?? (() => undefined);
  // The configuration every handler reads at its cold start, as the CDK construct sets it.
  Object.assign(process.env, {
    ADAPTIVE_SIZING: 'true',
    ADAPTIVE_MIN: String(o.min),
    ADAPTIVE_MAX: String(o.max),
    ADAPTIVE_BUDGET_DOLLARS_PER_MONTH: String(o.budgetDollarsPerMonth),
    ADAPTIVE_LOOKBACK_DAYS: String(o.lookbackDays),
    ADAPTIVE_WINDOW_HOURS: '2',
    ADAPTIVE_PERCENTILE: '95',
    WORKER_DOLLARS_PER_MONTH: String(workerDollarsPerMonth),
    VOLUME_SIZE_GIB: String(volumeGiB),
  });
  const sandbox = await Sandbox.start({
    azs: o.azs,
    idlePerAz: o.min,
    seed: o.seed,
    timeScale: o.timeScale,
    maxGroupSize: Math.max(100, o.burstSize),
    maxWorkersPerAz: Math.max(1, Math.ceil(o.max / 26)),
    agent: o.agent ?? 'model',
    ...(o.rules ? { rules: o.rules } : {}),
  });
  const { setTimeSource } = await import('../../lambdas/shared/time.js');
  const { LaunchHistory } = await import('../../lambdas/shared/adaptive-sizing.js');
  const { dynamoDoc } = await import('../../lambdas/shared/clients.js');
  try {
    const clock = sandbox.cloud.clock;
    const startMs = clock.date().getTime();
    let dayOffset = 0;
    setTimeSource(() => clock.date().getTime() + dayOffset);
    log(`pool ${sandbox.options.pool}: ${o.azs} AZ(s); content and snapshot`);
    await sandbox.replenishAll();
    await runSnapshot(sandbox);

    const days: AdaptiveDay[] = [];
    for (let day = 0; day < o.days + o.quietDays; day++) {
      // Day `day` starts at the same time of day as day 0 did.
      dayOffset = day * dayMs - (clock.date().getTime() - startMs);
      const burst = day < o.days ? o.burstSize : 0;
      await sandbox.replenishAll('schedule');
      // The tick above set the target; the pool fills before the burst comes (a few minutes later).
      await sandbox.replenishAll('admin');
      const pool = await sandbox.repo.getPool(sandbox.options.pool);
      const idle = await sandbox.repo.listVolumes({ pool: pool.pool, state: 'IDLE' });
      const before = launchedAcquires(sandbox);
      if (burst > 0) {
        sandbox.scaleTo(burst);
        await sandbox.settle();
        sandbox.scaleTo(0);
        await sandbox.settle();
      }
      const launched = launchedAcquires(sandbox).filter((e) => !before.has(e.name));
      const direct = launched.filter((e) => e.direct).length;
      days.push({
        day: day + 1,
        burst,
        targetPerAz: pool.targetIdlePerAz,
        idleBeforeBurst: idle.length,
        directCreates: direct,
        servedFromPool: launched.length - direct,
      });
      log(
        `day ${day + 1}: target ${pool.targetIdlePerAz} per AZ, ${idle.length} idle, burst ${burst}: ${direct} direct`,
      );
    }
    const lastBurst = days[o.days - 1];
    const final = await sandbox.repo.getPool(sandbox.options.pool);
    const decision = await new LaunchHistory(dynamoDoc, sandbox.wiring.tableName).getDecision(final.pool);
    const prices = {
      volumeDollarsPerMonth: gp3VolumeDollarsPerMonth(volumeGiB),
      workerDollarsPerMonth,
      perWorker: 26,
    };
    const invariants = await checkInvariants(sandbox);
    return {
      scenario: 'adaptive',
      seed: o.seed,
      days: o.days,
      quietDays: o.quietDays,
      burstSize: o.burstSize,
      directCreatesFirstDay: days[0]?.directCreates ?? null,
      directCreatesLastDay: lastBurst?.directCreates ?? null,
      targetPerAz: lastBurst?.targetPerAz ?? null,
      atRestDollarsPerMonth: round(atRestDollarsPerMonth(lastBurst?.targetPerAz ?? 0, o.azs, prices), 2),
      budgetDollarsPerMonth: o.budgetDollarsPerMonth,
      targetAfterQuietDays: final.targetIdlePerAz,
      workersPerAzAtEnd:
        sandbox.cloud
          .snapshotState()
          .instances.filter((i) => i.state === 'running' && i.tags['volsd:role'] === 'worker').length / o.azs,
      lastDecision: decision ?? null,
      perDay: days,
      invariants: { checked: invariants.checked, violations: invariants.violations },
      modelledSeconds: round(clock.now(), 1),
    };
  } finally {
    await sandbox.stop();
  }
}

/** Launch acquires that succeeded, by execution name, with whether the volume was created for them. */
function launchedAcquires(sandbox: Sandbox) {
  const out = new Map<string, { name: string; direct: boolean }>();
  for (const e of sandbox.sfn.executions.values()) {
    if (e.stateMachineArn !== sandbox.wiring.stateMachines.acquire) continue;
    if (!e.name.startsWith('launch-') || e.status !== 'SUCCEEDED') continue;
    const output = JSON.parse(e.output ?? '{}') as { outcome?: string; direct?: boolean };
    if (output.outcome !== 'acquired') continue;
    out.set(e.name, { name: e.name, direct: output.direct === true });
  }
  return Object.assign([...out.values()], { has: (name: string) => out.has(name) });
}

async function runSnapshot(sandbox: Sandbox): Promise<void> {
  const arn = sandbox.wiring.stateMachines.snapshot;
  if (!arn) throw new Error('the sandbox runs no snapshot state machine');
  sandbox.sfn.start(
    arn,
    'adaptive-snapshot',
    JSON.stringify({ pool: sandbox.options.pool, reason: 'adaptive' }),
  );
  await sandbox.settle();
  if (!(await sandbox.repo.getPool(sandbox.options.pool)).latestSnapshot)
    throw new Error('the snapshot workflow recorded no snapshot');
}
