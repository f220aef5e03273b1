import { Sandbox } from '../runtime.js';
import { ScenarioRecorder, type ScenarioResult } from './report.js';

export interface BurstOptions {
  instances: number;
  idlePerAz: number;
  azs: number;
  seed: number;
  timeScale: number;
  log?: (line: string) => void;
}

/**
 * N launches at once on a pool of M idle volumes per AZ: all must be served (the slow path creates
 * volumes), none shared, none leaked, and the pool back at its target afterwards.
 */
export async function runBurst(o: BurstOptions): Promise<ScenarioResult> {
  const log = o.log ?? (() => undefined);
  const sandbox = await Sandbox.start({
    azs: o.azs,
    idlePerAz: o.idlePerAz,
    seed: o.seed,
    timeScale: o.timeScale,
  });
  try {
    const recorder = new ScenarioRecorder(sandbox);
    log(`pool ${sandbox.options.pool}: ${o.azs} AZ(s), target ${o.idlePerAz} idle per AZ; filling`);
    await sandbox.replenishAll();
    log(`burst: ${o.instances} launches at once`);
    sandbox.scaleTo(o.instances);
    await sandbox.settle();
    log('burst served; replenishing to target');
    await sandbox.replenishAll();
    return await recorder.result('burst');
  } finally {
    await sandbox.stop();
  }
}
