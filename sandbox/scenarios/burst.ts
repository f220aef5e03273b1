import { Sandbox, type SandboxOptions } from '../runtime.js';
import { round, ScenarioRecorder, type ScenarioResult } from './report.js';

export interface BurstOptions {
  /** AWS-strict rules switched off, for comparison only. @default every rule on */
  rules?: SandboxOptions['rules'];
  instances: number;
  idlePerAz: number;
  azs: number;
  seed: number;
  timeScale: number;
  /** How documents run. @default 'scripts' */
  agent?: 'scripts' | 'model';
  log?: (line: string) => void;
}

/**
 * N launches at once on a pool of M idle volumes per AZ: all must be served (the slow path creates
 * volumes), none shared, none leaked, and the pool back at its target afterwards.
 */
export async function runBurst(
  o: BurstOptions,
): Promise<ScenarioResult & { poolRecoverySeconds: number | null }> {
  const log = o.log ?? (() => undefined);
  const sandbox = await Sandbox.start({
    azs: o.azs,
    idlePerAz: o.idlePerAz,
    seed: o.seed,
    timeScale: o.timeScale,
    maxGroupSize: Math.max(100, o.instances),
    agent: o.agent ?? 'scripts',
    ...(o.rules ? { rules: o.rules } : {}),
  });
  try {
    const recorder = new ScenarioRecorder(sandbox);
    log(`pool ${sandbox.options.pool}: ${o.azs} AZ(s), target ${o.idlePerAz} idle per AZ; filling`);
    await sandbox.replenishAll();
    log(`burst: ${o.instances} launches at once`);
    const burstAt = sandbox.cloud.clock.now();
    sandbox.scaleTo(o.instances);
    await sandbox.settle();
    log('burst served; replenishing to target');
    await sandbox.replenishAll();
    // Pool recovery: from the burst to every AZ back at its idle target (the on-demand replenishes
    // the acquires asked for, then the schedule's tick above), in modelled seconds.
    const recovered = await atTarget(sandbox);
    const result = await recorder.result('burst');
    return {
      ...result,
      poolRecoverySeconds: recovered ? round(sandbox.cloud.clock.now() - burstAt, 1) : null,
    };
  } finally {
    await sandbox.stop();
  }
}

async function atTarget(sandbox: Sandbox): Promise<boolean> {
  const pool = await sandbox.repo.getPool(sandbox.options.pool);
  for (const az of sandbox.options.azs) {
    const idle = await sandbox.repo.listVolumes({ pool: pool.pool, az, state: 'IDLE' });
    if (idle.length !== pool.targetIdlePerAz) return false;
  }
  return true;
}
