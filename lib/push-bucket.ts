import {
  CustomResourceProviderBase,
  Duration,
  FeatureFlags,
  RemovalPolicy,
  Stack,
  Validations,
} from 'aws-cdk-lib';
import {
  AccountRootPrincipal,
  AnyPrincipal,
  Effect,
  PolicyStatement,
  Role,
  ServicePrincipal,
} from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  BucketNotificationDestinationType,
  EventType,
  type IBucketNotificationDestination,
  type NotificationKeyFilter,
  ObjectOwnership,
} from 'aws-cdk-lib/aws-s3';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { S3_SERVER_ACCESS_LOGS_USE_BUCKET_POLICY } from 'aws-cdk-lib/cx-api';
import { Construct } from 'constructs';
import { acknowledgeWildcards } from './nag.js';
import { createQueueWithDlq } from './queues.js';

/** The key prefix of the canonical content tree in the push bucket. */
export const livePrefix = 'live/';

/** The object writes the push bucket's policy reserves to the named writers. */
export const pushWriteActions = ['s3:PutObject', 's3:DeleteObject', 's3:DeleteObjectVersion'] as const;

/** Props of {@link PushBucket}. */
export interface PushBucketProps {
  /**
   * IAM principal ARNs (role, user or root; `ArnLike` wildcards allowed) that may write objects,
   * besides `publisherRole`. Every other principal is denied by the bucket policy, whatever its own
   * IAM policies allow.
   * @default [] (only the publisher role)
   */
  readonly writerArns?: readonly string[];
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
   * What happens to the buckets when they leave the stack. With DESTROY they are also emptied first
   * (every object version and delete marker, by CDK's `Custom::S3AutoDeleteObjects`): CloudFormation
   * cannot delete a bucket that holds anything, and the push bucket is versioned.
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
 * log bucket. Only `publisherRole` and the named `writerArns` may write objects (a bucket policy Deny for
 * every other principal). Object created/removed events under `live/` go to the push queue (S3 event notification
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
  /**
   * The pool's publisher: may write under `live/` and list it, nothing else. Trusts the account, so
   * a principal may assume it only when its own IAM policy allows `sts:AssumeRole` on this role.
   */
  public readonly publisherRole: Role;

  constructor(scope: Construct, id: string, props: PushBucketProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const autoDeleteObjects = removalPolicy === RemovalPolicy.DESTROY;

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
      autoDeleteObjects,
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
      autoDeleteObjects,
    });

    const { queue, deadLetterQueue } = createQueueWithDlq(this, 'Queue', {
      visibilityTimeout: props.queueVisibilityTimeout ?? Duration.minutes(6),
      maxReceiveCount: props.maxReceiveCount,
    });
    this.queue = queue;
    this.deadLetterQueue = deadLetterQueue;

    this.publisherRole = this.createPublisher(props.encryptionKey);
    // Writes by anyone else are denied at the bucket: an account principal with s3:PutObject on "*"
    // would otherwise push root-owned files to every server. Whole bucket, not only live/: nothing
    // outside live/ is content, so nobody else has a reason to write there either. Reads stay with
    // the IAM policies (sync workers and served instances read live/).
    this.bucket.addToResourcePolicy(
      new PolicyStatement({
        sid: 'DenyWritesButNamedWriters',
        effect: Effect.DENY,
        principals: [new AnyPrincipal()],
        actions: [...pushWriteActions],
        resources: [this.bucket.arnForObjects('*')],
        conditions: {
          ArnNotLike: {
            'aws:PrincipalArn': [
              this.publisherRole.roleArn,
              ...(props.writerArns ?? []),
              ...(autoDeleteObjects ? [autoDeleteObjectsRoleArn(this)] : []),
            ],
          },
        },
      }),
    );

    const destination = confusedDeputySafeQueue(queue);
    const filter: NotificationKeyFilter = { prefix: livePrefix };
    this.bucket.addEventNotification(EventType.OBJECT_CREATED, destination, filter);
    this.bucket.addEventNotification(EventType.OBJECT_REMOVED, destination, filter);
    acknowledgeNotificationsHandler(this);
  }

  private createPublisher(key: IKey | undefined): Role {
    const role = new Role(this, 'PublisherRole', {
      assumedBy: new AccountRootPrincipal(),
      description: 'Volsd: publishes content under live/ of the push bucket (aws s3 cp|sync|rm)',
      maxSessionDuration: Duration.hours(1),
    });
    role.addToPolicy(
      new PolicyStatement({
        sid: 'WriteLiveTree',
        actions: ['s3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        resources: [this.bucket.arnForObjects(`${livePrefix}*`)],
      }),
    );
    // `aws s3 sync` lists the destination to find what changed.
    role.addToPolicy(
      new PolicyStatement({
        sid: 'ListLiveTree',
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [livePrefix, `${livePrefix}*`] } },
      }),
    );
    if (key) {
      // SSE-KMS uploads need a data key; multipart uploads also decrypt it to complete.
      role.addToPolicy(
        new PolicyStatement({
          sid: 'EncryptLiveTree',
          actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
          resources: [key.keyArn],
          conditions: { StringLike: { 'kms:ViaService': 's3.*.amazonaws.com' } },
        }),
      );
    }
    acknowledgeWildcards(role, [
      {
        finding: /^Resource::<[A-Za-z0-9]+\.Arn>\/live\/\*$/,
        reason:
          'The publisher writes the whole content tree: every object under live/ of the push bucket, nothing else.',
      },
    ]);
    return role;
  }
}

/**
 * Role of CDK's bucket-emptying custom resource (one provider per stack). It deletes object versions
 * when the stack is deleted, so the writers' Deny must spare it, or the push bucket could never be
 * emptied and the stack deletion would fail on it.
 */
function autoDeleteObjectsRoleArn(scope: Construct): string {
  const provider = Stack.of(scope).node.tryFindChild('Custom::S3AutoDeleteObjectsCustomResourceProvider');
  if (!(provider instanceof CustomResourceProviderBase)) {
    throw new Error("PushBucket: CDK's auto-delete-objects provider was not found; the Deny would block it");
  }
  return provider.roleArn;
}

/**
 * The S3 -> SQS destination of CDK's `SqsDestination`, with `aws:SourceAccount` beside its
 * `aws:SourceArn`: a bucket ARN carries no account, so if the bucket were deleted and its name taken
 * in another account, the ARN alone would still match (AWS's confused-deputy guidance for S3).
 * SSE-SQS queues need no key policy, so no KMS statement is added (the queues here are SSE-SQS).
 */
function confusedDeputySafeQueue(queue: Queue): IBucketNotificationDestination {
  return {
    bind: (_scope, bucket) => {
      queue.grantSendMessages(
        new ServicePrincipal('s3.amazonaws.com', {
          conditions: {
            ArnLike: { 'aws:SourceArn': bucket.bucketRef.bucketArn },
            StringEquals: { 'aws:SourceAccount': Stack.of(queue).account },
          },
        }),
      );
      return { arn: queue.queueArn, type: BucketNotificationDestinationType.QUEUE, dependencies: [queue] };
    },
  };
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
