import { Duration } from 'aws-cdk-lib';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

/** Props of {@link createQueueWithDlq}. */
export interface QueueWithDlqProps {
  /**
   * How long a received message stays hidden. For a Lambda consumer, at least six times the
   * function timeout (AWS guidance), so a retried batch never overlaps the one still running.
   */
  readonly visibilityTimeout: Duration;
  /**
   * Receives before a message moves to the DLQ: bounded retries for poison messages.
   * @default 5
   */
  readonly maxReceiveCount?: number;
  /**
   * How long every message stays invisible after it is sent (the queue's DelaySeconds).
   * @default none
   */
  readonly deliveryDelay?: Duration;
}

/** A work queue and its dead-letter queue. */
export interface QueueWithDlq {
  /** The work queue (encrypted, TLS only, redrives to `deadLetterQueue`). */
  readonly queue: Queue;
  /** The dead-letter queue (encrypted, TLS only, 14 days retention so nothing is lost over a holiday). */
  readonly deadLetterQueue: Queue;
}

/**
 * Creates a work queue and its DLQ with Volsd's defaults: SSE-SQS encryption (works with S3 and
 * EventBridge as senders without a key policy), TLS-only queue policies, 14-day DLQ retention.
 */
export function createQueueWithDlq(scope: Construct, id: string, props: QueueWithDlqProps): QueueWithDlq {
  const deadLetterQueue = createDeadLetterQueue(scope, `${id}Dlq`);
  const queue = new Queue(scope, id, {
    encryption: QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    visibilityTimeout: props.visibilityTimeout,
    retentionPeriod: Duration.days(4),
    deadLetterQueue: { queue: deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
    deliveryDelay: props.deliveryDelay,
  });
  return { queue, deadLetterQueue };
}

/**
 * A dead-letter queue alone (for EventBridge targets, which take a DLQ but no work queue): SSE-SQS,
 * TLS only, 14 days retention.
 */
export function createDeadLetterQueue(scope: Construct, id: string): Queue {
  return new Queue(scope, id, {
    encryption: QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
}
