/**
 * Push status: once a push's Volsd-Sync command has finished, reads every invocation
 * (ListCommandInvocations with Details), records per instance whether it is current and, for a failed
 * one, why; records the generation of every volume the script reports synced; and sets the push's
 * status: Success, Partial (naming the failed instances) or Failed.
 *
 * How it is triggered in AWS: an EventBridge rule on `aws.ssm` "EC2 Command Status-change
 * Notification" for the Volsd-Sync document with a final status (Success, Failed, TimedOut, Cancelled)
 * invokes the push status function (`status-handler.ts`): one event per command, not one per
 * instance, and nothing polls while a push runs (a Step Functions poller would pay state transitions
 * for every wait and hold an execution per push). The event carries the command's parameters, so its
 * Generation names the push record directly. EventBridge delivery is best effort, so a schedule
 * (every few minutes) invokes the same function to sweep pushes still InProgress whose command has
 * ended. A failed instance needs nothing more from here: the next push syncs every volume on every
 * instance again, and an acquire brings its own volume current before the instance enters service.
 */
import {
  type CommandInvocation,
  GetCommandInvocationCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { finalCommandStatuses } from '../shared/command-status.js';
import { parseResults, type ScriptResult } from '../shared/documents.js';
import { CommandPending } from '../shared/errors.js';
import {
  type InstanceOutcome,
  type PushOutcome,
  type PushRecord,
  type PushRecords,
  PushStatus,
  type PushSummary,
  type VolumeOutcome,
} from '../shared/push-records.js';
import type { FanOutConfig } from './config.js';
import type { FanOutLog } from './fanout.js';

/** Counters the status function reports. */
export type StatusMetric = 'PushSucceeded' | 'PushPartial' | 'PushFailed';

/** Everything the status functions need. */
export interface StatusDeps {
  config: Pick<FanOutConfig, 'pool'>;
  ssm: Pick<SSMClient, 'send'>;
  pushes: Pick<PushRecords, 'getPush' | 'findByCommand' | 'completePush' | 'listPushes'>;
  /** Records a volume's generation (a `VolumeRepository` fits); never lowers it. */
  volumes: { setVolumeGeneration(volumeId: string, generation: number): Promise<void> };
  log: FanOutLog;
  count: (metric: StatusMetric, n: number) => void;
}

/** Invocation statuses after which nothing changes. */
const finalStatuses = new Set(['Success', 'Failed', 'TimedOut', 'Cancelled']);

export { finalCommandStatuses };

/** Volumes whose generation is written at once (DynamoDB writes are cheap; bound the burst). */
const volumeWriteConcurrency = 10;

const errorText = (err: unknown) =>
  err instanceof Error ? `${err.name}: ${err.message}`.slice(0, 300) : String(err).slice(0, 300);

/** The script's stdout inside a plugin's Output (SSM appends stderr after a separator). */
function stdoutOf(output: string): string {
  const i = output.indexOf('\n----------ERROR-------');
  return i >= 0 ? output.slice(0, i) : output;
}

function stderrOf(output: string): string {
  const i = output.indexOf('----------ERROR-------\n');
  return i >= 0 ? output.slice(i + '----------ERROR-------\n'.length) : '';
}

const lastLines = (text: string, n = 3) =>
  text.trim().split('\n').filter(Boolean).slice(-n).join(' | ').slice(0, 500);

function volumeOutcomes(results: ScriptResult[]): VolumeOutcome[] {
  const out: VolumeOutcome[] = [];
  for (const r of results) {
    if (r.op !== 'sync' || !r.volumeId) continue;
    if (r.status === 'ok') out.push({ volumeId: r.volumeId, status: 'ok', generation: r.generation });
    else if (r.status === 'skipped') out.push({ volumeId: r.volumeId, status: 'skipped', error: r.reason });
    else if (r.status === 'failed') {
      out.push({
        volumeId: r.volumeId,
        status: 'failed',
        error: `${r.code}: ${r.error}`.slice(0, 500),
        ...(typeof r.generation === 'number' ? { generation: r.generation } : {}),
      });
    }
  }
  return out;
}

/** Every invocation of the command, with their plugin output. */
async function listInvocations(ssm: StatusDeps['ssm'], commandId: string): Promise<CommandInvocation[]> {
  const all: CommandInvocation[] = [];
  let token: string | undefined;
  do {
    const page = await ssm.send(
      new ListCommandInvocationsCommand({ CommandId: commandId, Details: true, NextToken: token }),
    );
    all.push(...(page.CommandInvocations ?? []));
    token = page.NextToken;
  } while (token);
  return all;
}

/** One instance's outcome. The plugin output (2,500 characters) may be cut: then the full stdout is read. */
async function instanceOutcome(
  ssm: StatusDeps['ssm'],
  commandId: string,
  inv: CommandInvocation,
): Promise<InstanceOutcome> {
  const details = inv.StatusDetails ?? inv.Status ?? 'Unknown';
  const output = (inv.CommandPlugins ?? []).map((p) => p.Output ?? '').join('\n');
  let results = parseResults(stdoutOf(output));
  const complete = results.some((r) => r.op === 'sync-summary');
  if (!complete && inv.InstanceId && (inv.Status === 'Success' || inv.Status === 'Failed')) {
    try {
      const full = await ssm.send(
        new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: inv.InstanceId }),
      );
      results = parseResults(full.StandardOutputContent ?? '');
    } catch {
      // The listing's partial output is what there is.
    }
  }
  const volumes = volumeOutcomes(results);
  if (details === 'Success') return { status: details, volumes };
  const failedVolumes = volumes.filter((v) => v.status === 'failed');
  const scriptError = failedVolumes.map((v) => `${v.volumeId} ${v.error ?? ''}`).join('; ');
  const stderr = lastLines(stderrOf(output));
  const plugin = inv.CommandPlugins?.[0];
  const code = plugin?.ResponseCode;
  const why =
    scriptError ||
    `${details}${code !== undefined && code >= 0 ? ` (exit ${code})` : ''}${stderr ? `: ${stderr}` : ''}`;
  return { status: details, error: why.slice(0, 1000), volumes };
}

async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++];
      if (item !== undefined) await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** The push status from the instance outcomes (Undeliverable instances are gone, as SSM counts them). */
export function pushOutcome(instances: Record<string, InstanceOutcome>): PushOutcome {
  const summary: PushSummary = {
    targets: 0,
    succeeded: 0,
    failed: 0,
    undeliverable: 0,
    volumesCurrent: 0,
    volumesFailed: 0,
    instancesOmitted: 0,
  };
  for (const outcome of Object.values(instances)) {
    summary.targets++;
    if (outcome.status === 'Success') summary.succeeded++;
    else if (outcome.status === 'Undeliverable') summary.undeliverable++;
    else summary.failed++;
    for (const v of outcome.volumes) {
      if (v.status === 'ok') summary.volumesCurrent++;
      else if (v.status === 'failed') summary.volumesFailed++;
    }
  }
  const status =
    summary.failed === 0
      ? PushStatus.Success
      : summary.succeeded > 0
        ? PushStatus.Partial
        : PushStatus.Failed;
  return { status, instances, summary };
}

/**
 * Collects the outcome of the push whose command is `ref.commandId` (its generation, when known, names
 * the record directly). Returns the completed record; the record unchanged when it was already
 * collected; undefined when the command is no push (acquire and replenish also run Volsd-Sync).
 * Throws CommandPending while an invocation has not finished (the caller tries again later).
 */
export async function collectPushStatus(
  ref: { commandId: string; generation?: number },
  deps: StatusDeps,
): Promise<PushRecord | undefined> {
  const { config, log } = deps;
  const record =
    ref.generation !== undefined
      ? await deps.pushes.getPush(config.pool, ref.generation)
      : await deps.pushes.findByCommand(config.pool, ref.commandId);
  if (!record || record.commandId !== ref.commandId) return undefined;
  if (record.status !== PushStatus.InProgress) return record;

  const invocations = await listInvocations(deps.ssm, ref.commandId);
  const running = invocations.filter((i) => !finalStatuses.has(i.Status ?? 'Pending'));
  if (running.length > 0) {
    throw new CommandPending(`push ${record.generation}: ${running.length} invocation(s) still running`);
  }
  const instances: Record<string, InstanceOutcome> = {};
  for (const inv of invocations) {
    if (!inv.InstanceId) continue;
    instances[inv.InstanceId] = await instanceOutcome(deps.ssm, ref.commandId, inv);
  }

  const synced = Object.values(instances).flatMap((o) =>
    o.volumes.filter((v) => v.status === 'ok' && typeof v.generation === 'number'),
  );
  await forEachLimited(synced, volumeWriteConcurrency, async (v) => {
    try {
      await deps.volumes.setVolumeGeneration(v.volumeId, v.generation ?? record.generation);
    } catch (err) {
      // A volume the table does not know (yet, or any more) keeps its marker; acquire reads the marker.
      log.warn('could not record a volume generation', { volumeId: v.volumeId, error: errorText(err) });
    }
  });

  const outcome = pushOutcome(instances);
  const completed = await deps.pushes.completePush(config.pool, record.generation, ref.commandId, outcome);
  const metric: StatusMetric =
    outcome.status === PushStatus.Success
      ? 'PushSucceeded'
      : outcome.status === PushStatus.Partial
        ? 'PushPartial'
        : 'PushFailed';
  deps.count(metric, 1);
  const failed = Object.entries(instances)
    .filter(([, o]) => o.status !== 'Success' && o.status !== 'Undeliverable')
    .map(([id, o]) => ({ instanceId: id, status: o.status, error: o.error }));
  (outcome.status === PushStatus.Success ? log.info : log.warn).call(log, 'push completed', {
    generation: record.generation,
    commandId: ref.commandId,
    status: outcome.status,
    summary: outcome.summary,
    failed: failed.slice(0, 20),
  });
  return completed;
}

/**
 * The safety net for lost status events: collects every recent push still InProgress whose command
 * has ended. Pushes still running are left for later. Returns the pushes it completed.
 */
export async function sweepPushes(deps: StatusDeps, searchLimit = 50): Promise<PushRecord[]> {
  const open = (await deps.pushes.listPushes(deps.config.pool, searchLimit)).filter(
    (p) => p.status === PushStatus.InProgress && p.commandId,
  );
  const done: PushRecord[] = [];
  for (const push of open) {
    const commandId = push.commandId ?? '';
    const listed = await deps.ssm.send(new ListCommandsCommand({ CommandId: commandId }));
    const status = listed.Commands?.[0]?.Status;
    if (!status || !finalCommandStatuses.includes(status)) continue;
    try {
      const completed = await collectPushStatus({ commandId, generation: push.generation }, deps);
      if (completed) done.push(completed);
    } catch (err) {
      if (!(err instanceof CommandPending)) throw err;
    }
  }
  return done;
}
