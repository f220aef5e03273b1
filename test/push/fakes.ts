import { readFileSync } from 'node:fs';
import type { CommandInvocation } from '@aws-sdk/client-ssm';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import type { FanOutConfig } from '../../lambdas/fanout/config.js';
import type { FanOutLog } from '../../lambdas/fanout/fanout.js';
import {
  type NewPush,
  type PushOutcome,
  type PushRecord,
  PushStatus,
  type RejectedKeyReport,
} from '../../lambdas/shared/push-records.js';

/** Sample events copied verbatim from the AWS documentation (aws-reference/events). */
export type Fixture =
  | 's3-notification-object-created-put'
  | 's3-notification-object-removed-delete'
  | 's3-notification-test-event'
  | 'eventbridge-ssm-command-status-change';

/** A fixture as a mutable JSON object. */
export function fixture(name: Fixture): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8'));
}

export const testConfig: FanOutConfig = {
  tableName: 'volsd-web',
  pool: 'web',
  bucket: 'volsd-web-push',
  prefix: 'live/',
  syncDocument: 'Volsd-Sync-web',
  maxConcurrency: '25%',
  maxErrors: '5',
  deliveryTimeoutSeconds: 600,
  maxObjectBytes: 1024 ** 3,
};

/** An S3 event notification body for `keys` (raw keys: encode them as S3 does before passing). */
export function s3Notification(
  keys: string[],
  o: { bucket?: string; eventName?: string } = {},
): Record<string, unknown> {
  return {
    Records: keys.map((key, i) => ({
      eventVersion: '2.1',
      eventSource: 'aws:s3',
      awsRegion: 'us-east-1',
      eventTime: '2030-01-01T00:00:00.000Z',
      eventName: o.eventName ?? 'ObjectCreated:Put',
      s3: {
        s3SchemaVersion: '1.0',
        bucket: { name: o.bucket ?? testConfig.bucket, arn: `arn:aws:s3:::${o.bucket ?? testConfig.bucket}` },
        object: { key, size: 10, sequencer: `00${i}` },
      },
    })),
  };
}

/** An SQS record carrying `body`. */
export function sqsRecord(messageId: string, body: unknown): SQSRecord {
  return {
    messageId,
    receiptHandle: `${messageId}#1`,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: '0',
      SenderId: 'S3',
      ApproximateFirstReceiveTimestamp: '0',
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:volsd-web-push',
    awsRegion: 'us-east-1',
  };
}

export const sqsEvent = (...records: SQSRecord[]): SQSEvent => ({ Records: records });

export const lambdaContext = {
  functionName: 'volsd-web-fanout',
  awsRequestId: 'test',
  getRemainingTimeInMillis: () => 30_000,
} as unknown as Context;

/** A logger that keeps what it was told. */
export class MemoryLog implements FanOutLog {
  readonly lines: { level: string; message: string; attributes: Record<string, unknown> }[] = [];
  info(message: string, attributes: Record<string, unknown>) {
    this.lines.push({ level: 'info', message, attributes });
  }
  warn(message: string, attributes: Record<string, unknown>) {
    this.lines.push({ level: 'warn', message, attributes });
  }
  error(message: string, attributes: Record<string, unknown>) {
    this.lines.push({ level: 'error', message, attributes });
  }
}

/** The pool's generation, in memory; `calls` records the order of operations shared with other fakes. */
export class FakePools {
  generation = 4;
  failBump?: Error;
  constructor(private readonly calls: string[] = []) {}
  async bumpGeneration(_pool: string): Promise<number> {
    this.calls.push('bumpGeneration');
    if (this.failBump) throw this.failBump;
    this.generation++;
    return this.generation;
  }
  async getPool(_pool: string): Promise<{ generation: number }> {
    return { generation: this.generation };
  }
}

/** Push records in memory, keyed like the table (generation, or generation + rejection id). */
export class FakePushes {
  readonly records = new Map<string, PushRecord>();
  failRecord?: Error;
  constructor(private readonly calls: string[] = []) {}

  private make(input: NewPush | (Omit<NewPush, 'status'> & { status: PushStatus })): PushRecord {
    const keys = [...new Set(input.keys)];
    return {
      pool: input.pool,
      generation: input.generation,
      status: input.status,
      requestedAt: '2030-01-01T00:00:00.000Z',
      messages: input.messages,
      keyCount: keys.length,
      keys,
      rejectedCount: input.rejected.length,
      rejected: [...input.rejected],
      instances: {},
      ...(input.commandId ? { commandId: input.commandId } : {}),
      ...(input.error ? { error: input.error } : {}),
    };
  }

  async recordPush(input: NewPush): Promise<PushRecord> {
    this.calls.push(`recordPush:${input.status}`);
    if (this.failRecord) throw this.failRecord;
    const record = this.make(input);
    this.records.set(String(input.generation), record);
    return record;
  }

  async recordRejection(input: {
    pool: string;
    generation: number;
    id: string;
    messages: number;
    rejected: readonly RejectedKeyReport[];
  }): Promise<PushRecord> {
    this.calls.push('recordRejection');
    const record = this.make({ ...input, status: PushStatus.Rejected, keys: [] });
    this.records.set(`${input.generation}#REJECTED#${input.id}`, record);
    return record;
  }

  async getPush(_pool: string, generation: number): Promise<PushRecord | undefined> {
    return this.records.get(String(generation));
  }

  async findByCommand(_pool: string, commandId: string): Promise<PushRecord | undefined> {
    return [...this.records.values()].find((r) => r.commandId === commandId);
  }

  async listPushes(_pool: string, limit = 20): Promise<PushRecord[]> {
    return [...this.records.values()].reverse().slice(0, limit);
  }

  async completePush(
    _pool: string,
    generation: number,
    commandId: string,
    outcome: PushOutcome,
  ): Promise<PushRecord | undefined> {
    const record = this.records.get(String(generation));
    if (!record || record.commandId !== commandId) return undefined;
    const completed = { ...record, ...outcome, completedAt: '2030-01-01T00:01:00.000Z' };
    this.records.set(String(generation), completed);
    return completed;
  }
}

/** Volume generations, in memory. */
export class FakeVolumes {
  readonly generations = new Map<string, number>();
  readonly unknown = new Set<string>();
  async setVolumeGeneration(volumeId: string, generation: number): Promise<void> {
    if (this.unknown.has(volumeId)) throw Object.assign(new Error('gone'), { name: 'VolumeNotFound' });
    this.generations.set(volumeId, Math.max(this.generations.get(volumeId) ?? 0, generation));
  }
}

/** A VOLSD_RESULT line. */
export const resultLine = (result: Record<string, unknown>) => `VOLSD_RESULT ${JSON.stringify(result)}`;

/** Volsd-Sync's stdout for volumes synced to `generation`, with its summary line. */
export function syncStdout(
  generation: number,
  volumes: { volumeId: string; status: 'ok' | 'failed' | 'skipped' }[],
): string {
  const lines = volumes.map((v) =>
    v.status === 'ok'
      ? resultLine({
          op: 'sync',
          volumeId: v.volumeId,
          mountPath: '/srv/www',
          status: 'ok',
          generation,
          previousGeneration: generation - 1,
          filesChanged: 1,
          bytesChanged: 10,
          rejectedKeys: 0,
        })
      : v.status === 'skipped'
        ? resultLine({ op: 'sync', volumeId: v.volumeId, status: 'skipped', reason: 'not attached' })
        : resultLine({
            op: 'sync',
            volumeId: v.volumeId,
            mountPath: '/srv/www',
            status: 'failed',
            code: 'sync-failed',
            exitCode: 8,
            error: 'aws s3 sync exited 1: access denied',
            generation: generation - 1,
          }),
  );
  const failed = volumes.filter((v) => v.status === 'failed').length;
  lines.push(
    resultLine({
      op: 'sync-summary',
      status: failed ? 'failed' : 'ok',
      generation,
      volumes: volumes.length,
      ok: volumes.length - failed,
      failed,
      skipped: 0,
      keys: 3,
      directoryMarkers: 0,
      rejectedKeys: 0,
      listingFailed: false,
    }),
  );
  return `${lines.join('\n')}\n`;
}

/** A finished invocation as ListCommandInvocations (Details) shows it. */
export function invocation(
  instanceId: string,
  details: string,
  o: { stdout?: string; stderr?: string; code?: number; commandId?: string } = {},
): CommandInvocation {
  const status =
    details === 'Success'
      ? 'Success'
      : ['Pending', 'InProgress', 'Delayed'].includes(details)
        ? details
        : details === 'DeliveryTimedOut' || details === 'ExecutionTimedOut'
          ? 'TimedOut'
          : details === 'Terminated'
            ? 'Cancelled'
            : 'Failed';
  const output = `${o.stdout ?? ''}${o.stderr ? `\n----------ERROR-------\n${o.stderr}` : ''}`;
  return {
    CommandId: o.commandId ?? 'cmd-5',
    InstanceId: instanceId,
    Status: status as CommandInvocation['Status'],
    StatusDetails: details,
    CommandPlugins: [
      {
        Name: 'aws:runShellScript',
        Status: status as never,
        StatusDetails: details,
        ResponseCode: o.code ?? (details === 'Success' ? 0 : -1),
        Output: output.slice(0, 2500),
      },
    ],
  };
}
