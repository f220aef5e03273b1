/**
 * The sync-all workflow (the original's SyncAll): an admin resync of every volume of the pool, idle
 * ones on the sync workers and attached ones on the clients, to the push bucket's tree at the pool's
 * CURRENT generation. Unlike a push it bumps nothing: the content did not change, the volumes may
 * have drifted (a file deleted or edited by hand, a failed sync). Volsd-Sync goes by tag target to
 * every instance tagged with the pool, with the fan-out's rate control; the outcome is collected with
 * the push status collection (lambdas/fanout/status.ts), which also records every synced volume's
 * generation.
 */
import { ListCommandsCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import { collectPushStatus, finalCommandStatuses, type StatusDeps } from '../fanout/status.js';
import { deployedDocumentVersion, syncMaxObjectBytes } from '../shared/commands.js';
import { commandParameters, DocumentName, getDocument } from '../shared/documents.js';
import { CommandPending, InvalidInput } from '../shared/errors.js';
import { logger } from '../shared/logger.js';
import { type PushOutcome, type PushRecord, PushStatus } from '../shared/push-records.js';
import type { Step } from '../shared/steps.js';
import { poolTag } from '../shared/tags.js';
import { poolNameSchema } from '../shared/validate.js';
import { loadSyncAllConfig } from './config.js';

/** An instance the sync did not bring current, and why. */
export interface SyncAllFailure {
  instanceId: string;
  /** The invocation's StatusDetails (Failed, TimedOut, DeliveryTimedOut...). */
  status: string;
  error: string;
}

/** What a sync-all did: the execution's output. */
export interface SyncAllSummary {
  pool: string;
  commandId: string;
  /** The pool's generation the volumes were synced to. */
  generation: number;
  /** Instances the command reached. */
  instances: number;
  succeeded: number;
  /** Instances gone before delivery (Undeliverable): not failures, as SSM counts them. */
  undeliverable: number;
  /** Volumes the script reported synced. */
  volumesSynced: number;
  failed: SyncAllFailure[];
}

/** The data of a sync-all execution. */
export interface SyncAllCtx {
  pool: string;
  reason?: string;
  /** The Volsd-Sync command, once sent. */
  commandId?: string;
  generation?: number;
  summary?: SyncAllSummary;
  error?: { Error?: string; Cause?: string };
}

function checkPool(ctx: SyncAllCtx, poolName: string): string {
  const parsed = poolNameSchema.safeParse(ctx.pool);
  if (!parsed.success)
    throw new InvalidInput(`sync-all needs a valid pool name, got ${JSON.stringify(ctx.pool)}`);
  // One function serves one pool: its documents and permissions are that pool's.
  if (parsed.data !== poolName)
    throw new InvalidInput(`this function serves pool ${poolName}, not ${parsed.data}`);
  return parsed.data;
}

/**
 * Sends Volsd-Sync to every instance tagged with the pool at its current generation (no bump). A
 * rerun after a crash past SendCommand sends a second command: harmless, a sync is idempotent.
 */
const send: Step<SyncAllCtx> = async (ctx, { repo, ssm, config }) => {
  const pool = checkPool(ctx, config.POOL_NAME);
  if (ctx.commandId) return ctx;
  const { generation } = await repo.getPool(pool);
  const rate = loadSyncAllConfig();
  // Validated against the document's own patterns, as SSM would (InvalidParameters).
  const parameters = commandParameters(getDocument(DocumentName.Sync), {
    Bucket: config.PUSH_BUCKET,
    Prefix: config.PUSH_PREFIX,
    Generation: generation,
    MaxObjectBytes: syncMaxObjectBytes(),
  });
  const out = await ssm.send(
    new SendCommandCommand({
      DocumentName: config.SYNC_DOCUMENT,
      DocumentVersion: deployedDocumentVersion,
      Targets: [{ Key: `tag:${poolTag}`, Values: [pool] }],
      Parameters: parameters,
      MaxConcurrency: rate.FANOUT_MAX_CONCURRENCY,
      MaxErrors: rate.FANOUT_MAX_ERRORS,
      TimeoutSeconds: rate.FANOUT_DELIVERY_TIMEOUT,
      Comment: `volsd sync-all ${pool} generation ${generation}`.slice(0, 100),
    }),
  );
  const commandId = out.Command?.CommandId;
  if (!commandId) throw new Error('SendCommand returned no command id');
  logger.info('sync-all sent', { pool, generation, commandId, reason: ctx.reason });
  return { ...ctx, commandId, generation };
};

/**
 * Polls the command (CommandPending until SSM reports it final: right after a tag-targeted
 * SendCommand the invocations may not be listed yet), then collects every invocation's outcome and
 * records the synced volumes' generations, and summarises.
 */
const wait: Step<SyncAllCtx> = async (ctx, { repo, ssm }) => {
  const { commandId, generation } = ctx;
  if (!commandId || generation === undefined)
    throw new InvalidInput('sync-all wait needs commandId and generation');
  const listed = await ssm.send(new ListCommandsCommand({ CommandId: commandId }));
  const status = listed.Commands?.[0]?.Status;
  if (!status || !finalCommandStatuses.includes(status)) {
    throw new CommandPending(`sync-all command ${commandId} is ${status ?? 'not listed yet'}`);
  }
  const outcome = await collectOutcome(ctx.pool, commandId, generation, { repo, ssm });
  const failed = Object.entries(outcome.instances)
    .filter(([, o]) => o.status !== 'Success' && o.status !== 'Undeliverable')
    .map(([instanceId, o]) => ({ instanceId, status: o.status, error: o.error ?? o.status }));
  const summary: SyncAllSummary = {
    pool: ctx.pool,
    commandId,
    generation,
    instances: outcome.summary.targets,
    succeeded: outcome.summary.succeeded,
    undeliverable: outcome.summary.undeliverable,
    volumesSynced: outcome.summary.volumesCurrent,
    failed,
  };
  (failed.length ? logger.warn : logger.info).call(logger, 'sync-all completed', {
    summary: { ...summary, failed: failed.slice(0, 20) },
  });
  return { ...ctx, summary };
};

/**
 * The push status collection run over a record held in memory: a sync-all is no push and leaves no
 * push record, but its outcome is read, and its volumes' generations recorded, exactly the same way.
 */
async function collectOutcome(
  pool: string,
  commandId: string,
  generation: number,
  { repo, ssm }: Pick<Parameters<Step<SyncAllCtx>>[1], 'repo' | 'ssm'>,
): Promise<PushOutcome> {
  const record: PushRecord = {
    pool,
    generation,
    status: PushStatus.InProgress,
    requestedAt: new Date(0).toISOString(),
    commandId,
    messages: 0,
    keyCount: 0,
    keys: [],
    rejectedCount: 0,
    rejected: [],
    instances: {},
  };
  let collected: PushOutcome | undefined;
  const deps: StatusDeps = {
    config: { pool },
    ssm,
    pushes: {
      getPush: async () => record,
      findByCommand: async () => record,
      listPushes: async () => [record],
      completePush: async (_pool, _generation, _commandId, outcome) => {
        collected = outcome;
        return { ...record, ...outcome };
      },
    },
    volumes: repo,
    // The collection's own log lines speak of a push: this is none, so they stay at debug.
    log: {
      info: (message, attributes) => logger.debug(`sync-all: ${message}`, attributes),
      warn: (message, attributes) => logger.debug(`sync-all: ${message}`, attributes),
      error: (message, attributes) => logger.error(`sync-all: ${message}`, attributes),
    },
    count: () => undefined,
  };
  await collectPushStatus({ commandId, generation }, deps);
  if (!collected) throw new Error(`sync-all command ${commandId}: no outcome collected`);
  return collected;
}

/** The steps of `statemachines/syncall.asl.json`, by the name its Tasks pass. */
export const syncAllSteps: Record<string, Step<SyncAllCtx>> = { send, wait };
