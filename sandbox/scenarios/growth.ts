/**
 * The growth scenario (issue 19): content outgrows the pool's volumes and the pool grows with it.
 *
 * Volumes are scaled down (`gibBytes`: a GiB of 16 KiB on the hosts, the same figure given to the
 * functions as VOLUME_GIB_BYTES) so a few dozen small files fill them. With the pool filled and web
 * instances in service:
 * 1. a push that fits (below the growth threshold);
 * 2. a push that takes the content past the volumes' size: the fan-out must refuse it as a whole and
 *    raise the growth target;
 * 3. grow rounds, as the grow function's schedule runs them: ModifyVolume on every pool volume (idle
 *    and in use), then one Volsd-Sync that grows every file system and brings the refused content;
 * 4. a scale-out, so replenish makes a new volume (at the new size), then one more push.
 * Every figure comes from ground truth: the simulator's volumes, modifications and command invocations,
 * and the volumes' data directories; never from Volsd's table.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { DocumentName } from '../../lambdas/shared/documents.js';
import { poolTag, Role, roleTag } from '../../lambdas/shared/tags.js';
import { type PushPipeline, wirePushPipeline } from '../push-wiring.js';
import { Sandbox, type SandboxOptions } from '../runtime.js';
import { sandboxS3 } from './push.js';

/** Options of {@link runGrowthScenario}. */
export interface GrowthScenarioOptions {
  seed: number;
  timeScale: number;
  /** Web instances in service. @default 2 */
  instances?: number;
  /** @default 2 */
  idlePerAz?: number;
  /** The configured volumeSizeGiB. @default 4 */
  volumeSizeGiB?: number;
  /** Bytes per GiB on the hosts. @default 16384 */
  gibBytes?: number;
  agent?: SandboxOptions['agent'];
  rules?: SandboxOptions['rules'];
  log?: (line: string) => void;
}

/** The scenario's JSON. */
export interface GrowthScenarioResult {
  /** Pool volumes at the end (the simulator's volumes tagged with the pool, role volume, not deleted). */
  volumesTotal: number;
  /** Of those, volumes whose EC2 size is the new size (the largest size a modification asked for). */
  volumesAtNewSize: number;
  /** The new size, GiB (0 when nothing was modified). */
  newSizeGiB: number;
  /** ModifyVolume calls EC2 accepted (the simulator's modifications). */
  resizes: number;
  /** Volsd-Sync invocations that failed on a host (the simulator's invocations). */
  syncFailures: number;
  /** Pushes some but not all volumes received, or some volume received in part (host trees). */
  partialPushes: number;
  /** Pushes no volume received, checked right after the push settled (host trees). */
  refusedPushes: number;
  /** Pushes made. */
  pushes: number;
  /** Every pool volume holds the bucket's whole tree at the end (host trees). */
  contentCurrent: boolean;
}

const fileBytes = 4096;

/** One file's content: `bytes` bytes naming the key. */
function body(key: string, bytes = fileBytes): string {
  return `${key}\n`.padEnd(bytes, '.');
}

interface PoolVolume {
  volumeId: string;
  size: number;
  dataDir: string;
}

/** Pool volumes as EC2 has them: tagged with the pool and role volume, attached, not going away. */
function poolVolumes(sandbox: Sandbox): PoolVolume[] {
  return sandbox.cloud
    .snapshotState()
    .volumes.filter(
      (v) =>
        v.tags[poolTag] === sandbox.options.pool &&
        v.tags[roleTag] === Role.Volume &&
        v.state !== 'deleting' &&
        v.state !== 'deleted',
    )
    .map((v) => ({ volumeId: v.volumeId, size: v.size, dataDir: v.dataDir }));
}

/** Whether a volume's data directory holds `key` (below `live/`) with its pushed content. */
function holds(volume: PoolVolume, key: string): boolean {
  const path = join(volume.dataDir, key.replace(/^live\//, ''));
  return (
    existsSync(path) && statSync(path).size === fileBytes && readFileSync(path, 'utf8').startsWith(`${key}\n`)
  );
}

/** Runs the growth scenario in its own sandbox (started and stopped here). */
export async function runGrowthScenario(o: GrowthScenarioOptions): Promise<GrowthScenarioResult> {
  const log = o.log ?? (() => undefined);
  const volumeSizeGiB = o.volumeSizeGiB ?? 4;
  const gibBytes = o.gibBytes ?? 16384;
  // The functions read their configuration at their first invocation.
  Object.assign(process.env, { VOLUME_SIZE_GIB: String(volumeSizeGiB), VOLUME_GIB_BYTES: String(gibBytes) });
  const sandbox = await Sandbox.start({
    azs: 1,
    idlePerAz: o.idlePerAz ?? 2,
    seed: o.seed,
    timeScale: o.timeScale,
    gibBytes,
    ...(o.agent ? { agent: o.agent } : {}),
    ...(o.rules ? { rules: o.rules } : {}),
  });
  let pipeline: PushPipeline | undefined;
  try {
    pipeline = await wirePushPipeline(sandbox);
    const { handler: grow } = await import('../../lambdas/grow/handler.js');
    const growRound = () =>
      sandbox.accounting.withOperation(`grow:${Math.round(sandbox.cloud.clock.now())}`, () =>
        grow({}, {
          functionName: 'volsd-web-grow',
          awsRequestId: 'local',
          getRemainingTimeInMillis: () => 60_000,
        } as never),
      );
    await sandbox.replenishAll();
    sandbox.scaleTo(o.instances ?? 2);
    await sandbox.settle();
    log(
      `pool filled: ${poolVolumes(sandbox).length} volumes of ${volumeSizeGiB} GiB (${volumeSizeGiB * gibBytes} bytes each)`,
    );

    const s3 = sandboxS3(sandbox);
    const outcomes: ('applied' | 'refused' | 'partial')[] = [];
    let written = 0;
    const push = async (files: number, what: string) => {
      const keys = Array.from(
        { length: files },
        (_, i) => `live/f${String(written + i).padStart(4, '0')}.txt`,
      );
      written += files;
      log(`${what}: ${files} file(s), ${written * fileBytes} bytes of content in all`);
      await Promise.all(
        keys.map((Key) =>
          s3.send(new PutObjectCommand({ Bucket: sandbox.wiring.bucket, Key, Body: body(Key) })),
        ),
      );
      await pipeline?.drained();
      await sandbox.settle();
      const volumes = poolVolumes(sandbox);
      const counts = volumes.map((v) => keys.filter((k) => holds(v, k)).length);
      const outcome = counts.every((n) => n === keys.length)
        ? 'applied'
        : counts.every((n) => n === 0)
          ? 'refused'
          : 'partial';
      outcomes.push(outcome);
      log(
        `  -> ${outcome} (volumes holding every key: ${counts.filter((n) => n === keys.length).length}/${volumes.length})`,
      );
    };

    const capacity = volumeSizeGiB * gibBytes;
    // 1. Below the threshold (80% of a volume).
    await push(Math.floor((capacity * 0.4) / fileBytes), 'push 1 (fits)');
    // 2. Past the volumes' size: refused as a whole, the target raised.
    await push(Math.ceil((capacity * 0.9) / fileBytes), 'push 2 (past the volume size)');
    // 3. Grow rounds, as the schedule runs them (every 5 modelled minutes in AWS; here every 30 s).
    for (let round = 1; round <= 20; round++) {
      const report = await growRound();
      log(
        `grow round ${round}: target ${report.targetGiB} GiB, ${report.atTarget}/${report.volumes} at target, ${report.resizesStarted.length} resize(s) started${report.sync ? `, sync ${report.sync.repush ? 'with the refused content' : 'to grow file systems'}` : ''}`,
      );
      if (report.sync) break;
      await sandbox.cloud.clock.sleep(30);
    }
    await pipeline.drained();
    await sandbox.settle();
    // 4. A new volume (scale-out: acquire takes an idle one, replenish makes one at the new size), one more push.
    sandbox.scaleTo((o.instances ?? 2) + 1);
    await sandbox.settle();
    await sandbox.replenishAll();
    await push(2, 'push 3 (after the growth)');
    s3.destroy();

    const tree = Array.from({ length: written }, (_, i) => `live/f${String(i).padStart(4, '0')}.txt`);
    const volumes = poolVolumes(sandbox);
    const state = sandbox.cloud.snapshotState();
    const modifications = sandbox.cloud.ec2.modifications.view();
    const newSizeGiB = modifications.reduce((m, x) => Math.max(m, x.targetSize), 0);
    const syncFailures = state.commands
      .filter(
        (c) => c.documentName === DocumentName.Sync || c.documentName.startsWith(`${DocumentName.Sync}-`),
      )
      .flatMap((c) => c.invocations)
      .filter((i) => i.status === 'Failed' || i.status === 'TimedOut').length;
    return {
      volumesTotal: volumes.length,
      volumesAtNewSize: volumes.filter((v) => v.size === newSizeGiB).length,
      newSizeGiB,
      resizes: modifications.length,
      syncFailures,
      partialPushes: outcomes.filter((x) => x === 'partial').length,
      refusedPushes: outcomes.filter((x) => x === 'refused').length,
      pushes: outcomes.length,
      contentCurrent: volumes.every((v) => tree.every((k) => holds(v, k))),
    };
  } finally {
    pipeline?.close();
    await sandbox.stop();
  }
}
