import { createHash, randomUUID } from 'node:crypto';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { Accounting } from './sim/accounting.js';
import type { SimClock } from './sim/clock.js';

/** A message as the local queue keeps it. */
export interface QueuedMessage {
  messageId: string;
  body: string;
  receiveCount: number;
  firstSent: number;
  /** Modelled time before which the message is invisible. */
  visibleAt: number;
}

export interface LocalQueueOptions {
  name: string;
  clock: SimClock;
  /** Lambda consumer: receives SQS events, returns partial batch failures. */
  consumer: (event: SQSEvent) => Promise<SQSBatchResponse | undefined>;
  batchSize?: number;
  /** Modelled seconds the event source waits to fill a batch (the batching window). */
  batchingWindowSeconds?: number;
  visibilityTimeoutSeconds?: number;
  /** Receives before a message moves to the DLQ (the redrive policy). */
  maxReceiveCount?: number;
  /** Modelled seconds every message stays invisible after it is sent (the queue's DelaySeconds). */
  deliveryDelaySeconds?: number;
  accounting?: Accounting;
  region?: string;
  accountId?: string;
}

/**
 * An SQS queue with a Lambda event source mapping, as the sandbox needs it: at-least-once delivery in
 * batches, a batching window, visibility timeout, partial batch failures (only the failed messages come
 * back), and a redrive policy to a DLQ after `maxReceiveCount` receives.
 */
export class LocalQueue {
  readonly dlq: QueuedMessage[] = [];
  private readonly messages: QueuedMessage[] = [];
  private polling?: Promise<void>;
  private closed = false;
  private inFlight = 0;
  /** Invocations of the consumer so far. */
  invocations = 0;
  constructor(private readonly o: LocalQueueOptions) {}

  /** SendMessage. */
  send(body: string): string {
    const messageId = randomUUID();
    const now = this.o.clock.now();
    const visibleAt = now + (this.o.deliveryDelaySeconds ?? 0);
    this.messages.push({ messageId, body, receiveCount: 0, firstSent: now, visibleAt });
    this.o.accounting?.count('awsCall', 'sqs:SendMessage');
    this.kick();
    return messageId;
  }

  /** Messages waiting or in flight. */
  get depth(): number {
    return this.messages.length;
  }

  private kick(): void {
    if (this.closed || this.polling) return;
    this.polling = this.poll().finally(() => {
      this.polling = undefined;
      if (this.messages.length > 0 && !this.closed) this.kick();
    });
  }

  private async poll(): Promise<void> {
    const { clock } = this.o;
    const window = this.o.batchingWindowSeconds ?? 0;
    if (window > 0) await clock.sleep(window).catch(() => undefined);
    while (!this.closed && this.messages.length > 0) {
      const now = clock.now();
      const visible = this.messages.filter((m) => m.visibleAt <= now);
      if (visible.length === 0) {
        const next = Math.min(...this.messages.map((m) => m.visibleAt));
        await clock.sleep(Math.max(0.05, next - now)).catch(() => undefined);
        continue;
      }
      const batch = visible.slice(0, this.o.batchSize ?? 10);
      await this.deliver(batch);
    }
  }

  private async deliver(batch: QueuedMessage[]): Promise<void> {
    const { clock } = this.o;
    const visibility = this.o.visibilityTimeoutSeconds ?? 30;
    const maxReceive = this.o.maxReceiveCount ?? 5;
    for (const m of batch) {
      m.receiveCount++;
      m.visibleAt = clock.now() + visibility;
    }
    this.o.accounting?.count('awsCall', 'sqs:ReceiveMessage');
    this.invocations++;
    this.inFlight++;
    let failed = new Set<string>();
    try {
      const response = await this.o.consumer({ Records: batch.map((m) => this.record(m)) });
      failed = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
    } catch {
      failed = new Set(batch.map((m) => m.messageId)); // the whole batch returns to the queue
    } finally {
      this.inFlight--;
    }
    for (const m of batch) {
      if (!failed.has(m.messageId)) {
        this.remove(m);
        this.o.accounting?.count('awsCall', 'sqs:DeleteMessage');
      } else if (m.receiveCount >= maxReceive) {
        this.remove(m);
        this.dlq.push(m);
      } else {
        // Backoff like a visibility timeout: the failed message comes back later.
        m.visibleAt = clock.now() + Math.min(visibility, 2 ** m.receiveCount);
      }
    }
  }

  private remove(m: QueuedMessage): void {
    const i = this.messages.indexOf(m);
    if (i >= 0) this.messages.splice(i, 1);
  }

  private record(m: QueuedMessage): SQSRecord {
    const region = this.o.region ?? 'us-east-1';
    const account = this.o.accountId ?? '123456789012';
    return {
      messageId: m.messageId,
      receiptHandle: `${m.messageId}#${m.receiveCount}`,
      body: m.body,
      attributes: {
        ApproximateReceiveCount: String(m.receiveCount),
        SentTimestamp: String(Math.round(m.firstSent * 1000)),
        SenderId: 'AIDAEVENTBRIDGE',
        ApproximateFirstReceiveTimestamp: String(Math.round(m.firstSent * 1000)),
      },
      messageAttributes: {},
      md5OfBody: createHash('md5').update(m.body).digest('hex'),
      eventSource: 'aws:sqs',
      eventSourceARN: `arn:aws:sqs:${region}:${account}:${this.o.name}`,
      awsRegion: region,
    };
  }

  /** Resolves when the queue is empty and no batch is being processed. */
  async drained(): Promise<void> {
    while (this.messages.length > 0 || this.inFlight > 0 || this.polling) {
      await (this.polling ?? this.o.clock.sleep(0.1).catch(() => undefined));
    }
  }

  close(): void {
    this.closed = true;
  }
}
