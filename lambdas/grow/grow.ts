/**
 * Pool growth, one idempotent round (the grow function runs it on a schedule; docs/decisions.md, "A pool
 * that grows with its content"):
 * 1. The target: the growth item's `targetGiB` (raised by the fan-out when content passes the threshold)
 *    or the configured `volumeSizeGiB`, whichever is larger; a raised configuration raises the item.
 * 2. Every pool volume (DescribeVolumes by the pool's tags: idle ones on the workers and those in use on
 *    clients alike) below the target gets a ModifyVolume to it, online. EBS allows one modification per
 *    volume per 6 hours and none while the last one runs: `VolumeModificationRateExceeded` and
 *    `IncorrectModificationState` leave the volume for a later round (never a failure), as does a volume
 *    still `creating`.
 * 3. Once every volume has the target and no modification of it is still `modifying` (the size is
 *    usable from `optimizing` on), one Volsd-Sync goes to every pool instance: it grows each file system
 *    (xfs_growfs) before syncing. If a push was refused for want of space, that command is the push: a new
 *    generation, every volume synced, recorded like any push. Else it syncs nothing (`OnlyBehind` at the
 *    current generation) and only grows. Then the target is confirmed: the fan-out checks pushes against it.
 * New volumes take the target from the growth item (`createRecordedVolume`).
 */
import {
  DescribeVolumesCommand,
  DescribeVolumesModificationsCommand,
  type EC2Client,
  ModifyVolumeCommand,
  type Volume,
  type VolumeModification,
} from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import type { GrowthRecords } from '../shared/growth.js';
import { sendPoolSync } from '../shared/pool-sync.js';
import type { PushRecords } from '../shared/push-records.js';
import { PushStatus } from '../shared/push-records.js';
import { poolTag, Role, roleTag } from '../shared/tags.js';

/** What the round needs to know about the pool. */
export interface GrowConfig {
  pool: string;
  /** The configured `volumeSizeGiB`. */
  volumeSizeGiB: number;
  bucket: string;
  prefix: string;
  syncDocument: string;
  maxObjectBytes: number;
  maxConcurrency: string;
  maxErrors: string;
  deliveryTimeoutSeconds: number;
}

/** Counters the round reports (CloudWatch metrics in the handler). */
export type GrowMetric =
  | 'PoolVolumeTargetGiB'
  | 'VolumesBelowTarget'
  | 'VolumeResizesStarted'
  | 'VolumeResizesDeferred'
  | 'VolumeResizesFailed';

/** The part of a logger the round uses. */
export interface GrowLog {
  info(message: string, attributes: Record<string, unknown>): void;
  warn(message: string, attributes: Record<string, unknown>): void;
}

/** Everything {@link growPool} needs, injected. */
export interface GrowDeps {
  config: GrowConfig;
  ec2: Pick<EC2Client, 'send'>;
  ssm: Pick<SSMClient, 'send'>;
  growth: Pick<GrowthRecords, 'get' | 'raiseTarget' | 'confirm'>;
  pools: {
    getPool(pool: string): Promise<{ generation: number }>;
    bumpGeneration(pool: string): Promise<number>;
  };
  pushes: Pick<PushRecords, 'recordPush'>;
  log: GrowLog;
  count: (metric: GrowMetric, n: number) => void;
}

/** What one round did. */
export interface GrowReport {
  targetGiB: number;
  confirmedGiB: number;
  volumes: number;
  /** Volumes at the target with the size usable (modification at least optimizing). */
  atTarget: number;
  resizesStarted: string[];
  /** Volumes left for a later round, and why (the 6-hour rule, a modification running, creating). */
  deferred: { volumeId: string; reason: string }[];
  /** The Volsd-Sync sent once every volume had grown, if any. */
  sync?: { commandId: string; generation: number; repush: boolean };
}

const errorName = (err: unknown) => (err instanceof Error ? err.name : '');
const errorText = (err: unknown) =>
  (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).slice(0, 300);
/** Answers that mean "not now": the volume is left for a later round. */
const notNow = new Set(['VolumeModificationRateExceeded', 'IncorrectModificationState', 'IncorrectState']);

async function poolVolumes(ec2: GrowDeps['ec2'], pool: string): Promise<Volume[]> {
  const out: Volume[] = [];
  let token: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeVolumesCommand({
        Filters: [
          { Name: `tag:${poolTag}`, Values: [pool] },
          { Name: `tag:${roleTag}`, Values: [Role.Volume] },
        ],
        MaxResults: 500,
        NextToken: token,
      }),
    );
    out.push(...(page.Volumes ?? []));
    token = page.NextToken;
  } while (token);
  return out.filter((v) => v.State !== 'deleting' && v.State !== 'deleted' && v.State !== 'error');
}

/** The newest modification of each volume (by StartTime), by the volume-id filter (no NotFound). */
async function latestModifications(
  ec2: GrowDeps['ec2'],
  volumeIds: readonly string[],
): Promise<Map<string, VolumeModification>> {
  const latest = new Map<string, VolumeModification>();
  for (let i = 0; i < volumeIds.length; i += 200) {
    let token: string | undefined;
    do {
      const page = await ec2.send(
        new DescribeVolumesModificationsCommand({
          Filters: [{ Name: 'volume-id', Values: volumeIds.slice(i, i + 200) }],
          MaxResults: 500,
          NextToken: token,
        }),
      );
      for (const m of page.VolumesModifications ?? []) {
        if (!m.VolumeId) continue;
        const seen = latest.get(m.VolumeId);
        if (!seen || (m.StartTime?.getTime() ?? 0) >= (seen.StartTime?.getTime() ?? 0))
          latest.set(m.VolumeId, m);
      }
      token = page.NextToken;
    } while (token);
  }
  return latest;
}

/** One growth round; see the module comment. */
export async function growPool(deps: GrowDeps): Promise<GrowReport> {
  const { config, ec2, log } = deps;
  const volumes = await poolVolumes(ec2, config.pool);
  const record = await deps.growth.get(config.pool);
  // Before any growth decision the pool's size is what its volumes have (the smallest of them).
  const smallest = volumes.reduce<number | undefined>(
    (m, v) => (m === undefined ? v.Size : Math.min(m, v.Size ?? m)),
    undefined,
  );
  const baseline = record?.confirmedGiB ?? smallest ?? config.volumeSizeGiB;
  const targetGiB = Math.max(record?.targetGiB ?? 0, config.volumeSizeGiB, baseline);
  if (!record || targetGiB > record.targetGiB)
    await deps.growth.raiseTarget(config.pool, targetGiB, baseline);
  deps.count('PoolVolumeTargetGiB', targetGiB);

  const latest = await latestModifications(ec2, volumes.map((v) => v.VolumeId ?? '').filter(Boolean));
  const report: GrowReport = {
    targetGiB,
    confirmedGiB: record?.confirmedGiB ?? baseline,
    volumes: volumes.length,
    atTarget: 0,
    resizesStarted: [],
    deferred: [],
  };
  let failed = 0;
  for (const v of volumes) {
    const volumeId = v.VolumeId ?? '';
    const m = latest.get(volumeId);
    const size = Math.max(v.Size ?? 0, m && m.ModificationState !== 'failed' ? (m.TargetSize ?? 0) : 0);
    if (size >= targetGiB) {
      // The new size is usable from `optimizing` on; while `modifying` the OS still sees the old one.
      if (m?.ModificationState === 'modifying') report.deferred.push({ volumeId, reason: 'modifying' });
      else report.atTarget++;
      continue;
    }
    if (v.State === 'creating') {
      report.deferred.push({ volumeId, reason: 'creating' });
      continue;
    }
    try {
      await ec2.send(new ModifyVolumeCommand({ VolumeId: volumeId, Size: targetGiB }));
      report.resizesStarted.push(volumeId);
    } catch (err) {
      const name = errorName(err);
      if (name === 'InvalidVolume.NotFound') continue; // deleted meanwhile: nothing to grow
      if (!notNow.has(name)) failed++;
      report.deferred.push({ volumeId, reason: notNow.has(name) ? name : errorText(err) });
    }
  }
  const below = volumes.length - report.atTarget;
  deps.count('VolumesBelowTarget', below);
  deps.count('VolumeResizesStarted', report.resizesStarted.length);
  deps.count('VolumeResizesDeferred', report.deferred.length);
  deps.count('VolumeResizesFailed', failed);
  if (report.resizesStarted.length || report.deferred.length)
    log.info('pool volumes growing', {
      targetGiB,
      started: report.resizesStarted.length,
      deferred: report.deferred.slice(0, 20),
    });

  const repush = record?.repushPending === true;
  if (below > 0 || (report.confirmedGiB >= targetGiB && !repush)) return report;

  // Every volume has the target: one Volsd-Sync grows every file system (and brings a refused push).
  const generation = repush
    ? await deps.pools.bumpGeneration(config.pool)
    : (await deps.pools.getPool(config.pool)).generation;
  const commandId = await sendPoolSync(deps.ssm, config, {
    generation,
    onlyBehind: !repush,
    comment: `volsd grow ${config.pool} to ${targetGiB} GiB, generation ${generation}`,
  });
  if (repush) {
    // Recorded as a push: the push status collection then records every volume's outcome.
    await deps.pushes.recordPush({
      pool: config.pool,
      generation,
      status: PushStatus.InProgress,
      commandId,
      messages: 0,
      keys: [],
      rejected: [],
    });
  }
  await deps.growth.confirm(config.pool, targetGiB, repush);
  log.info('pool volumes grown; file systems grow with this sync', {
    targetGiB,
    commandId,
    generation,
    repush,
  });
  report.confirmedGiB = targetGiB;
  report.sync = { commandId, generation, repush };
  return report;
}
