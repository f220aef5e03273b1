/**
 * The push fan-out: one SQS batch of S3 event notifications from the push bucket becomes at most one
 * push. Every key is validated (refused keys are reported, the rest proceeds); when at least one valid
 * change remains, the pool's content generation is bumped once for the whole batch and Volsd-Sync is
 * sent to every instance tagged with the pool (clients and sync workers) by tag target, with SSM's rate
 * control; the push is recorded. The batching window of the queue's event source is what coalesces a
 * burst (`aws s3 sync` of thousands of files) into a few pushes.
 *
 * Order matters for freshness: the generation is bumped BEFORE the command is sent, so an acquire in
 * flight either reads the new generation (and syncs its volume itself) or has mounted its volume
 * before the bump, in which case the tag-targeted command reaches it.
 */
import type { SSMClient } from '@aws-sdk/client-ssm';
import { z } from 'zod';
import { sendPoolSync } from '../shared/pool-sync.js';
import { validateKey } from '../shared/push-keys.js';
import type { PushRecord, PushRecords, RejectedKeyReport } from '../shared/push-records.js';
import { PushStatus } from '../shared/push-records.js';
import type { CapacityVerdict } from './capacity.js';
import type { FanOutConfig } from './config.js';

/** The part of a logger the fan-out uses (Powertools' Logger fits). */
export interface FanOutLog {
  info(message: string, attributes: Record<string, unknown>): void;
  warn(message: string, attributes: Record<string, unknown>): void;
  error(message: string, attributes: Record<string, unknown>): void;
}

/** Counters the fan-out reports (CloudWatch metrics in the handler). */
export type FanOutMetric =
  | 'PushStarted'
  | 'PushSendFailed'
  | 'PushKeysRejected'
  | 'PushMessagesMalformed'
  | 'PushRefusedNoSpace';

/** Everything {@link fanOutBatch} needs, injected so tests and the sandbox need no environment. */
export interface FanOutDeps {
  config: FanOutConfig;
  ssm: Pick<SSMClient, 'send'>;
  /** The pool's generation (a `VolumeRepository` fits). */
  pools: {
    bumpGeneration(pool: string): Promise<number>;
    getPool(pool: string): Promise<{ generation: number }>;
  };
  pushes: Pick<PushRecords, 'recordPush' | 'recordRejection'> & Partial<Pick<PushRecords, 'recordRefusal'>>;
  /**
   * The space check (`capacity.ts`): asked before a push is applied; a push that would not fit the
   * pool's volumes is refused as a whole (recorded with `pushes.recordRefusal`). Absent: no check.
   */
  capacity?: { check(): Promise<CapacityVerdict> };
  log: FanOutLog;
  count: (metric: FanOutMetric, n: number) => void;
}

/** The fields of an SQS record the fan-out reads; an `SQSRecord` fits. */
export interface PushMessage {
  messageId: string;
  body: string;
}

/** What {@link fanOutBatch} did with a batch. */
export interface FanOutResult {
  /** Messages to return to the queue (SQS partial batch failure): retried, then the DLQ. */
  failedMessageIds: string[];
  /** The push made, or the report of a batch whose keys were all refused. */
  push?: PushRecord;
  /** Distinct valid keys. */
  validKeys: number;
  rejected: RejectedKeyReport[];
  /** Keys outside the prefix, directory markers, test events. */
  ignored: number;
}

// The fields of an S3 event notification the fan-out needs (notification-content-structure).
const s3RecordSchema = z.object({
  eventName: z.string(),
  s3: z.object({
    bucket: z.object({ name: z.string() }),
    // `size` is in ObjectCreated records only (bytes).
    object: z.object({
      key: z.string(),
      size: z.number().nonnegative().optional(),
      sequencer: z.string().optional(),
    }),
  }),
});
const notificationSchema = z.object({ Records: z.array(s3RecordSchema).min(1) });
// Sent once when the notification is configured: nothing to push.
const testEventSchema = z.object({ Event: z.literal('s3:TestEvent') });

/** Reason of a key whose object exceeds `maxObjectBytes` (beside Volsd-Sync's `KeyRejection` names). */
export const tooLarge = 'too-large';

type Classified =
  | { kind: 'malformed'; error: string }
  | { kind: 'parsed'; valid: string[]; rejected: RejectedKeyReport[]; ignored: number };

function classify(message: PushMessage, config: FanOutConfig): Classified {
  let json: unknown;
  try {
    json = JSON.parse(message.body);
  } catch {
    return { kind: 'malformed', error: 'body is not JSON' };
  }
  if (testEventSchema.safeParse(json).success) return { kind: 'parsed', valid: [], rejected: [], ignored: 1 };
  const parsed = notificationSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      kind: 'malformed',
      error: issue ? `${issue.path.join('.')}: ${issue.message}` : 'not an S3 event',
    };
  }
  const valid: string[] = [];
  const rejected: RejectedKeyReport[] = [];
  let ignored = 0;
  for (const record of parsed.data.Records) {
    // Another bucket's events have no business here: not content of this pool.
    if (record.s3.bucket.name !== config.bucket || !/^Object(Created|Removed):/.test(record.eventName)) {
      ignored++;
      continue;
    }
    const verdict = validateKey(record.s3.object.key, { prefix: config.prefix });
    // No bucket policy can limit a PutObject's size, so the limit is held here, at the edge. Only a
    // creation brings bytes: a removal goes through whatever its record says.
    const created = record.eventName.startsWith('ObjectCreated:');
    const size = record.s3.object.size;
    if (verdict.kind === 'valid' && created && size !== undefined && size > config.maxObjectBytes) {
      rejected.push({ key: verdict.key, reason: tooLarge });
    } else if (verdict.kind === 'valid') valid.push(verdict.key);
    else if (verdict.kind === 'rejected') rejected.push({ key: verdict.key, reason: verdict.reason });
    else ignored++;
  }
  return { kind: 'parsed', valid, rejected, ignored };
}

const errorText = (err: unknown) =>
  err instanceof Error ? `${err.name}: ${err.message}`.slice(0, 500) : String(err).slice(0, 500);

/**
 * Handles one batch. Malformed messages fail alone (they reach the DLQ after the queue's retries).
 * If the push cannot be made (generation, SendCommand or the record failed), every message that
 * carried a key fails, so the batch is retried as a new push; test events and messages with nothing
 * under the prefix succeed whatever happens.
 */
export async function fanOutBatch(messages: readonly PushMessage[], deps: FanOutDeps): Promise<FanOutResult> {
  const { config, log } = deps;
  const malformed: string[] = [];
  const carriers: string[] = [];
  const valid = new Set<string>();
  const rejected: RejectedKeyReport[] = [];
  let ignored = 0;
  for (const message of messages) {
    const c = classify(message, config);
    if (c.kind === 'malformed') {
      malformed.push(message.messageId);
      log.warn('push message is not an S3 event notification', {
        messageId: message.messageId,
        error: c.error,
      });
      continue;
    }
    for (const key of c.valid) valid.add(key);
    rejected.push(...c.rejected);
    ignored += c.ignored;
    if (c.valid.length > 0 || c.rejected.length > 0) carriers.push(message.messageId);
  }
  if (malformed.length) deps.count('PushMessagesMalformed', malformed.length);
  if (rejected.length) {
    deps.count('PushKeysRejected', rejected.length);
    log.warn('push keys refused', { rejected: rejected.slice(0, 20), count: rejected.length });
  }
  const result = (failed: string[], push?: PushRecord): FanOutResult => ({
    failedMessageIds: [...malformed, ...failed],
    validKeys: valid.size,
    rejected,
    ignored,
    ...(push ? { push } : {}),
  });

  if (valid.size === 0) {
    if (rejected.length === 0) return result([]);
    try {
      const { generation } = await deps.pools.getPool(config.pool);
      const push = await deps.pushes.recordRejection({
        pool: config.pool,
        generation,
        id: carriers[0] ?? 'batch',
        messages: messages.length,
        rejected,
      });
      return result([], push);
    } catch (err) {
      log.error('could not record refused keys', { error: errorText(err) });
      return result(carriers);
    }
  }

  if (deps.capacity) {
    let verdict: CapacityVerdict;
    try {
      verdict = await deps.capacity.check();
    } catch (err) {
      log.error("could not check the push against the volumes' space", { error: errorText(err) });
      return result(carriers);
    }
    if (verdict.growingTo !== undefined)
      log.info('the pool grows', {
        treeBytes: verdict.treeBytes,
        fsBytes: verdict.fsBytes,
        targetGiB: verdict.growingTo,
      });
    if (!verdict.fits) {
      // Refused as a whole: no generation, no command. The grow function makes the push once the
      // volumes are grown; the messages are done (retrying them could not make the content fit).
      deps.count('PushRefusedNoSpace', 1);
      log.error("push refused: the content does not fit the pool's volumes", {
        treeBytes: verdict.treeBytes,
        fsBytes: verdict.fsBytes,
        growingTo: verdict.growingTo,
      });
      try {
        if (!deps.pushes.recordRefusal) throw new Error('no refusal record');
        const { generation } = await deps.pools.getPool(config.pool);
        const push = await deps.pushes.recordRefusal({
          pool: config.pool,
          generation,
          id: carriers[0] ?? 'batch',
          messages: messages.length,
          keys: [...valid],
          rejected,
          error: verdict.reason ?? 'no-space',
        });
        return result([], push);
      } catch (err) {
        log.error('could not record the refused push', { error: errorText(err) });
        return result(carriers);
      }
    }
  }

  let generation: number;
  try {
    generation = await deps.pools.bumpGeneration(config.pool);
  } catch (err) {
    log.error('could not bump the pool generation', { error: errorText(err) });
    return result(carriers);
  }

  const base = {
    pool: config.pool,
    generation,
    messages: messages.length,
    keys: [...valid],
    rejected,
  };
  let commandId: string;
  try {
    commandId = await sendSync(deps, generation);
  } catch (err) {
    deps.count('PushSendFailed', 1);
    log.error('Volsd-Sync could not be sent', { generation, error: errorText(err) });
    // Reported, then retried: the retry is a new push with a new generation.
    await deps.pushes
      .recordPush({ ...base, status: PushStatus.Failed, error: `SendCommand: ${errorText(err)}` })
      .catch((e: unknown) => log.error('could not record the failed push', { error: errorText(e) }));
    return result(carriers);
  }

  try {
    const push = await deps.pushes.recordPush({ ...base, status: PushStatus.InProgress, commandId });
    deps.count('PushStarted', 1);
    log.info('push started', { generation, commandId, keys: valid.size, rejected: rejected.length });
    return result([], push);
  } catch (err) {
    // The command runs unrecorded; the retried batch makes a recorded push (syncing is idempotent).
    log.error('could not record the push', { generation, commandId, error: errorText(err) });
    return result(carriers);
  }
}

/** Sends Volsd-Sync to every instance tagged with the pool; returns the command id. */
function sendSync(deps: FanOutDeps, generation: number): Promise<string> {
  return sendPoolSync(deps.ssm, deps.config, {
    generation,
    comment: `volsd push ${deps.config.pool} generation ${generation}`,
  });
}
