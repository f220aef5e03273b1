import { Duration, FeatureFlags, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  EventType,
  type NotificationKeyFilter,
  ObjectOwnership,
} from 'aws-cdk-lib/aws-s3';
import { SqsDestination } from 'aws-cdk-lib/aws-s3-notifications';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { S3_SERVER_ACCESS_LOGS_USE_BUCKET_POLICY } from 'aws-cdk-lib/cx-api';
import { Construct } from 'constructs';
import { createQueueWithDlq } from './queues.js';

/** The key prefix of the canonical content tree in the push bucket. */
export const livePrefix = 'live/';

/** Props of {@link PushBucket}. */
export interface PushBucketProps {
  /**
   * Customer managed KMS key for the push bucket. Without one, objects are encrypted with S3 managed
   * keys (SSE-S3), which sync workers and hosts can read without any KMS permission.
   * @default SSE-S3
   */
  readonly encryptionKey?: IKey;
  /**
   * How long replaced and deleted object versions are kept (a window to restore a bad push).
   * @default Duration.days(30)
   */
  readonly noncurrentVersionExpiration?: Duration;
  /**
   * How long server access logs are kept.
   * @default Duration.days(90)
   */
  readonly accessLogExpiration?: Duration;
  /**
   * What happens to the buckets when they leave the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Visibility timeout of the push queue: at least six times the fan-out function's timeout.
   * @default Duration.minutes(6)
   */
  readonly queueVisibilityTimeout?: Duration;
  /**
   * Receives of a push message before it moves to the push DLQ.
   * @default 5
   */
  readonly maxReceiveCount?: number;
}

/**
 * The push bucket: `live/` is the canonical content tree, and a push is `aws s3 cp|sync|rm` under it.
 * Versioned (old versions expire), public access blocked, TLS only, encrypted, server access logs to a
 * log bucket. Object created/removed events under `live/` go to the push queue (S3 event notification
 * records, `Records[].s3.object.key` URL-encoded), with its DLQ; the fan-out consumer is wired later.
 */
export class PushBucket extends Construct {
  /** The push bucket. */
  public readonly bucket: Bucket;
  /** Bucket receiving the push bucket's server access logs. */
  public readonly accessLogBucket: Bucket;
  /** Queue of S3 object events under `live/`. */
  public readonly queue: Queue;
  /** Dead-letter queue of `queue`. */
  public readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: PushBucketProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    // Server access log delivery only supports SSE-S3 on the target bucket. With the feature flag it
    // is granted by bucket policy and ACLs can stay disabled; without it CDK needs the legacy ACL.
    const logsByPolicy = FeatureFlags.of(this).isEnabled(S3_SERVER_ACCESS_LOGS_USE_BUCKET_POLICY) === true;
    this.accessLogBucket = new Bucket(this, 'AccessLogs', {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: logsByPolicy ? ObjectOwnership.BUCKET_OWNER_ENFORCED : ObjectOwnership.OBJECT_WRITER,
      lifecycleRules: [{ id: 'expire-logs', expiration: props.accessLogExpiration ?? Duration.days(90) }],
      removalPolicy,
    });
    Validations.of(this.accessLogBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the access log bucket; logging it to itself would loop and to another bucket recurse.',
    });

    this.bucket = new Bucket(this, 'Bucket', {
      versioned: true,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      ...(props.encryptionKey
        ? { encryption: BucketEncryption.KMS, encryptionKey: props.encryptionKey, bucketKeyEnabled: true }
        : { encryption: BucketEncryption.S3_MANAGED }),
      serverAccessLogsBucket: this.accessLogBucket,
      serverAccessLogsPrefix: 'push-bucket/',
      lifecycleRules: [
        {
          id: 'expire-noncurrent-versions',
          noncurrentVersionExpiration: props.noncurrentVersionExpiration ?? Duration.days(30),
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
        { id: 'remove-expired-delete-markers', expiredObjectDeleteMarker: true },
      ],
      removalPolicy,
    });

    const { queue, deadLetterQueue } = createQueueWithDlq(this, 'Queue', {
      visibilityTimeout: props.queueVisibilityTimeout ?? Duration.minutes(6),
      maxReceiveCount: props.maxReceiveCount,
    });
    this.queue = queue;
    this.deadLetterQueue = deadLetterQueue;

    const destination = new SqsDestination(queue);
    const filter: NotificationKeyFilter = { prefix: livePrefix };
    this.bucket.addEventNotification(EventType.OBJECT_CREATED, destination, filter);
    this.bucket.addEventNotification(EventType.OBJECT_REMOVED, destination, filter);
    acknowledgeNotificationsHandler(this);
  }
}

/**
 * CDK configures bucket notifications through one singleton custom resource per stack (to break the
 * bucket <-> queue policy cycle CloudFormation cannot order); its code and role are CDK's own.
 */
function acknowledgeNotificationsHandler(scope: Construct): void {
  const stack = Stack.of(scope);
  const handler = stack.node.children.find((c) => c.node.id.startsWith('BucketNotificationsHandler'));
  if (!handler) return;
  const reason = "CDK's own bucket-notifications custom resource; its code and role are not ours to change.";
  Validations.of(handler).acknowledge({
    id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    reason,
  });
  Validations.of(handler).acknowledge({ id: 'AwsSolutions-IAM5[Resource::*]', reason });
}
