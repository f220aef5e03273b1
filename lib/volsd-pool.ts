import { Annotations, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import { AutoScalingGroup, CfnAutoScalingGroup, type IAutoScalingGroup } from 'aws-cdk-lib/aws-autoscaling';
import type { ISubnet, IVpc, SubnetSelection } from 'aws-cdk-lib/aws-ec2';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { VolsdDocument } from '../lambdas/shared/documents.js';
import { BootUnit } from './boot-unit.js';
import { ConfigParameters, configParameterNames } from './config-parameters.js';
import { HostApi } from './host-api.js';
import { LifecycleIntake, type ServedGroup } from './lifecycle-intake.js';
import { Monitoring } from './monitoring.js';
import { ClientPolicies, WorkflowPermissions } from './permissions.js';
import { PoolGrowth } from './pool-growth.js';
import { PoolRecord } from './pool-record.js';
import {
  type PoolSettings,
  type PoolSettingsProps,
  resolvePoolSettings,
  VolsdConfigError,
} from './pool-settings.js';
import { livePrefix, PushBucket } from './push-bucket.js';
import { PushFanOut } from './push-fanout.js';
import { SsmDocuments } from './ssm-documents.js';
import { SyncWorkers } from './sync-workers.js';
import { VolumeTable } from './volume-table.js';
import { Workflows } from './workflows.js';

/** Props of {@link VolsdPool}. Every value is validated at synth; see {@link PoolSettingsProps} for the rest. */
export interface VolsdPoolProps extends PoolSettingsProps {
  /** VPC of the sync workers. Any VPC in the served groups' AZs; the workers need a route to SSM and S3. */
  readonly vpc: IVpc;
  /**
   * Subnets of the sync workers: one per AZ of the pool (each AZ gets one worker and its idle volumes).
   * @default one subnet per AZ of the VPC's default selection (private, else isolated, else public)
   */
  readonly subnets?: SubnetSelection;
  /**
   * Auto Scaling groups the pool serves: names, or groups of the same app (which then get the pool
   * tags). Their instances must carry `volsd:pool=<poolName>` (propagated from the group).
   * @default none (volsd-client can still acquire by hand)
   */
  readonly autoScalingGroups?: readonly ServedGroup[];
  /**
   * Topic every alarm notifies.
   * @default a new KMS-encrypted, TLS-only topic
   */
  readonly alarmTopic?: ITopic;
  /**
   * Customer managed key for the table and the push bucket.
   * @default AWS managed encryption (aws/dynamodb, SSE-S3)
   */
  readonly dataKey?: IKey;
  /**
   * What happens to the table and the push bucket when the pool leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * The pool's SSM documents.
   * @default every document of the catalogue in `lambdas/shared/documents.ts`
   */
  readonly documents?: readonly VolsdDocument[];
  /**
   * How long the workflow functions' and state machines' log groups keep events.
   * @default RetentionDays.ONE_MONTH
   */
  readonly logRetention?: RetentionDays;
  /**
   * What happens to those log groups when the pool leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
  /**
   * Served groups given as constructs of this app get the boot unit (scripts/volsd-boot.sh) through
   * their user data and the `volsd:boot-unit` tag, so their instances mount at boot and signal instead
   * of waiting for Volsd-Mount over SSM (docs/decisions.md, "Ready at boot"). Groups given by name
   * follow README, "Ready at boot".
   * @default true
   */
  readonly bootUnit?: boolean;
}

/**
 * A Volsd pool: per AZ, idle EBS volumes that already hold the current content tree, handed to
 * instances of the served Auto Scaling groups at launch. Built from one construct per concern, each
 * exposed read-only: the volume table and the pool's record in it, the push bucket and its queue,
 * the lifecycle intake, the sync workers, the SSM documents, the configuration parameters, the
 * monitoring, the client policies, the workflows' permissions, the workflows themselves (acquire,
 * release, replenish, snapshot, reconcile: functions, state machines, schedules; the lifecycle
 * dispatcher) and the push fan-out. More workflows plug in with `pool.workflows.addWorkflow()`.
 */
export class VolsdPool extends Construct {
  /** The validated settings with every default applied (what the workflows are configured with). */
  public readonly settings: PoolSettings;
  /** The pool's AZs (tokens in an environment-agnostic stack), one per worker subnet. */
  public readonly availabilityZones: readonly string[];
  /** The worker subnets, one per AZ. */
  public readonly subnets: readonly ISubnet[];
  /** Volume table. */
  public readonly table: VolumeTable;
  /** The pool's record in the table (AZs, idle target), written at deploy. */
  public readonly record: PoolRecord;
  /** Push bucket and push queue. */
  public readonly push: PushBucket;
  /** Lifecycle hooks, rule and intake queue. */
  public readonly intake: LifecycleIntake;
  /** Sync workers, one per AZ. */
  public readonly workers: SyncWorkers;
  /** SSM documents. */
  public readonly documents: SsmDocuments;
  /** Configuration published under `/volsd/<pool>/`. */
  public readonly config: ConfigParameters;
  /** Alarms, alarm topic, dashboard. */
  public readonly monitoring: Monitoring;
  /** Managed policies for client hosts and admins. */
  public readonly clientPolicies: ClientPolicies;
  /** Least-privilege statements for the workflows, per workflow. */
  public readonly permissions: WorkflowPermissions;
  /** The workflows (functions, state machines, schedules) and the lifecycle dispatcher. */
  public readonly workflows: Workflows;
  /** The push fan-out and push status functions. */
  public readonly fanOut: PushFanOut;
  /** The host API: hosts acquire, release and read their state through it, for themselves only. */
  public readonly hostApi: HostApi;
  /** The grow function and its schedule (volumes that grow with the content). */
  public readonly growth: PoolGrowth;
  /** The boot-unit path: events and host functions, the signal URL, the unit's bundle. */
  public readonly bootUnit: BootUnit;

  constructor(scope: Construct, id: string, props: VolsdPoolProps) {
    super(scope, id);
    this.settings = resolvePoolSettings(props);
    const { poolName } = this.settings;

    this.subnets = props.vpc.selectSubnets(props.subnets ?? { onePerAz: true }).subnets;
    this.availabilityZones = this.subnets.map((s) => s.availabilityZone);
    validatePlacement(poolName, this.availabilityZones, props.autoScalingGroups ?? []);
    checkAzCoverage(this, this.availabilityZones, props.autoScalingGroups ?? []);

    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.table = new VolumeTable(this, 'VolumeTable', { encryptionKey: props.dataKey, removalPolicy });
    this.record = new PoolRecord(this, 'Record', {
      poolName,
      table: this.table.table,
      availabilityZones: this.availabilityZones,
      idlePerAz: this.settings.idlePerAz,
    });
    this.push = new PushBucket(this, 'Push', {
      encryptionKey: props.dataKey,
      removalPolicy,
      writerArns: this.settings.push.writerArns,
    });
    this.intake = new LifecycleIntake(this, 'LifecycleIntake', {
      poolName,
      autoScalingGroups: props.autoScalingGroups,
      heartbeatTimeout: this.settings.heartbeatTimeout,
      acquireFailureResult: this.settings.acquireFailureResult,
    });
    this.workers = new SyncWorkers(this, 'SyncWorkers', {
      poolName,
      vpc: props.vpc,
      subnets: this.subnets,
      pushBucket: this.push.bucket,
      pushBucketKey: props.dataKey,
      instanceType: this.settings.workerInstanceType,
      maxWorkersPerAz: this.settings.maxWorkersPerAz,
      rootVolumeKey: this.settings.volume.kmsKey,
      accountDefaultVolumeKey: this.settings.volume.accountDefaultKmsKey,
    });
    this.documents = new SsmDocuments(this, 'Documents', { poolName, documents: props.documents });

    this.config = new ConfigParameters(this, 'Config', { poolName });
    this.config.add(configParameterNames.tableName, this.table.table.tableName, 'Volsd: the volume table');
    this.config.add(
      configParameterNames.pushBucketName,
      this.push.bucket.bucketName,
      'Volsd: the push bucket',
    );
    this.config.add(
      configParameterNames.mountPath,
      this.settings.mountPath,
      'Volsd: mount path on served hosts',
    );

    this.monitoring = new Monitoring(this, 'Monitoring', {
      poolName,
      availabilityZones: this.availabilityZones,
      idlePerAz: this.settings.idlePerAz,
      ...(this.settings.adaptive ? { adaptiveMaxPerAz: this.settings.adaptive.maxPerAz } : {}),
      idleMetricPeriod: this.settings.schedules.replenish,
      alarmTopic: props.alarmTopic,
    });
    this.monitoring.alarmOnDeadLetterQueue(this.intake.deadLetterQueue, 'Intake');
    this.monitoring.alarmOnDeadLetterQueue(this.push.deadLetterQueue, 'Push');
    this.monitoring.addQueueWidgets('Lifecycle intake', this.intake.queue, this.intake.deadLetterQueue);
    this.monitoring.addQueueWidgets('Push', this.push.queue, this.push.deadLetterQueue);
    this.workers.workers.forEach((worker, index) => {
      this.monitoring.alarmOnMissingWorker(worker.group, String(index));
    });

    this.clientPolicies = new ClientPolicies(this, 'ClientPolicies', {
      poolName,
      table: this.table.table,
      parametersArn: this.config.parametersArn,
      parameterPathArn: this.config.pathArn,
      pushBucket: this.push.bucket,
      pushBucketKey: props.dataKey,
    });
    for (const group of props.autoScalingGroups ?? []) {
      // Volsd-Sync runs on the served instances with their own role.
      if (group instanceof AutoScalingGroup) group.role.addManagedPolicy(this.clientPolicies.instancePolicy);
    }
    this.permissions = new WorkflowPermissions({
      scope: this,
      poolName,
      documentNames: this.documents.documentNames,
      groupNames: this.intake.groupNames,
      volumeKey: this.settings.volume.kmsKey,
      accountDefaultVolumeKey: this.settings.volume.accountDefaultKmsKey,
      directCreate: this.settings.directCreate,
    });
    // Last: the functions read every part above through `this`.
    const logs = { logRetention: props.logRetention, logRemovalPolicy: props.logRemovalPolicy };
    this.workflows = new Workflows(this, 'Workflows', { pool: this, ...logs });
    this.fanOut = new PushFanOut(this, 'PushFanOut', { pool: this, ...logs });
    this.hostApi = new HostApi(this, 'HostApi', { pool: this, ...logs });
    this.growth = new PoolGrowth(this, 'Growth', { pool: this, ...logs });
    this.bootUnit = new BootUnit(this, 'BootUnit', {
      pool: this,
      acquire: this.workflows.acquire.stateMachine,
      ...logs,
    });
    if (props.bootUnit !== false) {
      for (const group of props.autoScalingGroups ?? []) {
        if (group instanceof AutoScalingGroup) this.bootUnit.installOn(group);
      }
    }
  }

  /**
   * The pool's settings as the workflow functions read them (`lambdas/shared/workflow-config.ts`):
   * pool name, mount path and options, push prefix, failure result, release policy, heartbeat timeout
   * in seconds, volume spec and key, snapshot retention, and the deployed document names
   * (`MOUNT_DOCUMENT`, ...). Table and bucket come with
   * `VolsdFunction.bindTable()` / `bindBucket()`, which grant access too.
   */
  public workflowEnvironment(): Record<string, string> {
    const s = this.settings;
    const environment: Record<string, string> = {
      [envNames.poolName]: s.poolName,
      [envNames.mountPath]: s.mountPath,
      [envNames.mountOptions]: s.mountOptions,
      [envNames.pushPrefix]: livePrefix,
      [envNames.acquireFailureResult]: s.acquireFailureResult,
      [envNames.releasePolicy]: s.releasePolicy,
      [envNames.heartbeatTimeout]: String(s.heartbeatTimeout.toSeconds()),
      [envNames.volumeSizeGiB]: String(s.volume.sizeGiB),
      [envNames.volumeType]: s.volume.type,
      [envNames.volumeIops]: String(s.volume.iops),
      [envNames.volumeThroughput]: String(s.volume.throughputMiBps),
      [envNames.snapshotRetention]: String(s.snapshotRetention),
      [envNames.directCreate]: String(s.directCreate),
      [envNames.initialization]: s.initialization.method,
      [envNames.initializationRate]: String(s.initialization.rateMiBps),
      [envNames.coldDirectVolume]: s.coldDirectVolume,
      ...(s.adaptive
        ? {
            ADAPTIVE_SIZING: 'true',
            ADAPTIVE_MIN: String(s.adaptive.minPerAz),
            ADAPTIVE_MAX: String(s.adaptive.maxPerAz),
            ADAPTIVE_BUDGET_DOLLARS_PER_MONTH: String(s.adaptive.budgetDollarsPerMonth),
            ADAPTIVE_LOOKBACK_DAYS: String(s.adaptive.lookbackDays),
            WORKER_DOLLARS_PER_MONTH: String(s.adaptive.workerDollarsPerMonth),
          }
        : {}),
      ...(s.volume.kmsKey ? { [envNames.kmsKeyId]: s.volume.kmsKey.keyArn } : {}),
    };
    for (const [name, deployed] of this.documents.documentNames) {
      // Volsd-Mount -> MOUNT_DOCUMENT
      environment[`${name.replace(/^Volsd-/, '').toUpperCase()}_DOCUMENT`] = deployed;
    }
    return environment;
  }
}

/** Environment variable names of the workflow configuration. */
const envNames = {
  poolName: 'POOL_NAME',
  mountPath: 'MOUNT_PATH',
  mountOptions: 'MOUNT_OPTIONS',
  pushPrefix: 'PUSH_PREFIX',
  acquireFailureResult: 'ACQUIRE_FAILURE_RESULT',
  releasePolicy: 'RELEASE_POLICY',
  heartbeatTimeout: 'HEARTBEAT_TIMEOUT',
  volumeSizeGiB: 'VOLUME_SIZE_GIB',
  volumeType: 'VOLUME_TYPE',
  volumeIops: 'VOLUME_IOPS',
  volumeThroughput: 'VOLUME_THROUGHPUT',
  kmsKeyId: 'KMS_KEY_ID',
  snapshotRetention: 'SNAPSHOT_RETENTION',
  directCreate: 'DIRECT_CREATE',
  initialization: 'INITIALIZATION',
  initializationRate: 'INITIALIZATION_RATE',
  coldDirectVolume: 'COLD_DIRECT_VOLUME',
} as const;

/** Checks what only the construct can see: one subnet per AZ, sane group names. */
function validatePlacement(poolName: string, azs: readonly string[], groups: readonly ServedGroup[]): void {
  const problems: string[] = [];
  if (azs.length === 0) problems.push('subnets must select at least one subnet');
  const resolvedAzs = azs.filter((az) => !Token.isUnresolved(az));
  const duplicateAz = resolvedAzs.find((az, i) => resolvedAzs.indexOf(az) !== i);
  if (duplicateAz) problems.push(`subnets must be one per AZ: ${duplicateAz} has more than one`);
  const names = groups.filter((g): g is string => typeof g === 'string' && !Token.isUnresolved(g));
  for (const name of names) {
    // A wildcard in a group name would widen the lifecycle-action permissions to other groups.
    // The functions receive the names as one comma-separated, trimmed variable (SERVED_GROUPS): a comma
    // or an outer space, both allowed by Auto Scaling, would make every event of the group "not served".
    if (name.length < 1 || name.length > 255 || /[*?:,]/.test(name) || name !== name.trim()) {
      problems.push(
        `autoScalingGroups: "${name}" is not a valid group name (1-255 characters, no * ? : or comma, no leading or trailing space)`,
      );
    }
  }
  const duplicateGroup = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicateGroup) problems.push(`autoScalingGroups: "${duplicateGroup}" is listed twice`);
  if (problems.length > 0) throw new VolsdConfigError(poolName, problems);
}

/** Id of the synth warning for served groups whose AZs the app cannot see (acknowledge it once checked). */
export const uncheckedAzsWarningId = 'volsd:servedGroupAzsUnchecked';

/**
 * The pool serves launches only in its own AZs: an instance elsewhere finds no volume, its launch is
 * abandoned and Auto Scaling relaunches it, in a loop. So every served group's AZs must be among the
 * pool's. Checked here when the group is a construct of this app in subnets with known AZs (an error
 * that fails the synth); for groups given by name or imported, a warning says what to check and how.
 */
function checkAzCoverage(pool: Construct, poolAzs: readonly string[], groups: readonly ServedGroup[]): void {
  if (groups.length === 0) return;
  const stack = Stack.of(pool);
  // Same AZ whether written as a name or as Fn::Select(i, Fn::GetAZs) (the same index of the same Region).
  const key = (az: string) => JSON.stringify(stack.resolve(az));
  const covered = new Set(poolAzs.map(key));
  const unchecked: string[] = [];
  for (const group of groups) {
    const name = typeof group === 'string' ? group : group.node.path;
    const azs = typeof group === 'string' ? undefined : knownGroupAzs(group);
    if (!azs) {
      unchecked.push(typeof group === 'string' ? group : servedGroupLabel(group));
      continue;
    }
    const outside = azs.filter((az) => !covered.has(key(az)));
    if (outside.length > 0) {
      Annotations.of(pool).addError(
        `Served group ${name} launches in ${outside.map((az) => describeAz(stack, az)).join(', ')}, ` +
          `outside the pool's AZs (${poolAzs.map((az) => describeAz(stack, az)).join(', ')}): its instances ` +
          'there would find no volume, be abandoned and relaunched in a loop. Give the pool a subnet in each ' +
          "of the group's AZs (VolsdPool subnets, or maxAzs / volsd:availabilityZones of the stack), or keep " +
          "the group's subnets within the pool's AZs.",
      );
    }
  }
  if (unchecked.length > 0) {
    Annotations.of(pool).addWarningV2(
      uncheckedAzsWarningId,
      `The AZs of served group(s) ${unchecked.join(', ')} are not known at synth, so nothing checks that ` +
        `the pool covers them. The pool serves only ${poolAzs.map((az) => describeAz(stack, az)).join(', ')}; ` +
        'an instance launched in any other AZ is abandoned and relaunched, in a loop. Compare ' +
        '`aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names <group> --query ' +
        '"AutoScalingGroups[].AvailabilityZones"` with `aws ec2 describe-availability-zones --query ' +
        '"AvailabilityZones[].ZoneName"` (the Region\'s AZs in the order the pool takes them), then raise ' +
        `volsd:maxAzs or name the pool's subnets. Acknowledge with Annotations.of(pool).acknowledgeWarning('${uncheckedAzsWarningId}').`,
    );
  }
}

/** A readable AZ: its name, or its index in the Region when the stack is environment-agnostic. */
function describeAz(stack: Stack, az: string): string {
  if (!Token.isUnresolved(az)) return az;
  const resolved = stack.resolve(az) as { 'Fn::Select'?: [number, { 'Fn::GetAZs'?: unknown }] };
  const select = resolved['Fn::Select'];
  return select && select[1]['Fn::GetAZs'] !== undefined
    ? `the Region's AZ #${select[0] + 1}`
    : JSON.stringify(resolved);
}

function servedGroupLabel(group: IAutoScalingGroup): string {
  return Token.isUnresolved(group.autoScalingGroupName) ? group.node.path : group.autoScalingGroupName;
}

/**
 * The AZs a group of this app launches in, when knowable: its explicit AZs, or the AZs of the subnets
 * of its VPCZoneIdentifier found among the app's subnets (an imported subnet without an AZ is unknown).
 */
function knownGroupAzs(group: IAutoScalingGroup): string[] | undefined {
  const cfn = group.node.defaultChild;
  if (!(cfn instanceof CfnAutoScalingGroup)) return undefined;
  const subnetIds = cfn.vpcZoneIdentifier;
  if (!subnetIds || Token.isUnresolved(subnetIds)) {
    const azs = cfn.availabilityZones;
    return azs && !Token.isUnresolved(azs) && azs.length > 0 ? [...azs] : undefined;
  }
  const subnets = group.node.root.node
    .findAll()
    .filter((c): c is Construct & ISubnet => 'subnetId' in c && 'routeTable' in c);
  const azs: string[] = [];
  for (const subnetId of subnetIds) {
    const subnet = subnets.find((candidate) => candidate.subnetId === subnetId);
    if (!subnet) return undefined;
    try {
      azs.push(subnet.availabilityZone);
    } catch {
      return undefined; // imported without availabilityZone: CDK throws on read
    }
  }
  return azs;
}
