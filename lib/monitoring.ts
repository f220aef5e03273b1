import { ArnFormat, Duration, Names, Stack } from 'aws-cdk-lib';
import type { IAutoScalingGroup } from 'aws-cdk-lib/aws-autoscaling';
import {
  Alarm,
  AlarmStatusWidget,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  type HorizontalAnnotation,
  type IMetric,
  type IWidget,
  MathExpression,
  Metric,
  TextWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { Effect, PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { type ITopic, Topic } from 'aws-cdk-lib/aws-sns';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';

/** CloudWatch namespace of Volsd's custom metrics (Powertools `POWERTOOLS_METRICS_NAMESPACE`). */
export const metricsNamespace = 'Volsd';

/**
 * Custom metrics the alarms watch. Handlers must emit them in `metricsNamespace` with exactly the
 * dimensions listed (CloudWatch matches the full dimension set): `Pool`, plus `Az` where stated.
 */
export const volsdMetrics = {
  /** Idle volumes in one AZ (dimensions Pool, Az), emitted by replenish at least once per run. */
  idleVolumes: 'IdleVolumes',
  /**
   * The idle target of one AZ under adaptive sizing (dimensions Pool, Az), emitted by replenish on each
   * scheduled run.
   */
  idleTarget: 'IdleTarget',
  /** Acquires that ended without a volume (dimension Pool), emitted by acquire's failure step. */
  acquireFailures: 'AcquireFailed',
  /** Pushes some instance failed to apply (dimension Pool). */
  pushPartial: 'PushPartial',
  /**
   * Launches in an AZ the pool has no sync worker in (dimension Pool), emitted by acquire's failure step:
   * the instance went InService without a volume.
   */
  uncoveredAzLaunches: 'UncoveredAzLaunches',
  /** Volumes of a replenish round still initializing (dimensions Pool, Az), at each WaitInitialized poll. */
  volumesInitializing: 'VolumesInitializing',
  /** Seconds from a pool volume's creation to its reported initialization (dimension Pool), by replenish. */
  initializationSeconds: 'InitializationSeconds',
  /** Instances that went InService on a volume still initializing (dimension Pool), by acquire. */
  coldHandoffs: 'ColdHandoffs',
  /** Seconds a launch was held for its directly created volume to initialize (dimension Pool), by acquire. */
  initializationHeldSeconds: 'InitializationHeldSeconds',
  /** Pushes refused as a whole because the content would not fit the volumes (dimension Pool), by the fan-out. */
  pushRefusedNoSpace: 'PushRefusedNoSpace',
  /** Pool volumes below the growth target (dimension Pool), by the grow function every round. */
  volumesBelowTarget: 'VolumesBelowTarget',
} as const;

/** Dimension names of Volsd's custom metrics. */
export const metricDimensions = { pool: 'Pool', az: 'Az' } as const;

/** Props of {@link Monitoring}. */
export interface MonitoringProps {
  /** The pool's name (metric dimension, descriptions). */
  readonly poolName: string;
  /** The pool's AZs (one IdleVolumes alarm each). */
  readonly availabilityZones: readonly string[];
  /** Idle volumes wanted per AZ: the IdleVolumes alarm threshold. No idle alarm when 0. */
  readonly idlePerAz: number;
  /**
   * Adaptive sizing's largest idle target per AZ, when it is on: the target then moves, so the "idle
   * below target" alarms compare the idle count with the `IdleTarget` replenish reports, not `idlePerAz`.
   * @default adaptive sizing off
   */
  readonly adaptiveMaxPerAz?: number;
  /**
   * Topic receiving every alarm and OK transition.
   * @default a new topic encrypted with a new customer managed key (CloudWatch cannot publish to a
   * topic encrypted with the AWS managed aws/sns key)
   */
  readonly alarmTopic?: ITopic;
  /**
   * How long idle volumes may stay below the target before the alarm fires.
   * @default Duration.minutes(15)
   */
  readonly idleBelowTargetFor?: Duration;
  /**
   * Period of the IdleVolumes metric: replenish emits it once per run, so use its schedule rate.
   * @default Duration.minutes(5)
   */
  readonly idleMetricPeriod?: Duration;
}

/** Options of {@link Monitoring.alarmOnMetric}. */
export interface MetricAlarmOptions {
  /** The value compared with the metric. */
  readonly threshold: number;
  /**
   * How the metric is compared with the threshold.
   * @default ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
   */
  readonly comparisonOperator?: ComparisonOperator;
  /**
   * Periods evaluated.
   * @default 1
   */
  readonly evaluationPeriods?: number;
  /**
   * What missing data means.
   * @default TreatMissingData.NOT_BREACHING
   */
  readonly treatMissingData?: TreatMissingData;
  /**
   * Also notify the topic when the alarm goes to INSUFFICIENT_DATA. For a metric that is always
   * reported once the pool runs, with `TreatMissingData.MISSING`: its going silent is then seen, while
   * the silence before its first report (a new alarm starts in INSUFFICIENT_DATA) is not a transition
   * and notifies nobody.
   * @default false
   */
  readonly notifyOnInsufficientData?: boolean;
  /** What the alarm means and what to do. */
  readonly description: string;
}

/**
 * Monitoring of the pool: an alarm topic (encrypted, TLS-only) unless one is given, a CloudWatch
 * dashboard, and alarms that all notify the topic: idle volumes below target per AZ, acquire
 * failures, partial pushes, and (through the `alarmOnX()` methods) DLQs, failed executions, function
 * errors, missing sync workers and any other metric.
 */
export class Monitoring extends Construct {
  /** The topic every alarm notifies. */
  public readonly alarmTopic: ITopic;
  /** The pool's dashboard. */
  public readonly dashboard: Dashboard;
  /** Every alarm created so far. */
  public readonly alarms: Alarm[] = [];
  private readonly poolName: string;
  private readonly action: SnsAction;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    this.poolName = props.poolName;
    this.alarmTopic = props.alarmTopic ?? this.createTopic();
    this.action = new SnsAction(this.alarmTopic);
    this.dashboard = new Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(6) });

    const idlePeriod = props.idleMetricPeriod ?? Duration.minutes(5);
    const belowFor = props.idleBelowTargetFor ?? Duration.minutes(15);
    const idleMetrics = props.availabilityZones.map((az) =>
      this.metric(volsdMetrics.idleVolumes, { az, statistic: 'Minimum', period: idlePeriod }),
    );
    const adaptive = props.adaptiveMaxPerAz !== undefined;
    if (props.idlePerAz > 0 || (props.adaptiveMaxPerAz ?? 0) > 0) {
      props.availabilityZones.forEach((az, index) => {
        const idle = idleMetrics[index];
        if (!idle) return;
        // Under adaptive sizing the target moves within [min, max]: the alarm watches the shortfall
        // against the target replenish reported for the same period (missing when it reported none).
        const metric = adaptive
          ? new MathExpression({
              expression: 'target - idle',
              usingMetrics: {
                idle,
                target: this.metric(volsdMetrics.idleTarget, {
                  az,
                  statistic: 'Maximum',
                  period: idlePeriod,
                }),
              },
              period: idlePeriod,
            })
          : idle;
        const below = adaptive ? 'below the adaptive target' : `below ${props.idlePerAz}`;
        this.alarmOnMetric(`IdleBelowTarget${index}`, metric, {
          threshold: adaptive ? 0 : props.idlePerAz,
          comparisonOperator: adaptive
            ? ComparisonOperator.GREATER_THAN_THRESHOLD
            : ComparisonOperator.LESS_THAN_THRESHOLD,
          evaluationPeriods: Math.max(1, Math.ceil(belowFor.toSeconds() / idlePeriod.toSeconds())),
          // Not BREACHING: a new alarm evaluates the periods before its creation, when replenish could
          // not have reported yet, so it fired at every first deploy. MISSING keeps the new alarm in
          // INSUFFICIENT_DATA until replenish's first report; a period replenish skips is left out of
          // the evaluation. Once it runs, replenish reports every run, so silence over the whole window
          // means it has stopped: that is the transition to INSUFFICIENT_DATA, and it is notified.
          treatMissingData: TreatMissingData.MISSING,
          notifyOnInsufficientData: true,
          description: `Volsd ${props.poolName}: idle volumes in ${az} ${below} for ${belowFor.toHumanString()} (INSUFFICIENT_DATA: replenish has stopped reporting). Launches there take the slow path; check replenish and the AZ's sync worker.`,
        });
      });
    }
    const acquireFailures = this.metric(volsdMetrics.acquireFailures, { statistic: 'Sum' });
    this.alarmOnMetric('AcquireFailures', acquireFailures, {
      threshold: 1,
      description: `Volsd ${props.poolName}: an acquire ended without a volume (the instance was abandoned or continued without it). See the acquire executions.`,
    });
    const uncoveredAz = this.metric(volsdMetrics.uncoveredAzLaunches, { statistic: 'Sum' });
    this.alarmOnMetric('UncoveredAzLaunches', uncoveredAz, {
      threshold: 1,
      description: `Volsd ${props.poolName}: an instance of a served group launched in an AZ the pool has no sync worker in, and went InService WITHOUT a volume (let through rather than abandoned: a relaunch would land in the same AZ). The acquire execution's error (AzNotCovered) names the AZ. Add a worker subnet in that AZ to the pool, or remove the AZ from the group; then replace those instances.`,
    });
    const pushPartial = this.metric(volsdMetrics.pushPartial, { statistic: 'Sum' });
    this.alarmOnMetric('PushPartial', pushPartial, {
      threshold: 1,
      description: `Volsd ${props.poolName}: a push did not reach every instance. volsd-client pushes names the failed ones.`,
    });

    this.dashboard.addWidgets(
      new TextWidget({ markdown: `# Volsd pool ${props.poolName}`, width: 24, height: 1 }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Idle volumes per AZ',
        // A label on the alarm's metric would turn the alarm into metric math; label the graph only.
        left: idleMetrics.map((metric, index) => metric.with({ label: props.availabilityZones[index] })),
        leftAnnotations: [{ value: props.idlePerAz, label: 'target' } satisfies HorizontalAnnotation],
        width: 12,
      }),
      new GraphWidget({
        title: 'Acquire failures and partial pushes',
        left: [acquireFailures, pushPartial],
        width: 12,
      }),
    );
    // Warm volumes (issue 17): what initialization costs in time, and every cold handoff.
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Volumes initializing per AZ',
        left: props.availabilityZones.map((az) =>
          this.metric(volsdMetrics.volumesInitializing, { az, statistic: 'Maximum' }).with({ label: az }),
        ),
        width: 8,
      }),
      new GraphWidget({
        title: 'Initialization seconds',
        left: [
          this.metric(volsdMetrics.initializationSeconds, { statistic: 'p50' }).with({
            label: 'pool volume p50',
          }),
          this.metric(volsdMetrics.initializationSeconds, { statistic: 'Maximum' }).with({
            label: 'pool volume max',
          }),
          this.metric(volsdMetrics.initializationHeldSeconds, { statistic: 'Maximum' }).with({
            label: 'launch held, max',
          }),
        ],
        width: 8,
      }),
      new GraphWidget({
        title: 'Cold handoffs (InService on a volume still initializing)',
        left: [this.metric(volsdMetrics.coldHandoffs, { statistic: 'Sum' })],
        width: 8,
      }),
    );
    // The widget reads `this.alarms` when the dashboard is rendered, so later alarms appear too.
    this.dashboard.addWidgets(
      new AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24, height: 4 }),
    );
  }

  /** A Volsd custom metric of this pool, per AZ when `az` is given. */
  public metric(
    metricName: string,
    options: { az?: string; statistic?: string; period?: Duration } = {},
  ): Metric {
    return new Metric({
      namespace: metricsNamespace,
      metricName,
      dimensionsMap: {
        [metricDimensions.pool]: this.poolName,
        ...(options.az === undefined ? {} : { [metricDimensions.az]: options.az }),
      },
      statistic: options.statistic ?? 'Sum',
      period: options.period ?? Duration.minutes(5),
    });
  }

  /**
   * The pool-growth alarms (issue 19): a push refused for want of space (at once: content waits), and
   * volumes still below the growth target after `stuckFor` (EBS allows one modification per volume per
   * 6 hours, so a growth takes up to that long when a volume was modified recently; past it something
   * refuses ModifyVolume: IAM, a volume in `error`, the Region's storage quota).
   */
  public alarmOnGrowth(stuckFor: Duration = Duration.hours(8)): Alarm[] {
    const refused = this.metric(volsdMetrics.pushRefusedNoSpace, { statistic: 'Sum' });
    const below = this.metric(volsdMetrics.volumesBelowTarget, {
      statistic: 'Minimum',
      period: Duration.hours(1),
    });
    const alarms = [
      this.alarmOnMetric('PushRefusedNoSpace', refused, {
        threshold: 1,
        description: `Volsd ${this.poolName}: a push was refused as a whole: its content does not fit the pool's volumes. The volumes grow (ModifyVolume, at most once per volume per 6 hours) and the grow function then applies the content; volsd-client pushes shows the refusal.`,
      }),
      this.alarmOnMetric('VolumesBelowGrowthTarget', below, {
        threshold: 1,
        evaluationPeriods: Math.max(1, Math.ceil(stuckFor.toHours())),
        description: `Volsd ${this.poolName}: pool volumes have stayed below the growth target for ${stuckFor.toHumanString()}. Check the grow function's log (ModifyVolume refused?).`,
      }),
    ];
    this.dashboard.addWidgets(
      new GraphWidget({ title: 'Pool growth', left: [refused], right: [below], width: 12 }),
    );
    return alarms;
  }

  /** Creates an alarm on any metric, notifying the alarm topic on ALARM and OK. */
  public alarmOnMetric(id: string, metric: IMetric, options: MetricAlarmOptions): Alarm {
    const alarm = new Alarm(this, id, {
      metric,
      threshold: options.threshold,
      comparisonOperator: options.comparisonOperator ?? ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: options.evaluationPeriods ?? 1,
      treatMissingData: options.treatMissingData ?? TreatMissingData.NOT_BREACHING,
      alarmDescription: options.description,
    });
    alarm.addAlarmAction(this.action);
    alarm.addOkAction(this.action);
    if (options.notifyOnInsufficientData) alarm.addInsufficientDataAction(this.action);
    this.alarms.push(alarm);
    return alarm;
  }

  /** Alarm when `queue` (a DLQ) holds any message: something failed past its retries. */
  public alarmOnDeadLetterQueue(queue: IQueue, label = Names.nodeUniqueId(queue.node)): Alarm {
    return this.alarmOnMetric(
      `DlqNotEmpty${label}`,
      queue.metricApproximateNumberOfMessagesVisible({
        statistic: 'Maximum',
        period: Duration.minutes(1),
      }),
      {
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        description: `Volsd ${this.poolName}: dead-letter queue ${label} is not empty. Inspect the messages, fix the cause, redrive.`,
      },
    );
  }

  /** Alarm when an execution of `stateMachine` fails, times out or is aborted. */
  public alarmOnFailedExecutions(
    stateMachine: IStateMachine,
    label = Names.nodeUniqueId(stateMachine.node),
  ): Alarm {
    const period = Duration.minutes(5);
    const metric = new MathExpression({
      expression: 'FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)',
      usingMetrics: {
        failed: stateMachine.metricFailed({ period }),
        timedOut: stateMachine.metricTimedOut({ period }),
        aborted: stateMachine.metricAborted({ period }),
      },
      label: 'failed executions',
      period,
    });
    return this.alarmOnMetric(`ExecutionsFailed${label}`, metric, {
      threshold: 1,
      description: `Volsd ${this.poolName}: an execution of ${label} failed, timed out or was aborted.`,
    });
  }

  /** Alarm when `fn` reports an error (after its own retries). */
  public alarmOnFunctionErrors(fn: IFunction, label = Names.nodeUniqueId(fn.node)): Alarm {
    return this.alarmOnMetric(`FunctionErrors${label}`, fn.metricErrors({ period: Duration.minutes(5) }), {
      threshold: 1,
      description: `Volsd ${this.poolName}: function ${label} reported errors.`,
    });
  }

  /**
   * Alarm when a sync worker group has had no InService instance for 15 minutes, and a notice when
   * its group metric stops arriving.
   */
  public alarmOnMissingWorker(group: IAutoScalingGroup, label: string): Alarm {
    const metric = new Metric({
      namespace: 'AWS/AutoScaling',
      metricName: 'GroupInServiceInstances',
      dimensionsMap: { AutoScalingGroupName: group.autoScalingGroupName },
      statistic: 'Minimum',
      period: Duration.minutes(5),
    });
    return this.alarmOnMetric(`WorkerMissing${label}`, metric, {
      threshold: 1,
      comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 3,
      // Not BREACHING: the group and its metric collection are created with the alarm, so the 15
      // minutes a new alarm evaluates are all missing and it fired at every first deploy. An empty
      // group still reports (GroupInServiceInstances 0, every minute while collection is enabled), so
      // a missing worker is a breaching datapoint, not missing data. Missing data once the pool runs
      // means the metric itself is gone (collection disabled, group deleted): MISSING turns that into
      // INSUFFICIENT_DATA, notified, while the new alarm's start in INSUFFICIENT_DATA notifies nobody.
      treatMissingData: TreatMissingData.MISSING,
      notifyOnInsufficientData: true,
      description: `Volsd ${this.poolName}: sync worker ${label} has not been InService for 15 minutes; idle volumes of its AZ are unavailable. INSUFFICIENT_DATA: the group's GroupInServiceInstances metric stopped (group deleted or metrics collection disabled).`,
    });
  }

  /** Adds a row of queue-depth graphs: the work queue and its DLQ. */
  public addQueueWidgets(title: string, queue: IQueue, deadLetterQueue: IQueue): void {
    this.dashboard.addWidgets(
      new GraphWidget({
        title: `${title}: visible and oldest message`,
        left: [queue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum' })],
        right: [queue.metricApproximateAgeOfOldestMessage({ statistic: 'Maximum' })],
        width: 12,
      }),
      new GraphWidget({
        title: `${title}: dead letters`,
        left: [deadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum' })],
        width: 12,
      }),
    );
  }

  /** Adds widgets to the dashboard (one row). */
  public addWidgets(...widgets: IWidget[]): void {
    this.dashboard.addWidgets(...widgets);
  }

  private createTopic(): Topic {
    const key = new Key(this, 'AlarmTopicKey', {
      enableKeyRotation: true,
      description: `Volsd ${this.poolName}: alarm topic encryption`,
    });
    // Only this account's alarms, in this Region: the confused-deputy guard AWS asks of every
    // service principal (CloudWatch passes both keys to SNS and, for the topic's key, to KMS).
    const fromOwnAlarms = {
      ArnLike: { 'aws:SourceArn': alarmArnPattern(this) },
      StringEquals: { 'aws:SourceAccount': Stack.of(this).account },
    };
    // CloudWatch publishes alarms to an encrypted topic only when the key policy lets it.
    key.addToResourcePolicy(
      new PolicyStatement({
        sid: 'AllowCloudWatchAlarms',
        effect: Effect.ALLOW,
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: fromOwnAlarms,
      }),
    );
    const topic = new Topic(this, 'AlarmTopic', {
      displayName: `Volsd ${this.poolName} alarms`,
      masterKey: key,
      enforceSSL: true,
    });
    // enforceSSL gives the topic a policy holding only its TLS Deny, and a topic policy replaces
    // SNS's default one: without this Allow, CloudWatch could not publish a single alarm.
    topic.addToResourcePolicy(
      new PolicyStatement({
        sid: 'AllowCloudWatchAlarms',
        effect: Effect.ALLOW,
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        conditions: fromOwnAlarms,
      }),
    );
    return topic;
  }
}

/** ARN pattern of every CloudWatch alarm of the stack's account and Region. */
export function alarmArnPattern(scope: Construct): string {
  return Stack.of(scope).formatArn({
    service: 'cloudwatch',
    resource: 'alarm',
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    resourceName: '*',
  });
}
