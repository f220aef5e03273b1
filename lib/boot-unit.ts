import { join } from 'node:path';
import { Annotations, type RemovalPolicy, Stack, Tags } from 'aws-cdk-lib';
import type { AutoScalingGroup } from 'aws-cdk-lib/aws-autoscaling';
import { Rule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { type FunctionUrl, FunctionUrlAuthType } from 'aws-cdk-lib/aws-lambda';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Asset } from 'aws-cdk-lib/aws-s3-assets';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { DocumentName } from '../lambdas/shared/documents.js';
import { keys } from '../lambdas/shared/table-schema.js';
import { bootUnitTag } from '../lambdas/shared/tags.js';
import { WaitKind, waitPartitionKey } from '../lambdas/shared/task-waits.js';
import { attachDetachStatements, type ClientPolicies, invokeThroughUrlStatements } from './permissions.js';
import type { PoolSettings } from './pool-settings.js';
import { livePrefix, type PushBucket } from './push-bucket.js';
import type { SsmDocuments } from './ssm-documents.js';
import { VolsdFunction } from './volsd-function.js';
import type { VolumeTable } from './volume-table.js';
import { workflowStateMachineArn } from './workflows.js';

/** The parts of the pool {@link BootUnit} uses (not the pool construct: lib/ layering). */
export interface BootUnitPool {
  readonly settings: Pick<PoolSettings, 'poolName' | 'mountPath' | 'mountOptions' | 'push'>;
  readonly documents: Pick<SsmDocuments, 'documentNames'>;
  readonly table: Pick<VolumeTable, 'table'>;
  readonly push: Pick<PushBucket, 'bucket'>;
  readonly clientPolicies: Pick<ClientPolicies, 'instancePolicy'>;
}

/** Props of {@link BootUnit}. */
export interface BootUnitProps {
  /** The pool: table, push bucket, settings, documents, instance policy. */
  readonly pool: BootUnitPool;
  /** The acquire state machine, whose callback Tasks the functions answer. */
  readonly acquire: IStateMachine;
  /** @default the pool's */
  readonly logRetention?: RetentionDays;
  /** @default the pool's */
  readonly logRemovalPolicy?: RemovalPolicy;
  /** Directory holding `lambdas/` and `scripts/`. @default the repository root */
  readonly projectRoot?: string;
}

const defaultProjectRoot = join(import.meta.dirname, '..');

/**
 * The AWS side of the boot-unit path (docs/decisions.md, "Ready at boot"):
 * - the events function (`lambdas/events`) behind two EventBridge rules, Volsd-Unmount command final
 *   statuses and instances reaching `running`, answering the acquire's callback Tasks;
 * - the host function (`lambdas/boot`) behind a Function URL with AWS_IAM auth, which the boot unit on
 *   each instance signals; the pool's instance policy may invoke that URL;
 * - the unit's files as an S3 asset, and {@link BootUnit.installOn} to give a group of the same app the
 *   unit through its user data (with the `volsd:boot-unit` tag its acquires read).
 */
export class BootUnit extends Construct {
  /** Answers the acquire's waits from AWS events. */
  public readonly eventsFunction: VolsdFunction;
  /** Answers the boot unit's signal. */
  public readonly hostFunction: VolsdFunction;
  /** The URL the boot unit signals (AWS_IAM auth). */
  public readonly signalUrl: FunctionUrl;
  /** The rules feeding the events function. */
  public readonly rules: readonly Rule[];
  /** scripts/ as an S3 asset: the unit, its library and Volsd-Sync. */
  public readonly bundle: Asset;
  private readonly pool: BootUnitPool;

  constructor(scope: Construct, id: string, props: BootUnitProps) {
    super(scope, id);
    const { pool, acquire } = props;
    this.pool = pool;
    const root = props.projectRoot ?? defaultProjectRoot;
    const poolName = pool.settings.poolName;
    const logs = {
      logRetention: props.logRetention,
      logRemovalPolicy: props.logRemovalPolicy,
      projectRoot: root,
    };
    const unmountDocument = pool.documents.documentNames.get(DocumentName.Unmount) ?? DocumentName.Unmount;

    this.eventsFunction = new VolsdFunction(this, 'EventsFunction', {
      entry: 'lambdas/events/handler.ts',
      description: `Volsd ${poolName}: resumes acquires on unmount and instance state events`,
      serviceName: 'volsd-events',
      ...logs,
    });
    // Takes (deletes) the unmount waits it answers and marks the armed running waits fired, nothing else
    // of the table (lambdas/shared/task-waits.ts).
    this.grantItems(
      this.eventsFunction,
      'TakeEventWaits',
      ['dynamodb:DeleteItem'],
      [waitPartitionKey(WaitKind.Command, '*')],
    );
    this.grantItems(
      this.eventsFunction,
      'FireRunningWaits',
      ['dynamodb:UpdateItem'],
      [waitPartitionKey(WaitKind.Running, '*')],
    );
    // It runs the acquire's next stages in the same Task (lambdas/acquire/callbacks.ts): on the unmount's
    // Success the detach from the worker (the volume record CLAIMED -> DETACHING, DetachVolume), on the
    // instance's `running` the boot-unit path's attach (DETACHING -> ATTACHING, AttachVolume) and the wait
    // for the unit's signal. Pool volumes on pool instances only; the describes when EC2 answers otherwise
    // than expected (the volume elsewhere, a device name taken).
    this.grantItems(
      this.eventsFunction,
      'MoveVolumeRecords',
      ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      [keys.volume('*').pk],
    );
    this.grantItems(
      this.eventsFunction,
      'StoreBootWaits',
      ['dynamodb:PutItem'],
      [waitPartitionKey(WaitKind.BootUnit, '*')],
    );
    this.eventsFunction.addToRolePolicy(
      ...attachDetachStatements({ scope: this, poolName }),
      new PolicyStatement({
        sid: 'DescribeVolumesAndInstances',
        actions: ['ec2:DescribeVolumes', 'ec2:DescribeInstances'],
        resources: ['*'],
      }),
    );
    this.eventsFunction.setEnvironment('UNMOUNT_DOCUMENT', unmountDocument);
    // Resumes or fails the acquire's waiting Task; never heartbeats it (grantTaskResponse would add that).
    this.eventsFunction.addToRolePolicy(
      new PolicyStatement({
        sid: 'AnswerAcquireTasks',
        actions: ['states:SendTaskSuccess', 'states:SendTaskFailure'],
        resources: [acquire.stateMachineArn],
      }),
    );
    const target = new LambdaFunction(this.eventsFunction.function, { retryAttempts: 4 });
    this.rules = [
      new Rule(this, 'UnmountStatus', {
        description: `Volsd ${poolName}: final statuses of ${unmountDocument} commands`,
        eventPattern: {
          source: ['aws.ssm'],
          detailType: ['EC2 Command Status-change Notification'],
          detail: {
            'document-name': [unmountDocument],
            status: ['Success', 'Failed', 'TimedOut', 'Cancelled'],
          },
        },
        targets: [target],
      }),
      new Rule(this, 'InstanceRunning', {
        description: `Volsd ${poolName}: instances reaching running (acquires attach then)`,
        eventPattern: {
          source: ['aws.ec2'],
          detailType: ['EC2 Instance State-change Notification'],
          detail: { state: ['running'] },
        },
        targets: [target],
      }),
    ];

    this.hostFunction = new VolsdFunction(this, 'HostFunction', {
      entry: 'lambdas/boot/handler.ts',
      description: `Volsd ${poolName}: the boot unit's signal (the caller's instance from its IAM identity)`,
      serviceName: 'volsd-boot',
      ...logs,
    });
    // Reads and takes the boot waits, reads the pool's record (its generation); nothing else.
    this.grantItems(
      this.hostFunction,
      'ReadBootWaitsAndPool',
      ['dynamodb:GetItem'],
      [waitPartitionKey(WaitKind.BootUnit, '*'), keys.pool(poolName).pk],
    );
    this.grantItems(
      this.hostFunction,
      'TakeBootWaits',
      ['dynamodb:DeleteItem'],
      [waitPartitionKey(WaitKind.BootUnit, '*')],
    );
    this.hostFunction.setEnvironment('PUSH_BUCKET', pool.push.bucket.bucketName);
    this.hostFunction.setEnvironment('PUSH_PREFIX', livePrefix);
    this.hostFunction.setEnvironment('PUSH_MAX_OBJECT_BYTES', String(pool.settings.push.maxObjectBytes));
    // Callers of another account are refused, as by the host API (lambdas/hostapi/identity.ts).
    this.hostFunction.setEnvironment('EXPECTED_ACCOUNT_ID', Stack.of(this).account);
    // By name, not by reference: a group's user data names this function's URL, and the acquire state
    // machine's function names the group (CompleteLifecycleAction), so a reference here would be a cycle.
    this.hostFunction.addToRolePolicy(
      new PolicyStatement({
        actions: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
        resources: [workflowStateMachineArn(this, poolName, 'acquire')],
      }),
    );
    this.signalUrl = this.hostFunction.function.addFunctionUrl({ authType: FunctionUrlAuthType.AWS_IAM });
    pool.clientPolicies.instancePolicy.addStatements(
      ...invokeThroughUrlStatements(this.hostFunction.function, 'SignalBootUnit'),
    );

    this.bundle = new Asset(this, 'Bundle', { path: join(root, 'scripts') });
  }

  /**
   * Grants `actions` on the table's items whose partition key matches one of `keys` (condition
   * `dynamodb:LeadingKeys`), and decrypting with its key when it has one; sets TABLE_NAME.
   */
  private grantItems(fn: VolsdFunction, sid: string, actions: string[], keys: string[]): void {
    const table = this.pool.table.table;
    fn.addToRolePolicy(
      new PolicyStatement({
        sid,
        actions,
        resources: [table.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': keys } },
      }),
    );
    // Reading items (GetItem, DeleteItem's old item): decrypt, as the host API's. Writing attributes
    // (UpdateItem, PutItem): encrypt and a data key too, named one by one (no wildcard actions).
    if (actions.some((a) => a === 'dynamodb:UpdateItem' || a === 'dynamodb:PutItem'))
      table.encryptionKey?.grant(fn.function, 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey');
    else table.encryptionKey?.grantDecrypt(fn.function);
    fn.setEnvironment('TABLE_NAME', table.tableName);
  }

  /**
   * The user data lines that install and start the unit: the scripts from the asset into
   * /usr/local/lib/volsd, the systemd unit, /etc/volsd/boot.env with the pool's settings.
   */
  public userDataLines(): string[] {
    const s = this.pool.settings;
    const region = Stack.of(this).region;
    const dir = '/usr/local/lib/volsd';
    return [
      `mkdir -p ${dir} /etc/volsd`,
      `aws s3 cp --region ${region} ${this.bundle.s3ObjectUrl} /tmp/volsd-boot.zip`,
      `(cd ${dir} && python3 -m zipfile -e /tmp/volsd-boot.zip . && chmod 0755 ${dir}/*.sh)`,
      `install -m 0644 ${dir}/volsd-boot.service /etc/systemd/system/volsd-boot.service`,
      `printf 'VOLSD_SIGNAL_URL=%s\\nVOLSD_REGION=%s\\nVOLSD_MOUNT_PATH=%s\\nVOLSD_MOUNT_OPTIONS=%s\\n' '${this.signalUrl.url}' '${region}' '${s.mountPath}' '${s.mountOptions}' > /etc/volsd/boot.env`,
      'systemctl daemon-reload',
      'systemctl enable --now volsd-boot.service',
    ];
  }

  /**
   * Gives a group of this app the unit: its user data installs and starts it, its role may read the
   * bundle, and the `volsd:boot-unit=1` tag (propagated to its instances) tells their acquires to wait
   * for the unit's signal instead of mounting over SSM.
   */
  public installOn(group: AutoScalingGroup): void {
    try {
      group.addUserData(...this.userDataLines());
    } catch (err) {
      // A group launched from a launch template of its own has no user data the construct can extend.
      Annotations.of(group).addWarningV2(
        'volsd:bootUnitNotInstalled',
        `Volsd: the boot unit is not installed on this group (${err instanceof Error ? err.message : String(err)}); its instances mount over SSM. README, "Ready at boot", shows the user data to add.`,
      );
      return;
    }
    // The bundle's one object, not the whole assets bucket (Asset.grantRead gives every asset of the
    // account and Region, the functions' code included).
    group.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ReadVolsdBootBundle',
        actions: ['s3:GetObject'],
        resources: [this.bundle.bucket.arnForObjects(this.bundle.s3ObjectKey)],
      }),
    );
    Tags.of(group).add(bootUnitTag, '1', {
      includeResourceTypes: ['AWS::AutoScaling::AutoScalingGroup'],
      applyToLaunchedInstances: true,
    });
  }
}
