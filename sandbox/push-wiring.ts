/**
 * The push pipeline in the sandbox, wired as the CDK construct wires it in AWS:
 *
 *   s3rver object events (keys under `live/`, as the bucket notification's prefix filter)
 *     -> S3 event notification JSON as AWS shapes it (form-URL-encoded key, eventName without `s3:`,
 *        a per-object sequencer), after a modelled delivery delay
 *     -> a LocalQueue push queue (batch size, batching window, partial batch failures, DLQ)
 *     -> the real fan-out handler (`lambdas/fanout/handler.ts`, configured from the environment)
 *     -> Volsd-Sync on every instance tagged with the pool, run for real by the simulator's agent
 *   SSM "EC2 Command Status-change Notification" events (final statuses of Volsd-Sync)
 *     -> the real push status handler (`lambdas/fanout/status-handler.ts`), retried as EventBridge's
 *        asynchronous invocation retries; plus its schedule, the sweep.
 *
 * Two gaps of s3rver are closed here:
 * - It emits no event for DeleteObjects (multi-object delete). The AWS CLI's `s3 rm --recursive` and
 *   `s3 sync --delete` delete with one DeleteObject per key, which s3rver announces, but the SDK's
 *   DeleteObjectsCommand and `s3api delete-objects` use DeleteObjects: `announceMultiDeletes`.
 * - It stores `live/../x` as `x`: its key storage is made verbatim (`agent/s3-fidelity.ts`), so a
 *   hostile key reaches the listing Volsd-Sync guards against, as in S3.
 */
import { createRequire } from 'node:module';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { DocumentName } from '../lambdas/shared/documents.js';
import { encodeEventKey } from '../lambdas/shared/push-keys.js';
import { type PushRecord, PushRecords, PushStatus } from '../lambdas/shared/push-records.js';
import { patchS3rverKeyStorage } from './agent/s3-fidelity.js';
import { LocalQueue } from './queue.js';
import type { Sandbox } from './runtime.js';

/** Options of {@link wirePushPipeline}. */
export interface PushWiringOptions {
  /** The content tree. @default 'live/' */
  prefix?: string;
  /**
   * Modelled seconds the event source gathers messages before invoking the fan-out (AWS:
   * MaximumBatchingWindowInSeconds, at most 300). @default 20
   */
  batchingWindowSeconds?: number;
  /** Messages per fan-out invocation at most (AWS: up to 10,000 with a window). @default 1000 */
  batchSize?: number;
  /** Receives before a message goes to the push DLQ. @default 5 */
  maxReceiveCount?: number;
  /** Modelled seconds from an object change to its notification in the queue. @default 1 */
  notificationDelaySeconds?: number;
  /** SSM MaxConcurrency of a push (FANOUT_MAX_CONCURRENCY). @default the function's default, '50' */
  maxConcurrency?: string;
  /** SSM MaxErrors of a push (FANOUT_MAX_ERRORS). @default the function's default, '10%' */
  maxErrors?: string;
  /** Modelled seconds between sweeps of the status function's schedule. @default 300 */
  sweepEverySeconds?: number;
}

/** What {@link wirePushPipeline} returns. */
export interface PushPipeline {
  /** The push queue (its `dlq` holds the poison messages). */
  readonly queue: LocalQueue;
  /** Every push record of the pool, oldest first (refused batches included). */
  pushes(): Promise<PushRecord[]>;
  /** Volsd-Sync commands the fan-out has sent (pushes with a command). */
  fanOuts(): Promise<number>;
  /** Object events forwarded to the queue so far. */
  readonly notifications: number;
  /** Invocations of the fan-out and of the status function so far. */
  readonly invocations: { fanOut: number; status: number };
  /**
   * Resolves when the pipeline is at rest: no message queued or in flight, every push's command
   * finished and its outcome collected. Rejects after `timeoutSeconds` modelled seconds.
   */
  drained(timeoutSeconds?: number): Promise<void>;
  /** Stops listening and closes the queue. */
  close(): void;
}

/** An s3rver object event (one record, raw key). */
interface S3rverEvent {
  Records?: {
    eventName?: string;
    s3?: {
      bucket?: { name?: string };
      object?: { key?: string; size?: number; eTag?: string; sequencer?: string };
    };
  }[];
}

const require = createRequire(import.meta.url);
let wired = false;

/** Wires the push pipeline into a started sandbox (one per sandbox). */
export async function wirePushPipeline(
  sandbox: Sandbox,
  options: PushWiringOptions = {},
): Promise<PushPipeline> {
  if (wired) throw new Error('the push pipeline is already wired in this process');
  const { cloud, accounting, wiring } = sandbox;
  const { clock } = cloud;
  const pool = sandbox.options.pool;
  const prefix = options.prefix ?? 'live/';
  const window = options.batchingWindowSeconds ?? 20;
  const delay = options.notificationDelaySeconds ?? 1;

  // The functions read their configuration once, at their first invocation: set it before.
  Object.assign(process.env, {
    PUSH_PREFIX: prefix,
    // The fan-out lists the bucket (its space check): s3rver, as the SDK reads AWS_ENDPOINT_URL_S3.
    AWS_ENDPOINT_URL_S3: sandbox.s3.endpoint,
    ...(options.maxConcurrency ? { FANOUT_MAX_CONCURRENCY: options.maxConcurrency } : {}),
    ...(options.maxErrors ? { FANOUT_MAX_ERRORS: options.maxErrors } : {}),
  });
  const { handler: fanOut } = await import('../lambdas/fanout/handler.js');
  const { statusHandler } = await import('../lambdas/fanout/status-handler.js');
  wired = true;

  const region = cloud.region;
  const accountId = cloud.accountId;
  const functionName = (name: string) => `volsd-${pool}-${name}`;
  const lambdaContext = (name: string) => ({
    functionName: functionName(name),
    awsRequestId: 'local',
    getRemainingTimeInMillis: () => 60_000,
  });
  const invocations = { fanOut: 0, status: 0 };
  const records = new PushRecords(sandbox.dynamo.doc, {
    tableName: wiring.tableName,
    now: () => clock.date(),
  });

  const queue = new LocalQueue({
    name: `volsd-${pool}-push`,
    clock,
    consumer: (event: SQSEvent) =>
      accounting.withOperation('push', async () => {
        invocations.fanOut++;
        accounting.count('lambdaInvocation', functionName('fanout'));
        const started = clock.now();
        try {
          return await (fanOut as unknown as (e: SQSEvent, c: unknown) => Promise<SQSBatchResponse>)(
            event,
            lambdaContext('fanout'),
          );
        } finally {
          // LocalQueue waits its batching window only when it starts polling an idle queue, then
          // hands over whatever arrived during an invocation at once; AWS's event source gathers
          // EVERY batch for up to the window. When messages wait behind this batch, holding the
          // invocation open until a window has passed since it started gives them their window.
          const rest = started + window - clock.now();
          if (queue.depth > event.Records.length && rest > 0) await clock.sleep(rest).catch(() => undefined);
        }
      }),
    batchSize: options.batchSize ?? 1000,
    batchingWindowSeconds: window,
    visibilityTimeoutSeconds: 360,
    maxReceiveCount: options.maxReceiveCount ?? 5,
    accounting,
    region,
    accountId,
  });

  // ---- S3 -> SQS
  let notifications = 0;
  /** Notifications on their way to the queue (the modelled delivery delay). */
  let inTransit = 0;
  let sequence = 0;
  const notify = (
    bucket: string,
    key: string,
    eventName: string,
    object: { size?: number; eTag?: string },
  ) => {
    if (bucket !== wiring.bucket || !key.startsWith(prefix)) return;
    sequence++;
    const body = JSON.stringify({
      Records: [
        {
          eventVersion: '2.1',
          eventSource: 'aws:s3',
          awsRegion: region,
          eventTime: clock.date().toISOString(),
          eventName,
          userIdentity: { principalId: 'AWS:AIDASANDBOX' },
          requestParameters: { sourceIPAddress: '127.0.0.1' },
          responseElements: { 'x-amz-request-id': `SANDBOX${sequence}`, 'x-amz-id-2': 'sandbox' },
          s3: {
            s3SchemaVersion: '1.0',
            configurationId: 'volsd-push',
            bucket: {
              name: bucket,
              ownerIdentity: { principalId: 'SANDBOX' },
              arn: `arn:aws:s3:::${bucket}`,
            },
            object: {
              key: encodeEventKey(key),
              ...(object.size !== undefined ? { size: object.size } : {}),
              ...(object.eTag !== undefined ? { eTag: object.eTag } : {}),
              // Hex, growing per event: S3 only promises order per key, which this satisfies.
              sequencer: sequence.toString(16).toUpperCase().padStart(18, '0'),
            },
          },
        },
      ],
    });
    notifications++;
    inTransit++;
    clock.setTimer(delay, () => {
      inTransit--;
      queue.send(body);
    });
  };
  const onObjectEvent = (event: S3rverEvent) => {
    for (const record of event.Records ?? []) {
      const key = record.s3?.object?.key;
      const bucket = record.s3?.bucket?.name;
      if (key === undefined || bucket === undefined) continue;
      notify(bucket, key, record.eventName ?? 'ObjectCreated:Put', record.s3?.object ?? {});
    }
  };
  const server = sandbox.s3.server;
  // Hostile keys stored verbatim (`live/../x` must not become `x`), as S3 keeps them.
  patchS3rverKeyStorage();
  announceMultiDeletes();
  server.on('event', onObjectEvent);
  sandbox.readiness.pushPipelineWired();

  // ---- SSM command status -> push status function (EventBridge, asynchronous invocation)
  const inflight = new Set<Promise<void>>();
  const invokeStatus = (event: unknown, attempt = 0): void => {
    const run = (async () => {
      await clock.sleep(attempt === 0 ? 0.5 : 2 ** attempt);
      invocations.status++;
      accounting.count('lambdaInvocation', functionName('push-status'));
      try {
        await accounting.withOperation('push', () =>
          (statusHandler as unknown as (e: unknown, c: unknown) => Promise<unknown>)(
            event,
            lambdaContext('push-status'),
          ),
        );
      } catch {
        // Lambda retries an asynchronous invocation twice; a few more here, as the schedule would.
        if (attempt < 5 && !clock.isClosed) invokeStatus(event, attempt + 1);
      }
    })().catch(() => undefined);
    inflight.add(run);
    void run.finally(() => inflight.delete(run));
  };
  // The EventBridge rule's pattern: final statuses of Volsd-Sync commands.
  const syncDocument = process.env.SYNC_DOCUMENT ?? DocumentName.Sync;
  const onCloudEvent = (event: {
    source?: string;
    'detail-type'?: string;
    detail?: { status?: string; 'document-name'?: string };
  }) => {
    if (event.source !== 'aws.ssm' || event['detail-type'] !== 'EC2 Command Status-change Notification')
      return;
    if (event.detail?.['document-name'] !== syncDocument) return;
    if (!['Success', 'Failed', 'TimedOut', 'Cancelled'].includes(event.detail?.status ?? '')) return;
    invokeStatus(structuredClone(event));
  };
  cloud.events.on('event', onCloudEvent);
  const sweepEvery = options.sweepEverySeconds ?? 300;
  let cancelSweep = () => {};
  const scheduleSweep = () => {
    cancelSweep = clock.setTimer(sweepEvery, () => {
      invokeStatus({ source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} });
      scheduleSweep();
    });
  };
  scheduleSweep();

  const all = async () => (await records.listPushes(pool, 1000)).reverse();
  let closed = false;
  return {
    queue,
    pushes: all,
    async fanOuts() {
      return (await all()).filter((p) => p.commandId !== undefined).length;
    },
    get notifications() {
      return notifications;
    },
    invocations,
    async drained(timeoutSeconds = 3600) {
      const deadline = clock.now() + timeoutSeconds;
      for (;;) {
        while (inTransit > 0) await clock.sleep(delay);
        await queue.drained();
        await Promise.all([...inflight]);
        const open = (await records.listPushes(pool, 100)).filter((p) => p.status === PushStatus.InProgress);
        if (inTransit === 0 && queue.depth === 0 && inflight.size === 0 && open.length === 0) return;
        if (clock.now() > deadline) {
          throw new Error(`push pipeline not drained after ${timeoutSeconds} modelled seconds`);
        }
        await clock.sleep(1);
      }
    },
    close() {
      if (closed) return;
      closed = true;
      cancelSweep();
      server.off('event', onObjectEvent);
      cloud.events.off('event', onCloudEvent);
      queue.close();
      wired = false;
    },
  };
}

interface DeleteContext {
  app: { emit(event: string, payload: unknown): boolean };
  params?: { bucket?: string };
  body?: unknown;
}

interface ObjectController {
  deleteMultipleObjects(ctx: DeleteContext): Promise<void>;
}

let multiDeleteAnnounced = false;

/**
 * Makes s3rver announce DeleteObjects as S3 does: one ObjectRemoved:Delete event per key, emitted on
 * the server like its own events. s3rver's router calls the object controller through its module
 * exports at request time, so wrapping the export takes effect for every s3rver in the process,
 * running or not. Idempotent.
 */
export function announceMultiDeletes(): void {
  if (multiDeleteAnnounced) return;
  const controller = require('s3rver/lib/controllers/object.js') as ObjectController;
  const original = controller.deleteMultipleObjects;
  controller.deleteMultipleObjects = async function deleteMultipleObjects(ctx) {
    await original.call(this, ctx);
    const bucket = ctx.params?.bucket ?? '';
    const result = (ctx.body as { DeleteResult?: { Deleted?: { Key?: unknown }[] } } | undefined)
      ?.DeleteResult;
    for (const deleted of result?.Deleted ?? []) {
      // The XML parser turns a key such as `123` into a number.
      if (deleted.Key === undefined || deleted.Key === null) continue;
      ctx.app.emit('event', {
        Records: [
          {
            eventName: 'ObjectRemoved:Delete',
            s3: { bucket: { name: bucket }, object: { key: String(deleted.Key) } },
          },
        ],
      });
    }
  };
  multiDeleteAnnounced = true;
}
