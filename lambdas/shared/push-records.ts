/**
 * Push records in the volume table: one item per push (pk `POOL#<pool>`, sk `PUSH#<12-digit gen>`,
 * `keys.push`), written by the fan-out when it sends Volsd-Sync and completed by the push status
 * function with the outcome on every instance. A batch whose keys were all refused makes no push (no
 * new generation) but is still reported: its record sits under the pool's generation at the time,
 * sk `PUSH#<gen>#REJECTED#<id>`, so `listPushes` shows it in order after the push of that generation.
 *
 * Items stay far below DynamoDB's 400 KB: the key lists are cut to their first entries (the counts stay
 * exact), and past `maxInstancesRecorded` instances only the failed ones are kept individually.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { InvalidInput } from './errors.js';
import { keys } from './table-schema.js';
import { parseOrThrow, poolNameSchema } from './validate.js';

/** Where a push stands. */
export const PushStatus = {
  /** Volsd-Sync was sent; the outcome is not collected yet. */
  InProgress: 'InProgress',
  /** Every instance reached (and every volume on it) is current. */
  Success: 'Success',
  /** Some instances are current, some failed: `instances` names the failed ones and why. */
  Partial: 'Partial',
  /** No instance became current, or Volsd-Sync could not be sent (`error`). */
  Failed: 'Failed',
  /** Every key of the batch was refused: no generation, no command. */
  Rejected: 'Rejected',
  /**
   * The content would not fit the pool's volumes: refused as a whole (no generation, no command, no
   * volume touched), `error` says why; the volumes grow and the growth's push brings the content.
   */
  Refused: 'Refused',
} as const;

export type PushStatus = (typeof PushStatus)[keyof typeof PushStatus];

/** A key the fan-out refused, with the reason (`KeyRejection` names). */
export interface RejectedKeyReport {
  key: string;
  reason: string;
}

/** One volume's result on an instance, from Volsd-Sync's VOLSD_RESULT lines. */
export interface VolumeOutcome {
  volumeId: string;
  status: 'ok' | 'failed' | 'skipped';
  /** The generation the volume's marker holds after the sync. */
  generation?: number;
  /** Why it failed or was skipped. */
  error?: string;
}

/** What the push did on one instance. */
export interface InstanceOutcome {
  /** The SSM invocation's StatusDetails: Success, Failed, DeliveryTimedOut, Undeliverable, Terminated... */
  status: string;
  /** Why it failed (script error code and message, or the SSM status and its error output). */
  error?: string;
  volumes: VolumeOutcome[];
}

/** Totals over the instances of a completed push. */
export interface PushSummary {
  /** Instances the command reached (tag target at send time). */
  targets: number;
  succeeded: number;
  failed: number;
  /** Instances gone before delivery (Undeliverable): they do not count as failed, as in SSM. */
  undeliverable: number;
  volumesCurrent: number;
  volumesFailed: number;
  /** Instances counted here but not listed in `instances` (see `maxInstancesRecorded`). */
  instancesOmitted: number;
}

/** A push as the table records it. */
export interface PushRecord {
  pool: string;
  /** The content generation the push makes current (the pool's generation when refused). */
  generation: number;
  status: PushStatus;
  /** When the fan-out handled the batch (ISO). */
  requestedAt: string;
  /** When the outcome was collected (ISO). */
  completedAt?: string;
  /** The Volsd-Sync command. */
  commandId?: string;
  /** SQS messages in the batch. */
  messages: number;
  /** Distinct valid keys. */
  keyCount: number;
  /** The first valid keys (decoded). */
  keys: string[];
  rejectedCount: number;
  /** The first refused keys. */
  rejected: RejectedKeyReport[];
  /** Outcome per instance id, once collected. */
  instances: Record<string, InstanceOutcome>;
  summary?: PushSummary;
  /** Why the push failed as a whole (e.g. SendCommand refused). */
  error?: string;
}

/** Fields the fan-out gives for a new record. */
export interface NewPush {
  pool: string;
  generation: number;
  status: typeof PushStatus.InProgress | typeof PushStatus.Failed;
  commandId?: string;
  messages: number;
  keys: readonly string[];
  rejected: readonly RejectedKeyReport[];
  error?: string;
}

/** The outcome the status function writes. */
export interface PushOutcome {
  status: typeof PushStatus.Success | typeof PushStatus.Partial | typeof PushStatus.Failed;
  instances: Record<string, InstanceOutcome>;
  summary: PushSummary;
}

/** Valid keys kept in a record. */
export const maxKeysRecorded = 50;
/** Refused keys kept in a record. */
export const maxRejectedRecorded = 100;
/** Instances kept individually; past it only failed ones are. */
export const maxInstancesRecorded = 1000;

const isConditionFailure = (err: unknown): boolean =>
  err instanceof ConditionalCheckFailedException ||
  (err instanceof Error && err.name === 'ConditionalCheckFailedException');

const generationSchema = z.number().int().min(0).max(999_999_999_999);
const limitSchema = z.number().int().min(1).max(1000);

const pushPrefix = 'PUSH#';
const rejectionKey = (pool: string, generation: number, id: string) => {
  const base = keys.push(pool, generation);
  return { pk: base.pk, sk: `${base.sk}#REJECTED#${id}` };
};
const refusalKey = (pool: string, generation: number, id: string) => {
  const base = keys.push(pool, generation);
  return { pk: base.pk, sk: `${base.sk}#REFUSED#${id}` };
};

/** Options of {@link PushRecords}. */
export interface PushRecordsOptions {
  tableName: string;
  /** Clock for timestamps; the sandbox gives its modelled one. */
  now?: () => Date;
}

/** Reads and writes push records. */
export class PushRecords {
  private readonly tableName: string;
  private readonly now: () => Date;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    options: PushRecordsOptions,
  ) {
    this.tableName = options.tableName;
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Writes the record of a new push (its generation was just taken with `bumpGeneration`, so it is
   * new). A record already there for that generation is returned unchanged: a retried write is harmless.
   */
  async recordPush(input: NewPush): Promise<PushRecord> {
    const pool = parseOrThrow(poolNameSchema, input.pool, 'pool');
    const generation = parseOrThrow(generationSchema, input.generation, 'generation');
    const record = this.newRecord({ ...input, pool, generation });
    return this.putOnce(keys.push(pool, generation), record);
  }

  /**
   * Writes the report of a batch whose keys were all refused, under the pool's current `generation`;
   * `id` (the batch's first message id) keeps two such batches apart and a redelivered one single.
   */
  async recordRejection(input: {
    pool: string;
    generation: number;
    id: string;
    messages: number;
    rejected: readonly RejectedKeyReport[];
  }): Promise<PushRecord> {
    const pool = parseOrThrow(poolNameSchema, input.pool, 'pool');
    const generation = parseOrThrow(generationSchema, input.generation, 'generation');
    const id = parseOrThrow(z.string().regex(/^[A-Za-z0-9-]{1,100}$/), input.id, 'id');
    const record = this.newRecord({
      pool,
      generation,
      status: PushStatus.Rejected,
      messages: input.messages,
      keys: [],
      rejected: input.rejected,
    });
    return this.putOnce(rejectionKey(pool, generation, id), record);
  }

  /**
   * Writes the report of a batch refused as a whole because its content would not fit the volumes
   * (`error` says how much, and what the volumes hold), under the pool's current `generation`; `id`
   * (the batch's first message id) keeps a redelivered batch single.
   */
  async recordRefusal(input: {
    pool: string;
    generation: number;
    id: string;
    messages: number;
    keys: readonly string[];
    rejected: readonly RejectedKeyReport[];
    error: string;
  }): Promise<PushRecord> {
    const pool = parseOrThrow(poolNameSchema, input.pool, 'pool');
    const generation = parseOrThrow(generationSchema, input.generation, 'generation');
    const id = parseOrThrow(z.string().regex(/^[A-Za-z0-9-]{1,100}$/), input.id, 'id');
    const record = this.newRecord({ ...input, pool, generation, status: PushStatus.Refused });
    return this.putOnce(refusalKey(pool, generation, id), record);
  }

  /** The push that made `generation` current, or undefined. */
  async getPush(poolName: string, generation: number): Promise<PushRecord | undefined> {
    const pool = parseOrThrow(poolNameSchema, poolName, 'pool');
    parseOrThrow(generationSchema, generation, 'generation');
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: keys.push(pool, generation), ConsistentRead: true }),
    );
    return out.Item ? toPush(out.Item) : undefined;
  }

  /** The pool's newest pushes (and refused batches), newest first. */
  async listPushes(poolName: string, limit = 20): Promise<PushRecord[]> {
    const pool = parseOrThrow(poolNameSchema, poolName, 'pool');
    const max = parseOrThrow(limitSchema, limit, 'limit');
    const out: PushRecord[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': keys.pool(pool).pk, ':prefix': pushPrefix },
          ScanIndexForward: false,
          Limit: max - out.length,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) out.push(toPush(item));
      startKey = page.LastEvaluatedKey;
    } while (startKey && out.length < max);
    return out;
  }

  /** The push whose Volsd-Sync command is `commandId`, among the pool's newest `searchLimit` records. */
  async findByCommand(
    poolName: string,
    commandId: string,
    searchLimit = 50,
  ): Promise<PushRecord | undefined> {
    const recent = await this.listPushes(poolName, searchLimit);
    return recent.find((p) => p.commandId === commandId);
  }

  /**
   * Writes the collected outcome of the push of `generation`, only if its command is `commandId`.
   * Returns the updated record; undefined when there is no such push.
   */
  async completePush(
    poolName: string,
    generation: number,
    commandId: string,
    outcome: PushOutcome,
  ): Promise<PushRecord | undefined> {
    const pool = parseOrThrow(poolNameSchema, poolName, 'pool');
    parseOrThrow(generationSchema, generation, 'generation');
    const instances = boundInstances(outcome.instances);
    const omitted = Object.keys(outcome.instances).length - Object.keys(instances).length;
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.push(pool, generation),
          UpdateExpression:
            'SET #status = :status, instances = :instances, summary = :summary, completedAt = :now',
          ConditionExpression: 'commandId = :cid',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':status': outcome.status,
            ':instances': instances,
            ':summary': { ...outcome.summary, instancesOmitted: outcome.summary.instancesOmitted + omitted },
            ':cid': commandId,
            ':now': this.now().toISOString(),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toPush(out.Attributes);
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  private newRecord(input: NewPush | (Omit<NewPush, 'status'> & { status: PushStatus })): PushRecord {
    if (input.messages < 0) throw new InvalidInput('messages must not be negative');
    const validKeys = [...new Set(input.keys)];
    return {
      pool: input.pool,
      generation: input.generation,
      status: input.status,
      requestedAt: this.now().toISOString(),
      messages: input.messages,
      keyCount: validKeys.length,
      keys: validKeys.slice(0, maxKeysRecorded),
      rejectedCount: input.rejected.length,
      rejected: input.rejected.slice(0, maxRejectedRecorded).map((r) => ({ key: r.key, reason: r.reason })),
      instances: {},
      ...(input.commandId ? { commandId: input.commandId } : {}),
      ...(input.error ? { error: input.error.slice(0, 1000) } : {}),
    };
  }

  private async putOnce(key: { pk: string; sk: string }, record: PushRecord): Promise<PushRecord> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...key, ...record },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return record;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const existing = await this.doc.send(
        new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }),
      );
      return toPush(existing.Item);
    }
  }
}

/** Keeps every instance up to the bound; past it, only the failed ones. */
function boundInstances(instances: Record<string, InstanceOutcome>): Record<string, InstanceOutcome> {
  const entries = Object.entries(instances);
  if (entries.length <= maxInstancesRecorded) return instances;
  const failed = entries.filter(([, o]) => o.status !== 'Success');
  return Object.fromEntries(failed.slice(0, maxInstancesRecorded));
}

const volumeOutcomeSchema = z.object({
  volumeId: z.string(),
  status: z.enum(['ok', 'failed', 'skipped']),
  generation: z.number().optional(),
  error: z.string().optional(),
});

const pushItemSchema = z.object({
  pool: z.string(),
  generation: z.number(),
  status: z.enum([
    PushStatus.InProgress,
    PushStatus.Success,
    PushStatus.Partial,
    PushStatus.Failed,
    PushStatus.Rejected,
    PushStatus.Refused,
  ]),
  requestedAt: z.string(),
  completedAt: z.string().optional(),
  commandId: z.string().optional(),
  messages: z.number().default(0),
  keyCount: z.number().default(0),
  keys: z.array(z.string()).default([]),
  rejectedCount: z.number().default(0),
  rejected: z.array(z.object({ key: z.string(), reason: z.string() })).default([]),
  instances: z
    .record(
      z.object({ status: z.string(), error: z.string().optional(), volumes: z.array(volumeOutcomeSchema) }),
    )
    .default({}),
  summary: z
    .object({
      targets: z.number(),
      succeeded: z.number(),
      failed: z.number(),
      undeliverable: z.number(),
      volumesCurrent: z.number(),
      volumesFailed: z.number(),
      instancesOmitted: z.number(),
    })
    .optional(),
  error: z.string().optional(),
});

function toPush(item: Record<string, unknown> | undefined): PushRecord {
  if (!item) throw new InvalidInput('push item missing');
  return pushItemSchema.parse(item) as PushRecord;
}
