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
  /**
   * Modelled content size in GiB. When given, the pool is first snapshotted and refilled from that
   * snapshot, so its idle volumes are snapshot-born (they must be initialized before they are IDLE) and
   * the launches past the pool are direct creations from the snapshot (cold until initialized).
   */
  contentGiB?: number;
  /** The pool's initialization method and rate, and what a cold direct creation does (SandboxOptions). */
  initialization?: SandboxOptions['initialization'];
  initializationRate?: number;
  coldDirectVolume?: SandboxOptions['coldDirectVolume'];
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
    ...(o.contentGiB !== undefined ? { contentGiB: o.contentGiB } : {}),
    ...(o.initialization ? { initialization: o.initialization } : {}),
    ...(o.initializationRate !== undefined ? { initializationRate: o.initializationRate } : {}),
    ...(o.coldDirectVolume ? { coldDirectVolume: o.coldDirectVolume } : {}),
  });
  try {
    const recorder = new ScenarioRecorder(sandbox);
    log(`pool ${sandbox.options.pool}: ${o.azs} AZ(s), target ${o.idlePerAz} idle per AZ; filling`);
    await sandbox.replenishAll();
    if (o.contentGiB !== undefined) await refillFromSnapshot(sandbox, o.idlePerAz, log);
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

/**
 * Snapshots the pool's content, retires the empty-born idle volumes and refills the pool from the
 * snapshot: the pool's volumes are then what a pool in service holds (made from its latest snapshot,
 * initialized before they were marked IDLE), and direct creations have a snapshot to start from.
 */
async function refillFromSnapshot(sandbox: Sandbox, idlePerAz: number, log: (line: string) => void) {
  const arn = sandbox.wiring.stateMachines.snapshot;
  if (!arn) throw new Error('the sandbox runs no snapshot state machine');
  sandbox.sfn.start(arn, 'burst-snapshot', JSON.stringify({ pool: sandbox.options.pool, reason: 'burst' }));
  await sandbox.settle();
  if (!(await sandbox.repo.getPool(sandbox.options.pool)).latestSnapshot)
    throw new Error('the snapshot workflow recorded no snapshot');
  log('snapshot taken; refilling the pool from it (each volume initialized before it is IDLE)');
  await sandbox.repo.setTarget(sandbox.options.pool, 0);
  await sandbox.replenishAll();
  await sandbox.repo.setTarget(sandbox.options.pool, idlePerAz);
  await sandbox.replenishAll();
}

async function atTarget(sandbox: Sandbox): Promise<boolean> {
  const pool = await sandbox.repo.getPool(sandbox.options.pool);
  for (const az of sandbox.options.azs) {
    const idle = await sandbox.repo.listVolumes({ pool: pool.pool, az, state: 'IDLE' });
    if (idle.length !== pool.targetIdlePerAz) return false;
  }
  return true;
}
