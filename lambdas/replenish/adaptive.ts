import {
  type AdaptiveSettings,
  chooseTarget,
  gp3VolumeDollarsPerMonth,
  LaunchHistory,
  type TargetDecision,
} from '../shared/adaptive-sizing.js';
import { dynamoDoc } from '../shared/clients.js';
import { azMetric, logger, metrics } from '../shared/logger.js';
import type { PoolRecord } from '../shared/model.js';
import type { StepDeps } from '../shared/steps.js';
import { nowMs } from '../shared/time.js';
import type { WorkflowConfig } from '../shared/workflow-config.js';

/** The adaptive settings of the configuration; `perWorker` from the AZ's workers. */
export function adaptiveSettings(config: WorkflowConfig, perWorker: number): AdaptiveSettings {
  return {
    min: config.ADAPTIVE_MIN,
    max: config.ADAPTIVE_MAX,
    budgetDollarsPerMonth: config.ADAPTIVE_BUDGET_DOLLARS_PER_MONTH,
    lookbackDays: config.ADAPTIVE_LOOKBACK_DAYS,
    windowHours: config.ADAPTIVE_WINDOW_HOURS,
    percentile: config.ADAPTIVE_PERCENTILE,
    prices: {
      volumeDollarsPerMonth: gp3VolumeDollarsPerMonth(
        config.VOLUME_SIZE_GIB,
        config.VOLUME_IOPS ?? 3000,
        config.VOLUME_THROUGHPUT ?? 125,
      ),
      workerDollarsPerMonth: config.WORKER_DOLLARS_PER_MONTH,
      perWorker,
    },
  };
}

/**
 * Sets the pool's idle target from its launch history (adaptive sizing, on the replenish schedule) and
 * explains a change: an info log with every input, the `IdleTarget` metric, and the decision in the table
 * (shown by `volsd-client pool`). Returns the pool as it now stands.
 */
export async function retarget(
  pool: PoolRecord,
  perWorker: number,
  { repo, config }: Pick<StepDeps, 'repo' | 'config'>,
  history = new LaunchHistory(dynamoDoc, config.TABLE_NAME),
): Promise<PoolRecord> {
  const settings = adaptiveSettings(config, perWorker);
  const now = nowMs();
  const demand = await history.demandPerDay(
    pool.pool,
    pool.azs,
    now,
    settings.lookbackDays,
    settings.windowHours,
  );
  const decision: TargetDecision = chooseTarget(
    demand,
    pool.azs.length,
    settings,
    new Date(now).toISOString(),
  );
  for (const az of pool.azs) azMetric(pool.pool, az, 'IdleTarget', decision.target);
  if (decision.target === pool.targetIdlePerAz) return pool;
  const updated = await repo.setTarget(pool.pool, decision.target);
  await history.putDecision(pool.pool, decision);
  logger.info('adaptive sizing changed the idle target', {
    pool: pool.pool,
    from: pool.targetIdlePerAz,
    ...decision,
  });
  metrics.addMetric('IdleTargetChanged', 'Count', 1);
  return updated;
}
