import { Duration, type RemovalPolicy, Validations } from 'aws-cdk-lib';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { finalCommandStatuses } from '../lambdas/shared/command-status.js';
import { DocumentName } from '../lambdas/shared/documents.js';
import type { Monitoring } from './monitoring.js';
import type { WorkflowPermissions } from './permissions.js';
import type { PoolSettings } from './pool-settings.js';
import type { PushBucket } from './push-bucket.js';
import { livePrefix } from './push-bucket.js';
import { createDeadLetterQueue } from './queues.js';
import type { SsmDocuments } from './ssm-documents.js';
import { VolsdFunction } from './volsd-function.js';
import type { VolumeTable } from './volume-table.js';

/** EventBridge detail-type of a Run Command command's status change. */
export const commandStatusDetailType = 'EC2 Command Status-change Notification';

/** What the push fan-out uses of its pool, and nothing more (a `VolsdPool` is one). */
export interface PushFanOutPool {
  readonly settings: Pick<PoolSettings, 'poolName' | 'fanOut' | 'push'>;
  readonly documents: Pick<SsmDocuments, 'nameOf'>;
  readonly push: Pick<PushBucket, 'bucket' | 'queue'>;
  readonly table: Pick<VolumeTable, 'table'>;
  readonly permissions: Pick<WorkflowPermissions, 'forFanOut' | 'forPushStatus'>;
  readonly monitoring: Pick<Monitoring, 'alarmOnFunctionErrors' | 'alarmOnDeadLetterQueue'>;
}

/** Props of {@link PushFanOut}. */
export interface PushFanOutProps {
  /** The pool's parts it uses: push bucket and queue, table, Volsd-Sync's deployed name, fan-out settings, monitoring. */
  readonly pool: PushFanOutPool;
  /**
   * How long the push queue's event source gathers object events before it invokes the fan-out, so
   * a burst (`aws s3 sync` of thousands of keys) becomes one push (0..300 s).
   * @default Duration.seconds(20)
   */
  readonly batchingWindow?: Duration;
  /**
   * Object events per fan-out invocation at most (1..10000).
   * @default 1000
   */
  readonly batchSize?: number;
  /**
   * How often the push status function sweeps pushes whose command status event was lost.
   * @default Duration.minutes(5)
   */
  readonly sweepRate?: Duration;
  /**
   * How long the functions' log groups keep events.
   * @default RetentionDays.ONE_MONTH
   */
  readonly logRetention?: RetentionDays;
  /**
   * What happens to the log groups when the pool leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
  /**
   * Directory holding `lambdas/`, `package-lock.json` and `node_modules`.
   * @default the repository root
   */
  readonly projectRoot?: string;
}

/**
 * The push pipeline after the push queue: the fan-out function consumes the queue (batching window,
 * partial batch responses, at most two batches at once so a burst coalesces), bumps the pool's content
 * generation once per batch and sends Volsd-Sync to every pool-tagged instance; the push status
 * function records each push's outcome when EventBridge reports its Volsd-Sync command final, and
 * sweeps on a schedule for events EventBridge lost. Both rules retry, then dead-letter to a DLQ that
 * alarms; both functions alarm on errors (each invocation is one push or one status: an error is a
 * real failure, unlike the workflow steps).
 */
export class PushFanOut extends Construct {
  /** Consumer of the push queue (`lambdas/fanout/handler.ts`). */
  public readonly fanOut: VolsdFunction;
  /** Push status collector and sweeper (`lambdas/fanout/status-handler.ts`). */
  public readonly status: VolsdFunction;
  /** Rule: final statuses of the pool's Volsd-Sync commands to the status function. */
  public readonly commandStatusRule: Rule;
  /** Rule: the sweep schedule. */
  public readonly sweepRule: Rule;
  /** DLQ of both rules: events EventBridge could not deliver after its retries. */
  public readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: PushFanOutProps) {
    super(scope, id);
    const { pool } = props;
    const { poolName, fanOut } = pool.settings;
    const syncDocument = pool.documents.nameOf(DocumentName.Sync);
    const common = {
      logRetention: props.logRetention,
      logRemovalPolicy: props.logRemovalPolicy,
      projectRoot: props.projectRoot,
    };
    const environment: Record<string, string> = {
      POOL_NAME: poolName,
      PUSH_BUCKET: pool.push.bucket.bucketName,
      PUSH_PREFIX: livePrefix,
      SYNC_DOCUMENT: syncDocument,
      FANOUT_MAX_CONCURRENCY: fanOut.maxConcurrency,
      FANOUT_MAX_ERRORS: fanOut.maxErrors,
      // The size limit a bucket policy cannot enforce (no condition key for a PutObject's size).
      PUSH_MAX_OBJECT_BYTES: String(pool.settings.push.maxObjectBytes),
    };

    // The fan-out reads keys from the events, never objects: no grant on the bucket. Its timeout
    // stays at most a sixth of the push queue's visibility timeout (6 minutes).
    this.fanOut = new VolsdFunction(this, 'FanOut', {
      entry: 'lambdas/fanout/handler.ts',
      description: `Volsd ${poolName}: push queue to one generation bump and one Volsd-Sync per batch`,
      serviceName: 'volsd-fanout',
      timeout: Duration.seconds(60),
      memorySize: 512,
      ...common,
    })
      .bindTable(pool.table.table, 'TABLE_NAME', 'readWrite')
      .addToRolePolicy(...pool.permissions.forFanOut())
      .consumeQueue(pool.push.queue, {
        batchSize: props.batchSize ?? 1000,
        maxBatchingWindow: props.batchingWindow ?? Duration.seconds(20),
        // Few concurrent batches: a burst is coalesced into few pushes (and few generations).
        maxConcurrency: 2,
      });
    for (const [key, value] of Object.entries(environment)) this.fanOut.setEnvironment(key, value);

    this.status = new VolsdFunction(this, 'Status', {
      entry: 'lambdas/fanout/status-handler.ts',
      handler: 'statusHandler',
      description: `Volsd ${poolName}: push outcomes from Volsd-Sync command statuses, and the sweep`,
      serviceName: 'volsd-push-status',
      timeout: Duration.seconds(60),
      ...common,
    })
      .bindTable(pool.table.table, 'TABLE_NAME', 'readWrite')
      .addToRolePolicy(...pool.permissions.forPushStatus());
    for (const [key, value] of Object.entries(environment)) this.status.setEnvironment(key, value);
    // CommandPending (invocations not all final yet) is retried by Lambda's asynchronous invocation;
    // what outlives it, the sweep picks up.
    this.status.function.configureAsyncInvoke({ retryAttempts: 2, maxEventAge: Duration.hours(1) });

    this.deadLetterQueue = createDeadLetterQueue(this, 'EventsDlq');
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is a DLQ: of the push status rules (EventBridge target dead-letter config), not of a queue.',
    });
    const target = () =>
      new LambdaFunction(this.status.function, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 3,
        maxEventAge: Duration.hours(1),
      });
    this.commandStatusRule = new Rule(this, 'CommandStatusRule', {
      description: `Volsd ${poolName}: final statuses of ${syncDocument} commands`,
      eventPattern: {
        source: ['aws.ssm'],
        detailType: [commandStatusDetailType],
        detail: { 'document-name': [syncDocument], status: [...finalCommandStatuses] },
      },
      targets: [target()],
    });
    const sweepRate = props.sweepRate ?? Duration.minutes(5);
    this.sweepRule = new Rule(this, 'SweepRule', {
      description: `Volsd ${poolName}: sweep unfinished pushes every ${sweepRate.toHumanString()}`,
      schedule: Schedule.rate(sweepRate),
      targets: [target()],
    });

    pool.monitoring.alarmOnFunctionErrors(this.fanOut.function, 'FanOut');
    pool.monitoring.alarmOnFunctionErrors(this.status.function, 'PushStatus');
    pool.monitoring.alarmOnDeadLetterQueue(this.deadLetterQueue, 'PushStatusEvents');
  }
}
