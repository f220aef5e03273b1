import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, RuleTargetInput, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { DocumentName } from '../lambdas/shared/documents.js';
import type { Monitoring } from './monitoring.js';
import type { WorkflowPermissions } from './permissions.js';
import type { PoolSettings } from './pool-settings.js';
import { livePrefix } from './push-bucket.js';
import { VolsdFunction } from './volsd-function.js';

/** The parts of the pool the growth uses (not the pool construct: only the app stack imports it). */
export interface PoolGrowthParts {
  readonly settings: PoolSettings;
  readonly table: { readonly table: ITable };
  readonly push: { readonly bucket: IBucket };
  readonly documents: { nameOf(name: DocumentName): string };
  readonly permissions: WorkflowPermissions;
  readonly monitoring: Monitoring;
  /** The push fan-out: its function gets the space check's settings and listing. */
  readonly fanOut: { readonly fanOut: VolsdFunction };
}

/** Props of {@link PoolGrowth}. */
export interface PoolGrowthProps {
  /** The pool: table, bucket, Volsd-Sync's deployed name, settings, permissions, monitoring, fan-out. */
  readonly pool: PoolGrowthParts;
  /**
   * How often a growth round runs (ModifyVolume where a volume is below the target, then the sync
   * that grows the file systems). Rounds are idempotent and cheap when there is nothing to do
   * (one DescribeVolumes, one DescribeVolumesModifications, one table read).
   * @default Duration.minutes(5)
   */
  readonly rate?: Duration;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /** @default RemovalPolicy.RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
  /** @default the repository root */
  readonly projectRoot?: string;
}

/**
 * A pool that grows with its content (issue 19): the grow function (`lambdas/grow/handler.ts`) on a
 * schedule grows every pool volume to the growth target online and, once all have grown, sends one
 * Volsd-Sync that grows every file system (and applies a push refused for want of space). The fan-out
 * gets what it needs for its space check: the configured size, the threshold and a listing of the
 * bucket's `live/` prefix. Alarms: a refused push, volumes stuck below the target.
 */
export class PoolGrowth extends Construct {
  /** The grow function. */
  public readonly grow: VolsdFunction;
  /** Its schedule. */
  public readonly schedule: Rule;

  constructor(scope: Construct, id: string, props: PoolGrowthProps) {
    super(scope, id);
    const { pool } = props;
    const { poolName, fanOut, volume } = pool.settings;
    const growthEnvironment = {
      VOLUME_SIZE_GIB: String(volume.sizeGiB),
      GROW_THRESHOLD_PERCENT: String(volume.growThresholdPercent),
    };
    this.grow = new VolsdFunction(this, 'Grow', {
      entry: 'lambdas/grow/handler.ts',
      description: `Volsd ${poolName}: grow every pool volume to the growth target, then its file system`,
      serviceName: 'volsd-grow',
      timeout: Duration.seconds(120),
      logRetention: props.logRetention,
      logRemovalPolicy: props.logRemovalPolicy,
      projectRoot: props.projectRoot,
    })
      .bindTable(pool.table.table, 'TABLE_NAME', 'readWrite')
      .addToRolePolicy(...pool.permissions.forGrow());
    const environment: Record<string, string> = {
      POOL_NAME: poolName,
      PUSH_BUCKET: pool.push.bucket.bucketName,
      PUSH_PREFIX: livePrefix,
      SYNC_DOCUMENT: pool.documents.nameOf(DocumentName.Sync),
      FANOUT_MAX_CONCURRENCY: fanOut.maxConcurrency,
      FANOUT_MAX_ERRORS: fanOut.maxErrors,
      PUSH_MAX_OBJECT_BYTES: String(pool.settings.push.maxObjectBytes),
      ...growthEnvironment,
    };
    for (const [key, value] of Object.entries(environment)) this.grow.setEnvironment(key, value);
    const rate = props.rate ?? Duration.minutes(5);
    this.schedule = new Rule(this, 'Schedule', {
      description: `Volsd ${poolName}: a growth round every ${rate.toHumanString()}`,
      schedule: Schedule.rate(rate),
      targets: [
        new LambdaFunction(this.grow.function, {
          event: RuleTargetInput.fromObject({ pool: poolName }),
          retryAttempts: 2,
        }),
      ],
    });

    // The fan-out's space check: the sizes, and the listing of live/ (keys and sizes, no object read).
    for (const [key, value] of Object.entries(growthEnvironment))
      pool.fanOut.fanOut.setEnvironment(key, value);
    pool.fanOut.fanOut.addToRolePolicy(
      new PolicyStatement({
        sid: 'ListContentTree',
        actions: ['s3:ListBucket'],
        resources: [pool.push.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [livePrefix, `${livePrefix}*`] } },
      }),
    );

    pool.monitoring.alarmOnFunctionErrors(this.grow.function, 'Grow');
    pool.monitoring.alarmOnGrowth();
  }
}
