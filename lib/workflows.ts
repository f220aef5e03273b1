import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArnFormat, Duration, Fn, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { GraphWidget } from 'aws-cdk-lib/aws-cloudwatch';
import { Rule, RuleTargetInput, Schedule } from 'aws-cdk-lib/aws-events';
import { SfnStateMachine } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { DefinitionBody, LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct, type IConstruct, type IDependable } from 'constructs';
import type { ConfigParameters } from './config-parameters.js';
import { configParameterNames } from './config-parameters.js';
import type { LifecycleIntake } from './lifecycle-intake.js';
import type { Monitoring } from './monitoring.js';
import { acknowledgeWildcards, isReadOnlyStatement, type ResolvedStatement } from './nag.js';
import type { ClientPolicies, WorkflowPermissions } from './permissions.js';
import type { PoolSettings } from './pool-settings.js';
import type { PushBucket } from './push-bucket.js';
import { createDeadLetterQueue } from './queues.js';
import { VolsdFunction } from './volsd-function.js';
import type { VolumeTable } from './volume-table.js';

/** The repository root, found from this file so synthesis does not depend on the working directory. */
const defaultProjectRoot = fileURLToPath(new URL('..', import.meta.url));

/**
 * What CDK grants a state machine role for logging to CloudWatch Logs. AWS documents exactly these,
 * on Resource "*", for Step Functions logging: the log delivery APIs accept nothing narrower.
 */
export const logDeliveryActions = [
  'logs:CreateLogDelivery',
  'logs:GetLogDelivery',
  'logs:UpdateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:DescribeResourcePolicies',
  'logs:DescribeLogGroups',
] as const;

const isLogDeliveryOrReadOnly = (statement: ResolvedStatement): boolean =>
  [statement.Action ?? []]
    .flat()
    .every(
      (action) =>
        (logDeliveryActions as readonly string[]).includes(action) || isReadOnlyStatement({ Action: action }),
    );

/** When a workflow runs by itself. */
export interface WorkflowSchedule {
  /** How often (whole minutes, 1 minute..30 days). */
  readonly rate: Duration;
  /**
   * One EventBridge rule per entry, each starting one execution with its `input` (e.g. one per AZ).
   * `id` names the rule's construct.
   */
  readonly targets: ReadonlyArray<{ readonly id: string; readonly input: Record<string, unknown> }>;
}

/** Name of one of a pool's workflow state machines (`volsd-<pool>-<workflow>`). */
export function workflowStateMachineName(poolName: string, workflow: string): string {
  return `volsd-${poolName}-${workflow}`;
}

/**
 * ARN of one of a pool's workflow state machines, built from its name: for grants where a reference
 * would make a dependency cycle (the state machine names the function being granted).
 */
export function workflowStateMachineArn(scope: IConstruct, poolName: string, workflow: string): string {
  return Stack.of(scope).formatArn({
    service: 'states',
    resource: 'stateMachine',
    resourceName: workflowStateMachineName(poolName, workflow),
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}

/** How {@link Workflows.addWorkflow} wires one workflow. */
export interface WorkflowOptions {
  /** Handler module of the workflow's function, relative to the project root (`lambdas/<name>/handler.ts`). */
  readonly entry: string;
  /** ASL file, relative to the project root (`statemachines/<name>.asl.json`). */
  readonly definitionFile: string;
  /** The placeholder that stands for the function's ARN in the ASL, without `${}` (`AcquireFunctionArn`). */
  readonly functionArnPlaceholder: string;
  /** The function's IAM statements, e.g. `pool.permissions.forSnapshot()`. */
  readonly statements: readonly PolicyStatement[];
  /**
   * Further `${Placeholder}` values of the ASL.
   * @default none
   */
  readonly definitionSubstitutions?: Record<string, string>;
  /**
   * Environment beyond the workflow configuration (`pool.workflowEnvironment()`, `TABLE_NAME`,
   * `PUSH_BUCKET`), which every workflow function gets.
   * @default none
   */
  readonly environment?: Record<string, string>;
  /**
   * Name under `/volsd/<pool>/` publishing the state machine's ARN (one of `configParameterNames`).
   * @default not published
   */
  readonly parameterName?: string;
  /**
   * Whether the function may ask for a replenish (`REPLENISH_STATE_MACHINE_ARN` and StartExecution on
   * the replenish state machine).
   * @default false
   */
  readonly requestsReplenish?: boolean;
  /**
   * A schedule starting it.
   * @default started only on demand
   */
  readonly schedule?: WorkflowSchedule;
  /**
   * Longest run of one step of the function (every Task of the ASL must allow at least this much).
   * @default Duration.seconds(30)
   */
  readonly timeout?: Duration;
}

/** One wired workflow: its function, its state machine, its log group and its schedules. */
export interface Workflow {
  /** The workflow's name (`acquire`), as in `statemachines/<name>.asl.json`. */
  readonly name: string;
  /** The function every Task of the state machine invokes. */
  readonly function: VolsdFunction;
  /** The Standard state machine. */
  readonly stateMachine: StateMachine;
  /** Where the state machine logs. */
  readonly logGroup: LogGroup;
  /** The rules starting it on a schedule (empty when on demand only). */
  readonly schedules: readonly Rule[];
}

/**
 * What the workflows use of their pool, and nothing more (a `VolsdPool` is one). Named by part, so
 * `lib/` has no import circle through the pool construct.
 */
export interface WorkflowsPool {
  readonly settings: Pick<PoolSettings, 'poolName' | 'schedules' | 'fanOut' | 'push'>;
  readonly availabilityZones: readonly string[];
  readonly table: Pick<VolumeTable, 'table'>;
  /** The pool's record in the table: the dispatcher and the schedules start only once it is written. */
  readonly record: IDependable;
  readonly push: Pick<PushBucket, 'bucket'>;
  readonly intake: Pick<LifecycleIntake, 'groupNames' | 'hookNames' | 'queue'>;
  readonly config: Pick<ConfigParameters, 'add'>;
  readonly monitoring: Pick<
    Monitoring,
    'alarmOnDeadLetterQueue' | 'addWidgets' | 'alarmOnFunctionErrors' | 'alarmOnFailedExecutions'
  >;
  readonly clientPolicies: Pick<ClientPolicies, 'allowAdminWorkflows'>;
  readonly permissions: WorkflowPermissions;
  /** The workflow configuration the functions read (`VolsdPool.workflowEnvironment()`). */
  workflowEnvironment(): Record<string, string>;
}

/** Props of {@link Workflows}. */
export interface WorkflowsProps {
  /** The parts of the pool the workflows use: settings, table, record, intake, permissions, config, monitoring. */
  readonly pool: WorkflowsPool;
  /**
   * How long the functions' and state machines' log groups keep events.
   * @default RetentionDays.ONE_MONTH
   */
  readonly logRetention?: RetentionDays;
  /**
   * What happens to the log groups when the pool leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
  /**
   * Directory holding `lambdas/`, `statemachines/`, `package-lock.json` and `node_modules`.
   * @default the repository root
   */
  readonly projectRoot?: string;
}

/**
 * The pool's workflows, wired: for acquire, release, replenish, snapshot, reconcile and sync-all a
 * {@link VolsdFunction} (least privilege from `pool.permissions.forX()`, the workflow configuration
 * in its environment) and a Standard state machine from `statemachines/<name>.asl.json` whose Tasks
 * invoke it (definition substitutions, X-Ray tracing, ALL-level logs without execution data to a log
 * group with retention); replenish started per AZ, snapshot and reconcile per pool, on the pool's
 * schedules by EventBridge rules (retries, then a DLQ); the lifecycle dispatcher consuming the intake
 * queue with partial batch responses (when the pool serves groups). Publishes the acquire, release,
 * replenish, snapshot and sync-all ARNs under `/volsd/<pool>/`, lets the client host policy start acquire and
 * release and the admin policy every workflow, and alarms on failed executions, dispatcher errors and
 * the schedule DLQ.
 *
 * Step functions throw to make Step Functions poll and retry (`VolumeNotReady` ...), so a workflow
 * function's Lambda `Errors` metric is not a failure signal: workflows are watched by their failed
 * executions instead.
 *
 * More workflows plug in with {@link Workflows.addWorkflow}.
 */
export class Workflows extends Construct {
  /** Acquire: an idle volume to a launching instance. */
  public readonly acquire: Workflow;
  /** Release: a terminating instance's volume unmounted, detached and deleted or recycled. */
  public readonly release: Workflow;
  /** Replenish: one AZ back to its idle target. */
  public readonly replenish: Workflow;
  /** Snapshot: a current idle volume snapshotted, older snapshots pruned beyond the retention. */
  public readonly snapshot: Workflow;
  /** Reconcile: EC2 compared with the table, drift repaired. */
  public readonly reconcile: Workflow;
  /** Sync-all (admin): every volume of the pool resynced to the push bucket at the current generation. */
  public readonly syncAll: Workflow;
  /** The lifecycle dispatcher, when the pool serves at least one Auto Scaling group. */
  public readonly dispatcher?: VolsdFunction;
  /** Every workflow wired so far, by name. */
  public readonly workflows = new Map<string, Workflow>();
  /** DLQ of every schedule rule: starts EventBridge could not deliver after its retries. */
  public readonly scheduleDeadLetterQueue: Queue;

  private readonly pool: WorkflowsPool;
  private readonly projectRoot: string;
  private readonly logRetention: RetentionDays;
  private readonly logRemovalPolicy: RemovalPolicy;
  private readonly executionsWidget: GraphWidget;
  private readonly durationWidget: GraphWidget;

  constructor(scope: Construct, id: string, props: WorkflowsProps) {
    super(scope, id);
    const { pool } = props;
    this.pool = pool;
    this.projectRoot = props.projectRoot ?? defaultProjectRoot;
    this.logRetention = props.logRetention ?? RetentionDays.ONE_MONTH;
    this.logRemovalPolicy = props.logRemovalPolicy ?? RemovalPolicy.RETAIN;
    const { poolName, schedules } = pool.settings;

    this.scheduleDeadLetterQueue = createDeadLetterQueue(this, 'ScheduleDlq');
    Validations.of(this.scheduleDeadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is a DLQ: of the schedule rules (EventBridge target dead-letter config), not of a queue.',
    });
    pool.monitoring.alarmOnDeadLetterQueue(this.scheduleDeadLetterQueue, 'Schedule');
    this.executionsWidget = new GraphWidget({ title: 'Failed executions', width: 12 });
    this.durationWidget = new GraphWidget({ title: 'Execution time (p90)', width: 12 });
    pool.monitoring.addWidgets(this.executionsWidget, this.durationWidget);

    // Replenish first: acquire and release need its ARN. No cycle: its definition names only its own function.
    this.replenish = this.addWorkflow('replenish', {
      entry: 'lambdas/replenish/handler.ts',
      definitionFile: 'statemachines/replenish.asl.json',
      functionArnPlaceholder: 'ReplenishFunctionArn',
      statements: pool.permissions.forReplenish(),
      parameterName: configParameterNames.replenishStateMachineArn,
      // A request noted while a run held the AZ gets a follow-up run from that run.
      requestsReplenish: true,
      schedule: {
        rate: schedules.replenish,
        targets: pool.availabilityZones.map((az, index) => ({
          id: `Az${index}`,
          input: { pool: poolName, az, reason: 'schedule' },
        })),
      },
    });
    this.acquire = this.addWorkflow('acquire', {
      entry: 'lambdas/acquire/handler.ts',
      definitionFile: 'statemachines/acquire.asl.json',
      functionArnPlaceholder: 'AcquireFunctionArn',
      statements: pool.permissions.forAcquire(),
      parameterName: configParameterNames.acquireStateMachineArn,
      requestsReplenish: true,
    });
    this.release = this.addWorkflow('release', {
      entry: 'lambdas/release/handler.ts',
      definitionFile: 'statemachines/release.asl.json',
      functionArnPlaceholder: 'ReleaseFunctionArn',
      statements: pool.permissions.forRelease(),
      parameterName: configParameterNames.releaseStateMachineArn,
      requestsReplenish: true,
    });

    this.snapshot = this.addWorkflow('snapshot', {
      entry: 'lambdas/snapshot/handler.ts',
      definitionFile: 'statemachines/snapshot.asl.json',
      functionArnPlaceholder: 'SnapshotFunctionArn',
      statements: pool.permissions.forSnapshot(),
      parameterName: configParameterNames.snapshotStateMachineArn,
      schedule: {
        rate: schedules.snapshot,
        targets: [{ id: 'Pool', input: { pool: poolName, reason: 'schedule' } }],
      },
    });
    // Admin only, on demand: Volsd-Sync by tag target like a push (same documents and instance scope,
    // same rate control), at the pool's current generation.
    this.syncAll = this.addWorkflow('syncall', {
      entry: 'lambdas/syncall/handler.ts',
      definitionFile: 'statemachines/syncall.asl.json',
      functionArnPlaceholder: 'SyncallFunctionArn',
      statements: pool.permissions.forSyncAll(),
      parameterName: configParameterNames.syncAllStateMachineArn,
      environment: {
        FANOUT_MAX_CONCURRENCY: pool.settings.fanOut.maxConcurrency,
        FANOUT_MAX_ERRORS: pool.settings.fanOut.maxErrors,
      },
    });
    const groupNames = pool.intake.groupNames;
    this.reconcile = this.addWorkflow('reconcile', {
      entry: 'lambdas/reconcile/handler.ts',
      definitionFile: 'statemachines/reconcile.asl.json',
      functionArnPlaceholder: 'ReconcileFunctionArn',
      statements: [
        ...pool.permissions.forReconcile(),
        // Its RUNNING executions tell an acquire in hand from a lost one; reconcile starts none.
        new PolicyStatement({
          sid: 'ListAcquireExecutions',
          actions: ['states:ListExecutions'],
          resources: [this.acquire.stateMachine.stateMachineArn],
        }),
      ],
      environment: {
        ACQUIRE_STATE_MACHINE_ARN: this.acquire.stateMachine.stateMachineArn,
        SERVED_GROUPS: groupNames.join(','),
        LAUNCH_HOOK_NAME: pool.intake.hookNames.launch,
      },
      requestsReplenish: true,
      // It scans EC2 and the table in one step; every Task of its ASL allows 60 s.
      timeout: Duration.seconds(55),
      schedule: {
        rate: schedules.reconcile,
        targets: [{ id: 'Pool', input: { pool: poolName, reason: 'schedule' } }],
      },
    });

    if (groupNames.length > 0) {
      // Without served groups there is no intake rule, so nothing to consume (and SERVED_GROUPS
      // would be empty, which the dispatcher refuses at cold start).
      this.dispatcher = new VolsdFunction(this, 'Dispatcher', {
        entry: 'lambdas/dispatcher/handler.ts',
        description: `Volsd ${poolName}: lifecycle actions to acquire and release executions`,
        serviceName: 'volsd-dispatcher',
        logRetention: this.logRetention,
        logRemovalPolicy: this.logRemovalPolicy,
        projectRoot: this.projectRoot,
      })
        .setEnvironment('POOL_NAME', poolName)
        .bindStateMachine(this.acquire.stateMachine, 'ACQUIRE_STATE_MACHINE_ARN')
        .bindStateMachine(this.release.stateMachine, 'RELEASE_STATE_MACHINE_ARN')
        .setEnvironment('SERVED_GROUPS', groupNames.join(','))
        .setEnvironment('EXPECTED_ACCOUNT_ID', Stack.of(this).account)
        .setEnvironment('VERIFY_INSTANCES', 'true')
        .addToRolePolicy(...pool.permissions.forDispatcher())
        // No batching window: every message is a launch waiting in Pending:Wait.
        .consumeQueue(pool.intake.queue, { batchSize: 10 });
      // Launches wait in the queue until the pool's record exists: an acquire before would fail.
      this.dispatcher.node.addDependency(pool.record);
      pool.monitoring.alarmOnFunctionErrors(this.dispatcher.function, 'Dispatcher');
    }
  }

  /**
   * Wires one workflow: its function (workflow configuration, table, least-privilege `statements`),
   * its Standard state machine from `definitionFile` with the function's ARN substituted, logs,
   * tracing and the invoke permission, an alarm on failed executions, dashboard graphs, the admin
   * grant (hosts start acquire and release only through the host API, lib/host-api.ts), the published ARN and the schedule.
   * The extension point for further workflows, e.g. `workflows.addWorkflow('syncall', { entry:
   * 'lambdas/syncall/handler.ts', definitionFile: 'statemachines/syncall.asl.json',
   * functionArnPlaceholder: 'SyncallFunctionArn', statements: pool.permissions.forSyncAll(),
   * parameterName: configParameterNames.syncAllStateMachineArn })`.
   */
  public addWorkflow(name: string, options: WorkflowOptions): Workflow {
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(name)) {
      throw new Error(`Workflows: workflow name "${name}" must match ^[a-z][a-z0-9-]{0,30}$`);
    }
    if (this.workflows.has(name)) throw new Error(`Workflows: workflow "${name}" is already wired`);
    const { pool } = this;
    const { poolName } = pool.settings;
    const id = name.replace(/(?:^|-)([a-z0-9])/g, (_, c: string) => c.toUpperCase());

    const fn = new VolsdFunction(this, `${id}Function`, {
      entry: options.entry,
      description: `Volsd ${poolName}: steps of the ${name} workflow`,
      serviceName: `volsd-${name}`,
      timeout: options.timeout,
      logRetention: this.logRetention,
      logRemovalPolicy: this.logRemovalPolicy,
      projectRoot: this.projectRoot,
    });
    for (const [key, value] of Object.entries(pool.workflowEnvironment())) fn.setEnvironment(key, value);
    fn.bindTable(pool.table.table, 'TABLE_NAME', 'readWrite');
    // The bucket is only named to Volsd-Sync on the instances, which read it with their own role;
    // the function itself never touches it, so it gets no grant.
    fn.setEnvironment('PUSH_BUCKET', pool.push.bucket.bucketName);
    // Every Volsd-Sync a workflow sends (acquire's bring-current, replenish, sync-all) skips objects over
    // the limit the fan-out refuses, so a too-large object never reaches a volume by another push.
    fn.setEnvironment('PUSH_MAX_OBJECT_BYTES', String(pool.settings.push.maxObjectBytes));
    for (const [key, value] of Object.entries(options.environment ?? {})) fn.setEnvironment(key, value);
    fn.addToRolePolicy(...options.statements);
    if (options.requestsReplenish && name === 'replenish') {
      // Its own follow-up run (asked for while it held the AZ: lambdas/replenish `done`). By name, not by
      // reference: the state machine names this function, so a reference here would be a cycle.
      const own = workflowStateMachineArn(this, poolName, name);
      fn.setEnvironment('REPLENISH_STATE_MACHINE_ARN', own);
      fn.addToRolePolicy(
        new PolicyStatement({
          sid: 'StartOwnFollowUp',
          actions: ['states:StartExecution'],
          resources: [own],
        }),
      );
    } else if (options.requestsReplenish) {
      const replenish = this.workflows.get('replenish');
      if (!replenish) throw new Error(`Workflows: ${name} requests replenish, which is not wired yet`);
      fn.bindStateMachine(replenish.stateMachine, 'REPLENISH_STATE_MACHINE_ARN');
    }

    // A log group name under /aws/vendedlogs/ keeps the account's CloudWatch Logs resource policy
    // from growing with every state machine; the stack id's UUID makes the name unique per stack
    // instance, so a retained group never blocks the stack from being created again.
    const stackUuid = Fn.select(2, Fn.split('/', Stack.of(this).stackId));
    const logGroup = new LogGroup(this, `${id}Logs`, {
      logGroupName: `/aws/vendedlogs/states/volsd-${poolName}-${name}-${stackUuid}`,
      retention: this.logRetention,
      removalPolicy: this.logRemovalPolicy,
    });
    const stateMachineName = workflowStateMachineName(poolName, name);
    const definitionPath = join(this.projectRoot, options.definitionFile);
    if (readFileSync(definitionPath, 'utf8').includes('.waitForTaskToken')) {
      // A callback Task's step resumes its own token when what it waits for has happened already
      // (lambdas/acquire/callbacks.ts: nothing to unmount, the instance runs already); a step that fails
      // throws, and the Task fails with it, so SendTaskSuccess only. By name, not by reference: the state
      // machine names this function, so a reference here would be a cycle.
      fn.addToRolePolicy(
        new PolicyStatement({
          sid: 'ResumeOwnTasks',
          actions: ['states:SendTaskSuccess'],
          resources: [workflowStateMachineArn(this, poolName, name)],
        }),
      );
    }
    const stateMachine = new StateMachine(this, id, {
      stateMachineName,
      stateMachineType: StateMachineType.STANDARD,
      definitionBody: DefinitionBody.fromFile(definitionPath),
      definitionSubstitutions: {
        ...options.definitionSubstitutions,
        [options.functionArnPlaceholder]: fn.function.functionArn,
      },
      tracingEnabled: true,
      // Every state transition, but not the data: inputs carry lifecycle tokens, and the execution
      // history already keeps the data for 90 days.
      logs: { destination: logGroup, level: LogLevel.ALL, includeExecutionData: false },
    });
    // The Tasks name the unqualified function ARN; grantInvoke would add `<arn>:*` (every version) too.
    stateMachine.addToRolePolicy(
      new PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [fn.function.functionArn] }),
    );
    acknowledgeWildcards(stateMachine, [
      {
        finding: /^Resource::\*$/,
        reason:
          'Step Functions logging and X-Ray: the CloudWatch Logs delivery APIs and X-Ray trace upload accept only Resource "*" (AWS documentation of Step Functions logging).',
        check: isLogDeliveryOrReadOnly,
      },
    ]);

    const label = id;
    pool.monitoring.alarmOnFailedExecutions(stateMachine, label);
    this.executionsWidget.addLeftMetric(stateMachine.metricFailed({ label, statistic: 'Sum' }));
    this.durationWidget.addLeftMetric(stateMachine.metricTime({ label, statistic: 'p90' }));
    if (options.parameterName) {
      pool.config.add(options.parameterName, stateMachine.stateMachineArn, `Volsd: the ${name} workflow`);
    }
    pool.clientPolicies.allowAdminWorkflows(stateMachine);

    const schedules = (options.schedule?.targets ?? []).map(({ id: targetId, input }) => {
      const rate = options.schedule?.rate ?? Duration.minutes(5);
      const rule = new Rule(this, `${id}Schedule${targetId}`, {
        description: `Volsd ${poolName}: ${name} every ${rate.toHumanString()}`,
        schedule: Schedule.rate(rate),
        targets: [
          new SfnStateMachine(stateMachine, {
            input: RuleTargetInput.fromObject(input),
            retryAttempts: 3,
            // A start older than one period is superseded by the next tick.
            maxEventAge: rate.isUnresolved()
              ? undefined
              : Duration.seconds(Math.min(Math.max(rate.toSeconds(), 60), 86_400)),
            deadLetterQueue: this.scheduleDeadLetterQueue,
          }),
        ],
      });
      // A run before the pool's record exists would fail with UnknownPool.
      rule.node.addDependency(pool.record);
      return rule;
    });

    const workflow: Workflow = { name, function: fn, stateMachine, logGroup, schedules };
    this.workflows.set(name, workflow);
    return workflow;
  }
}
