import { Arn, ArnFormat, Stack } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Effect, ManagedPolicy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct, type IConstruct } from 'constructs';
import { DocumentName } from '../lambdas/shared/documents.js';
import { poolTag, Role, roleTag } from '../lambdas/shared/tags.js';
import { acknowledgeWildcards, findingArn } from './nag.js';
import { livePrefix } from './push-bucket.js';

/*
 * IAM statements for what the Volsd workflows do, least privilege by construction:
 * - every mutating EC2 action is allowed only on resources tagged with the pool (`aws:ResourceTag`),
 *   or, for creations, only when the request tags the new resource with the pool (`aws:RequestTag`);
 *   volumes must also carry `volsd:role=volume`, so a root volume that somehow got the pool tag can
 *   still never be detached or deleted by Volsd;
 * - an action touching several resources (AttachVolume: volume AND instance) needs every one of them
 *   allowed, so each resource type has its own statement with its own tag condition;
 * - Describe, List and Get calls of EC2, Auto Scaling and SSM support no resource-level permissions:
 *   AWS accepts only Resource "*" for them, so they get "*" and nothing that mutates.
 */

/** Which pool and Region the statements are for. */
export interface PermissionScope {
  /** Any construct of the stack the statements will live in (for partition, Region and account). */
  readonly scope: IConstruct;
  /** The pool's name: the value required of the `volsd:pool` tag. */
  readonly poolName: string;
}

/** The EC2 actions that change something; the infra tests require a tag condition on each. */
export const mutatingEc2Actions = [
  'ec2:AttachVolume',
  'ec2:DetachVolume',
  'ec2:CreateVolume',
  'ec2:DeleteVolume',
  'ec2:CreateSnapshot',
  'ec2:DeleteSnapshot',
  'ec2:CreateTags',
  'ec2:ModifyInstanceAttribute',
  'ec2:ModifyVolume',
] as const;

function ec2Arn(scope: IConstruct, resource: 'volume' | 'instance' | 'snapshot'): string {
  // Snapshot ARNs carry no account: arn:aws:ec2:<region>::snapshot/<id>.
  return Stack.of(scope).formatArn({
    service: 'ec2',
    resource,
    resourceName: '*',
    ...(resource === 'snapshot' ? { account: '' } : {}),
  });
}

const poolResource = (poolName: string) => ({ [`aws:ResourceTag/${poolTag}`]: poolName });
const poolVolume = (poolName: string) => ({
  [`aws:ResourceTag/${poolTag}`]: poolName,
  [`aws:ResourceTag/${roleTag}`]: Role.Volume,
});

/** The read-only EC2, Auto Scaling and SSM calls of the workflows (each names the ones its code makes). */
export const describeActions = [
  'ec2:DescribeVolumes',
  'ec2:DescribeVolumeStatus',
  'ec2:DescribeInstances',
  'ec2:DescribeInstanceTypes',
  'ec2:DescribeSnapshots',
  'autoscaling:DescribeAutoScalingInstances',
  'ssm:DescribeInstanceInformation',
] as const;

/** One of {@link describeActions}. */
export type DescribeAction = (typeof describeActions)[number];

/**
 * Read-only EC2, Auto Scaling and SSM calls, exactly `actions` (those the function's code makes;
 * test/infra/code-grants.test.ts holds each role to its bundle). Resource "*" because AWS allows nothing
 * narrower for them.
 */
export function describeStatements(actions: readonly DescribeAction[]): PolicyStatement[] {
  if (actions.length === 0) return [];
  return [new PolicyStatement({ sid: 'DescribeOnly', actions: [...actions], resources: ['*'] })];
}

/**
 * Pool growth: ModifyVolume only on volumes tagged with the pool AND `volsd:role=volume` (never a root
 * volume or anyone else's), and the reads it needs (DescribeVolumesModifications accepts only "*").
 */
export function growVolumeStatements(props: PermissionScope): PolicyStatement[] {
  return [
    new PolicyStatement({
      sid: 'DescribeVolumeModifications',
      actions: ['ec2:DescribeVolumes', 'ec2:DescribeVolumesModifications'],
      resources: ['*'],
    }),
    new PolicyStatement({
      sid: 'GrowPoolVolumes',
      actions: ['ec2:ModifyVolume'],
      resources: [ec2Arn(props.scope, 'volume')],
      conditions: { StringEquals: poolVolume(props.poolName) },
    }),
  ];
}

/**
 * Reading the outcome of an SSM command on one instance (GetCommandInvocation accepts only Resource "*");
 * with `list`, also ListCommands and ListCommandInvocations (sync-all, which follows one command on
 * many instances).
 */
export function commandStatusStatements({ list = false }: { list?: boolean } = {}): PolicyStatement[] {
  return [
    new PolicyStatement({
      sid: 'ReadCommandStatus',
      actions: [
        'ssm:GetCommandInvocation',
        ...(list ? ['ssm:ListCommandInvocations', 'ssm:ListCommands'] : []),
      ],
      resources: ['*'],
    }),
  ];
}

/**
 * AttachVolume and DetachVolume (DetachVolume only with `detachOnly`, for workflows that never attach):
 * the volume AND the instance must both be tagged with the pool.
 */
export function attachDetachStatements(
  { scope, poolName }: PermissionScope,
  { detachOnly = false }: { detachOnly?: boolean } = {},
): PolicyStatement[] {
  const actions = detachOnly ? ['ec2:DetachVolume'] : ['ec2:AttachVolume', 'ec2:DetachVolume'];
  const what = detachOnly ? 'Detach' : 'AttachDetach';
  return [
    new PolicyStatement({
      sid: `${what}PoolVolumes`,
      actions,
      resources: [ec2Arn(scope, 'volume')],
      conditions: { StringEquals: poolVolume(poolName) },
    }),
    new PolicyStatement({
      sid: `${what}OnPoolInstances`,
      actions,
      resources: [ec2Arn(scope, 'instance')],
      conditions: { StringEquals: poolResource(poolName) },
    }),
  ];
}

/**
 * CreateVolume only when the request tags the volume with the pool and `volsd:role=volume`, from a
 * snapshot of the pool (or from none); CreateTags only as part of that creation.
 */
export function createVolumeStatements({ scope, poolName }: PermissionScope): PolicyStatement[] {
  return [
    new PolicyStatement({
      sid: 'CreatePoolVolumes',
      actions: ['ec2:CreateVolume'],
      resources: [ec2Arn(scope, 'volume')],
      conditions: {
        StringEquals: { [`aws:RequestTag/${poolTag}`]: poolName, [`aws:RequestTag/${roleTag}`]: Role.Volume },
      },
    }),
    new PolicyStatement({
      sid: 'CreateVolumesFromPoolSnapshots',
      actions: ['ec2:CreateVolume'],
      resources: [ec2Arn(scope, 'snapshot')],
      conditions: { StringEquals: poolResource(poolName) },
    }),
    tagOnCreateStatement(scope, poolName, 'TagNewPoolVolumes', 'volume', 'CreateVolume'),
  ];
}

/** DeleteVolume on pool volumes only. */
export function deleteVolumeStatements({ scope, poolName }: PermissionScope): PolicyStatement[] {
  return [
    new PolicyStatement({
      sid: 'DeletePoolVolumes',
      actions: ['ec2:DeleteVolume'],
      resources: [ec2Arn(scope, 'volume')],
      conditions: { StringEquals: poolVolume(poolName) },
    }),
  ];
}

/**
 * Attributes `ModifyInstanceAttribute` could change that Volsd never does, each with the
 * `ec2:Attribute/<name>` key EC2 sets for it (the API parameter's name, as in AWS's
 * `ec2:Attribute/Description` example): a Deny per key, for the value forms IAM can see.
 */
export const forbiddenInstanceAttributes = [
  'InstanceType',
  'UserData',
  'InstanceInitiatedShutdownBehavior',
  'DisableApiTermination',
  'SourceDestCheck',
] as const;

/**
 * ModifyInstanceAttribute, for the one change Volsd makes (DeleteOnTermination of an attached pool
 * volume, a safety net; `setDeleteOnTermination` in lambdas/shared/ec2-ops.ts):
 * - allowed only on pool-tagged instances that are not sync workers (`volsd:role=worker` is set by the
 *   pool on every worker; clients of groups given by name carry no role tag, so the test is "not a
 *   worker" rather than "a client");
 * - denied whenever the request names another attribute in `Attribute` (`ec2:Attribute`, the
 *   primitive form: `--attribute instanceType --value ...`), and whenever it sets one of
 *   {@link forbiddenInstanceAttributes} in its value form.
 * IAM cannot allow "BlockDeviceMappings only": AWS documents `ec2:Attribute/<name>` only for
 * primitive values and single-Value objects, not for a list of structures like BlockDeviceMappings,
 * and Volsd's call sets no `Attribute`; an Allow conditioned on either would refuse Volsd's own call.
 * So the Allow is narrowed by resource, and the other attributes are cut away by Deny statements
 * whose conditions hold only when the key is present (`Null: false`), never for Volsd's request.
 */
export function modifyInstanceStatements({ scope, poolName }: PermissionScope): PolicyStatement[] {
  const instances = [ec2Arn(scope, 'instance')];
  return [
    new PolicyStatement({
      sid: 'ModifyPoolClientInstances',
      actions: ['ec2:ModifyInstanceAttribute'],
      resources: instances,
      conditions: {
        StringEquals: poolResource(poolName),
        StringNotEquals: { [`aws:ResourceTag/${roleTag}`]: Role.Worker },
      },
    }),
    new PolicyStatement({
      sid: 'ModifyNoOtherAttribute',
      effect: Effect.DENY,
      actions: ['ec2:ModifyInstanceAttribute'],
      resources: instances,
      conditions: {
        Null: { 'ec2:Attribute': 'false' },
        StringNotEqualsIgnoreCase: { 'ec2:Attribute': 'blockDeviceMapping' },
      },
    }),
    ...forbiddenInstanceAttributes.map(
      (name) =>
        new PolicyStatement({
          sid: `ModifyNo${name}`,
          effect: Effect.DENY,
          actions: ['ec2:ModifyInstanceAttribute'],
          resources: instances,
          conditions: { Null: { [`ec2:Attribute/${name}`]: 'false' } },
        }),
    ),
  ];
}

/**
 * CreateSnapshot of a pool volume into a snapshot tagged with the pool; DeleteSnapshot of pool
 * snapshots; CreateTags only as part of the creation.
 */
export function snapshotStatements({ scope, poolName }: PermissionScope): PolicyStatement[] {
  return [
    new PolicyStatement({
      sid: 'SnapshotPoolVolumes',
      actions: ['ec2:CreateSnapshot'],
      resources: [ec2Arn(scope, 'volume')],
      conditions: { StringEquals: poolVolume(poolName) },
    }),
    new PolicyStatement({
      sid: 'CreatePoolSnapshots',
      actions: ['ec2:CreateSnapshot'],
      resources: [ec2Arn(scope, 'snapshot')],
      conditions: { StringEquals: { [`aws:RequestTag/${poolTag}`]: poolName } },
    }),
    tagOnCreateStatement(scope, poolName, 'TagNewPoolSnapshots', 'snapshot', 'CreateSnapshot'),
    new PolicyStatement({
      sid: 'DeletePoolSnapshots',
      actions: ['ec2:DeleteSnapshot'],
      resources: [ec2Arn(scope, 'snapshot')],
      conditions: { StringEquals: poolResource(poolName) },
    }),
  ];
}

function tagOnCreateStatement(
  scope: IConstruct,
  poolName: string,
  sid: string,
  resource: 'volume' | 'snapshot',
  createAction: 'CreateVolume' | 'CreateSnapshot',
): PolicyStatement {
  return new PolicyStatement({
    sid,
    actions: ['ec2:CreateTags'],
    resources: [ec2Arn(scope, resource)],
    conditions: {
      StringEquals: { 'ec2:CreateAction': createAction, [`aws:RequestTag/${poolTag}`]: poolName },
    },
  });
}

/**
 * Use of customer managed EBS keys, only through EC2 in this Region: the operations the Amazon EBS User
 * Guide lists for users of EBS encryption (CreateGrant, Decrypt, DescribeKey,
 * GenerateDataKeyWithoutPlaintext, ReEncrypt) plus Encrypt, and CreateGrant only for grants EC2 makes
 * on the caller's behalf (`kms:GrantIsForAWSResource`). Not needed with the AWS managed `aws/ebs` key,
 * whose key policy already allows it.
 */
export function volumeKeyStatements(scope: IConstruct, keys: readonly IKey[]): PolicyStatement[] {
  if (keys.length === 0) return [];
  const resources = keys.map((key) => key.keyArn);
  const viaEc2 = { 'kms:ViaService': `ec2.${Stack.of(scope).region}.amazonaws.com` };
  return [
    new PolicyStatement({
      sid: 'UseVolumeKeyThroughEc2',
      actions: [
        'kms:Encrypt',
        'kms:Decrypt',
        'kms:ReEncryptFrom',
        'kms:ReEncryptTo',
        'kms:GenerateDataKeyWithoutPlaintext',
        'kms:DescribeKey',
      ],
      resources,
      conditions: { StringEquals: viaEc2 },
    }),
    new PolicyStatement({
      sid: 'GrantVolumeKeyToEc2',
      actions: ['kms:CreateGrant'],
      resources,
      conditions: { StringEquals: viaEc2, Bool: { 'kms:GrantIsForAWSResource': 'true' } },
    }),
  ];
}

/**
 * SendCommand only with the pool's documents and only on instances tagged with the pool (workers and
 * clients). Two statements because the tag condition applies to instances, not to documents.
 */
export function sendCommandStatements(
  { scope, poolName }: PermissionScope,
  documentNames: readonly string[],
): PolicyStatement[] {
  if (documentNames.length === 0) return [];
  const stack = Stack.of(scope);
  return [
    new PolicyStatement({
      sid: 'SendPoolDocuments',
      actions: ['ssm:SendCommand'],
      resources: documentNames.map((name) =>
        stack.formatArn({ service: 'ssm', resource: 'document', resourceName: name }),
      ),
    }),
    new PolicyStatement({
      sid: 'SendToPoolInstances',
      actions: ['ssm:SendCommand'],
      resources: [ec2Arn(scope, 'instance')],
      conditions: { StringEquals: { [`ssm:resourceTag/${poolTag}`]: poolName } },
    }),
  ];
}

/**
 * CompleteLifecycleAction on the served groups only, and RecordLifecycleActionHeartbeat with
 * `heartbeat` (the workflows that hold a lifecycle action while they work; reconcile only completes).
 */
export function lifecycleActionStatements(
  scope: IConstruct,
  groupNames: readonly string[],
  { heartbeat = true }: { heartbeat?: boolean } = {},
): PolicyStatement[] {
  if (groupNames.length === 0) return [];
  const stack = Stack.of(scope);
  return [
    new PolicyStatement({
      sid: 'CompleteServedLifecycleActions',
      actions: [
        'autoscaling:CompleteLifecycleAction',
        ...(heartbeat ? ['autoscaling:RecordLifecycleActionHeartbeat'] : []),
      ],
      resources: groupNames.map((name) => servedGroupArn(stack, name)),
    }),
  ];
}

/** ARN of a served group by name; the `*` is the group id, which changes when the group is recreated. */
function servedGroupArn(stack: Stack, groupName: string): string {
  return stack.formatArn({
    service: 'autoscaling',
    resource: 'autoScalingGroup',
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    resourceName: `*:autoScalingGroupName/${groupName}`,
  });
}

/**
 * Sizing the sync worker groups: find them (DescribeAutoScalingGroups accepts only Resource "*"),
 * raise a group's desired capacity, terminate a drained worker in its group; both only on groups
 * tagged with the pool and `volsd:role=worker`.
 */
export function workerFleetStatements({ scope, poolName }: PermissionScope): PolicyStatement[] {
  return [
    new PolicyStatement({
      sid: 'DescribeWorkerGroups',
      actions: ['autoscaling:DescribeAutoScalingGroups'],
      resources: ['*'],
    }),
    new PolicyStatement({
      sid: 'SizeWorkerGroups',
      actions: ['autoscaling:SetDesiredCapacity', 'autoscaling:TerminateInstanceInAutoScalingGroup'],
      resources: [
        Stack.of(scope).formatArn({
          service: 'autoscaling',
          resource: 'autoScalingGroup',
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          resourceName: '*',
        }),
      ],
      conditions: {
        StringEquals: {
          [`autoscaling:ResourceTag/${poolTag}`]: poolName,
          [`autoscaling:ResourceTag/${roleTag}`]: Role.Worker,
        },
      },
    }),
  ];
}

/** Everything the pool's workflows may need, bound to one pool; `forX()` composes per workflow. */
export interface WorkflowPermissionsProps extends PermissionScope {
  /** Deployed names of the pool's SSM documents, by catalogue name (`SsmDocuments.documentNames`). */
  readonly documentNames: ReadonlyMap<DocumentName, string>;
  /** Names of the served Auto Scaling groups. */
  readonly groupNames: readonly string[];
  /** Customer managed key of the pool's volumes, if any. */
  readonly volumeKey?: IKey;
  /**
   * The account's default EBS key when it is customer managed: volumes created without a key (and
   * from snapshots under it) use it.
   */
  readonly accountDefaultVolumeKey?: IKey;
  /** Whether the acquire may create a volume from a pool snapshot when the AZ has none idle. */
  readonly directCreate?: boolean;
}

/**
 * The pool's workflow permissions, composed per workflow so each function gets only what its steps
 * do. Attach with `volsdFunction.addToRolePolicy(...permissions.forAcquire())`.
 */
export class WorkflowPermissions {
  constructor(private readonly props: WorkflowPermissionsProps) {}

  private key(): PolicyStatement[] {
    const { volumeKey, accountDefaultVolumeKey } = this.props;
    const keys = [volumeKey, accountDefaultVolumeKey].filter((k): k is IKey => k !== undefined);
    return volumeKeyStatements(this.props.scope, keys);
  }

  /** SendCommand with `documents` only (those the function's code sends). */
  private send(...documents: DocumentName[]): PolicyStatement[] {
    const names = documents.flatMap((d) => {
      const deployed = this.props.documentNames.get(d);
      return deployed ? [deployed] : [];
    });
    return sendCommandStatements(this.props, names);
  }

  /** SendCommand with `documents`, and reading the commands' outcomes (the workflows wait for them). */
  private commands(...documents: DocumentName[]): PolicyStatement[] {
    return [...this.send(...documents), ...commandStatusStatements()];
  }

  /**
   * Acquire: claim, unmount on the worker, detach, attach to the instance, mount, DeleteOnTermination,
   * complete; with direct creation, CreateVolume from a pool snapshot (tagged at creation).
   */
  public forAcquire(): PolicyStatement[] {
    return [
      ...describeStatements(['ec2:DescribeVolumes', 'ec2:DescribeVolumeStatus', 'ec2:DescribeInstances']),
      ...(this.props.directCreate ? createVolumeStatements(this.props) : []),
      ...attachDetachStatements(this.props),
      ...modifyInstanceStatements(this.props),
      ...this.commands(DocumentName.Unmount, DocumentName.Mount, DocumentName.Sync),
      ...lifecycleActionStatements(this.props.scope, this.props.groupNames),
      ...this.key(),
    ];
  }

  /**
   * Release: unmount, detach, delete (or hand back to the pool for a resync: `recycle`), complete. No
   * volume key: DetachVolume and DeleteVolume use none (reconcile detaches and deletes without it too);
   * a recycled volume is attached again by the replenish, under its own role.
   */
  public forRelease(): PolicyStatement[] {
    return [
      ...describeStatements(['ec2:DescribeVolumes']),
      ...attachDetachStatements(this.props, { detachOnly: true }),
      ...deleteVolumeStatements(this.props),
      ...this.commands(DocumentName.Unmount),
      ...lifecycleActionStatements(this.props.scope, this.props.groupNames),
    ];
  }

  /**
   * Replenish: size the AZ's worker group, create (from a pool snapshot), attach to a worker, mount,
   * sync; retire extras and drained workers.
   */
  public forReplenish(): PolicyStatement[] {
    return [
      ...describeStatements([
        'ec2:DescribeVolumes',
        'ec2:DescribeVolumeStatus',
        'ec2:DescribeInstances',
        'ec2:DescribeInstanceTypes',
        'ssm:DescribeInstanceInformation',
      ]),
      ...workerFleetStatements(this.props),
      ...createVolumeStatements(this.props),
      ...attachDetachStatements(this.props),
      ...deleteVolumeStatements(this.props),
      ...this.commands(DocumentName.Format, DocumentName.Sync, DocumentName.Unmount),
      ...this.key(),
    ];
  }

  /** Snapshot: freeze through SSM, snapshot, prune. */
  public forSnapshot(): PolicyStatement[] {
    return [
      ...describeStatements(['ec2:DescribeVolumes', 'ec2:DescribeInstances', 'ec2:DescribeSnapshots']),
      ...snapshotStatements(this.props),
      ...this.commands(DocumentName.Freeze),
      ...this.key(),
    ];
  }

  /**
   * Reconcile: detach and delete strays, complete forgotten lifecycle actions (found through the
   * served groups and their launch hooks, whose Describe calls accept only Resource "*").
   */
  public forReconcile(): PolicyStatement[] {
    return [
      ...describeStatements(['ec2:DescribeVolumes', 'ec2:DescribeInstances']),
      new PolicyStatement({
        sid: 'DescribeServedGroups',
        actions: ['autoscaling:DescribeAutoScalingGroups', 'autoscaling:DescribeLifecycleHooks'],
        resources: ['*'],
      }),
      ...attachDetachStatements(this.props, { detachOnly: true }),
      ...deleteVolumeStatements(this.props),
      ...this.commands(DocumentName.Mount, DocumentName.Unmount),
      ...lifecycleActionStatements(this.props.scope, this.props.groupNames, { heartbeat: false }),
    ];
  }

  /**
   * Lifecycle dispatcher: check that an event's instance is in a served group (Auto Scaling's
   * Describe calls accept only Resource "*"), and complete the launch actions of warm-pool launches,
   * on the served groups only. Starting the workflows is granted by binding their state machines.
   */
  public forDispatcher(): PolicyStatement[] {
    const statements = [
      new PolicyStatement({
        sid: 'DescribeGroupInstances',
        actions: ['autoscaling:DescribeAutoScalingInstances'],
        resources: ['*'],
      }),
    ];
    if (this.props.groupNames.length > 0) {
      const stack = Stack.of(this.props.scope);
      statements.push(
        new PolicyStatement({
          sid: 'CompleteServedLaunches',
          actions: ['autoscaling:CompleteLifecycleAction'],
          resources: this.props.groupNames.map((name) => servedGroupArn(stack, name)),
        }),
      );
    }
    return statements;
  }

  /**
   * Push fan-out: Volsd-Sync on every pool instance. It reads no outcome: the push-status function
   * collects them from the command status events.
   */
  public forFanOut(): PolicyStatement[] {
    return this.send(DocumentName.Sync);
  }

  /** Sync-all: Volsd-Sync on every pool instance, then the command's outcome per instance (listed). */
  public forSyncAll(): PolicyStatement[] {
    return [...this.send(DocumentName.Sync), ...commandStatusStatements({ list: true })];
  }

  /** Grow: ModifyVolume on the pool's volumes, Volsd-Sync on the pool's instances (file systems grow). */
  public forGrow(): PolicyStatement[] {
    return [...growVolumeStatements(this.props), ...this.send(DocumentName.Sync)];
  }

  /**
   * Push status: read the outcome of the Volsd-Sync commands, listed per command and per instance
   * (nothing that changes anything).
   */
  public forPushStatus(): PolicyStatement[] {
    return commandStatusStatements({ list: true });
  }

  /** The union of all of the above (for tests and for a single all-purpose role). */
  public all(): PolicyStatement[] {
    return [
      ...describeStatements(describeActions),
      ...attachDetachStatements(this.props),
      ...createVolumeStatements(this.props),
      ...deleteVolumeStatements(this.props),
      ...modifyInstanceStatements(this.props),
      ...snapshotStatements(this.props),
      ...growVolumeStatements(this.props),
      ...this.send(...this.props.documentNames.keys()),
      ...commandStatusStatements({ list: true }),
      ...lifecycleActionStatements(this.props.scope, this.props.groupNames),
      ...this.key(),
    ];
  }
}

/** Props of {@link ClientPolicies}. */
export interface ClientPoliciesProps {
  /** The pool's name (descriptions). */
  readonly poolName: string;
  /** The volume table. */
  readonly table: ITable;
  /** ARN pattern of the pool's configuration parameters (`.../parameter/volsd/<pool>/*`). */
  readonly parametersArn: string;
  /** ARN of the parameter path itself (`.../parameter/volsd/<pool>`), for GetParametersByPath. */
  readonly parameterPathArn: string;
  /** The push bucket, whose `live/` tree Volsd-Sync reads on served instances. */
  readonly pushBucket: IBucket;
  /**
   * Customer managed key of the push bucket.
   * @default SSE-S3 (no key permission needed)
   */
  readonly pushBucketKey?: IKey;
}

/**
 * Calling `fn` through its function URL (AuthType AWS_IAM): `<sid>Url` allows InvokeFunctionUrl with
 * IAM auth, `<sid>ThroughUrl` InvokeFunction only through the URL (`lambda:InvokedViaFunctionUrl`), which
 * function URLs created since October 2025 also need (AWS Lambda Developer Guide, "Control access to
 * Lambda function URLs"). A direct Invoke would let the caller write the event, identity included.
 */
export function invokeThroughUrlStatements(fn: IFunction, sid: string): PolicyStatement[] {
  return [
    new PolicyStatement({
      sid: `${sid}Url`,
      actions: ['lambda:InvokeFunctionUrl'],
      resources: [fn.functionArn],
      conditions: { StringEquals: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' } },
    }),
    new PolicyStatement({
      sid: `${sid}ThroughUrl`,
      actions: ['lambda:InvokeFunction'],
      resources: [fn.functionArn],
      conditions: { Bool: { 'lambda:InvokedViaFunctionUrl': 'true' } },
    }),
  ];
}

/**
 * Customer managed policies for the instances of the served groups, and for people and hosts using
 * volsd-client:
 * - `instancePolicy` for every instance a pool volume is mounted on (served groups, volsd-client
 *   hosts): Volsd-Sync runs there (acquire brings a volume current, every push syncs it) and reads
 *   `live/` of the push bucket with the instance's own role. Attached automatically to served groups
 *   built in the same app; attach it to the instance role of groups given by name (besides
 *   AmazonSSMManagedInstanceCore, which Run Command needs).
 * - `hostPolicy` for hosts that acquire and release by hand: read the pool's configuration
 *   parameters and call the host API (added with `allowHostApi`), which acts only for the calling
 *   instance; nothing of Step Functions or the table (exactly `hostPolicyActions` of
 *   lambdas/hostapi/contract.ts). Such a host must also carry the tag `volsd:pool=<pool>`, or the
 *   workflows may not attach to it.
 * - `adminPolicy` for operators: read the table and its index, read the parameters, start the pool's
 *   workflows and follow them (added with `allowAdminWorkflows`).
 */
export class ClientPolicies extends Construct {
  /** Policy for instances that mount pool volumes: Volsd-Sync reads the content tree. */
  public readonly instancePolicy: ManagedPolicy;
  /** Policy for hosts running volsd-client acquire/release/status. */
  public readonly hostPolicy: ManagedPolicy;
  /** Policy for admins running volsd-client volumes/pool/pushes/replenish/snapshot/sync. */
  public readonly adminPolicy: ManagedPolicy;

  constructor(scope: Construct, id: string, props: ClientPoliciesProps) {
    super(scope, id);
    const readParameters = new PolicyStatement({
      sid: 'ReadPoolConfiguration',
      actions: ['ssm:GetParameter', 'ssm:GetParameters', 'ssm:GetParametersByPath'],
      resources: [props.parameterPathArn, props.parametersArn],
    });
    this.instancePolicy = new ManagedPolicy(this, 'InstancePolicy', {
      description: `Volsd ${props.poolName}: instances mounting pool volumes (Volsd-Sync reads live/)`,
      statements: [
        new PolicyStatement({
          sid: 'ReadLiveTree',
          actions: ['s3:GetObject'],
          resources: [props.pushBucket.arnForObjects(`${livePrefix}*`)],
        }),
        new PolicyStatement({
          sid: 'ListLiveTree',
          actions: ['s3:ListBucket'],
          resources: [props.pushBucket.bucketArn],
          conditions: { StringLike: { 's3:prefix': [livePrefix, `${livePrefix}*`] } },
        }),
        ...(props.pushBucketKey
          ? [
              new PolicyStatement({
                sid: 'DecryptLiveTree',
                actions: ['kms:Decrypt'],
                resources: [props.pushBucketKey.keyArn],
                conditions: { StringLike: { 'kms:ViaService': 's3.*.amazonaws.com' } },
              }),
            ]
          : []),
      ],
    });
    this.hostPolicy = new ManagedPolicy(this, 'HostPolicy', {
      description: `Volsd ${props.poolName}: hosts running volsd-client acquire/release`,
      statements: [readParameters],
    });
    this.adminPolicy = new ManagedPolicy(this, 'AdminPolicy', {
      description: `Volsd ${props.poolName}: operators of the pool (volsd-client admin commands)`,
      statements: [
        readParameters,
        new PolicyStatement({
          sid: 'ReadVolumeTable',
          actions: [
            'dynamodb:GetItem',
            'dynamodb:BatchGetItem',
            'dynamodb:Query',
            'dynamodb:Scan',
            'dynamodb:DescribeTable',
          ],
          resources: [props.table.tableArn, `${props.table.tableArn}/index/*`],
        }),
      ],
    });
    if (props.table.encryptionKey) {
      for (const policy of [this.adminPolicy]) {
        policy.addStatements(
          new PolicyStatement({
            sid: 'DecryptTable',
            actions: ['kms:Decrypt', 'kms:DescribeKey'],
            resources: [props.table.encryptionKey.keyArn],
            conditions: { StringLike: { 'kms:ViaService': 'dynamodb.*.amazonaws.com' } },
          }),
        );
      }
    }
    acknowledgeWildcards(this, [
      {
        finding: findingArn('ssm', `parameter/volsd/${props.poolName}/\\*`),
        reason:
          "The pool's own configuration parameters, /volsd/<pool>/*, all of them meant for its clients.",
      },
      {
        finding: /^Resource::<[A-Za-z0-9]+\.Arn>\/index\/\*$/,
        reason: 'The indexes of the volume table (read only).',
      },
      {
        finding: /^Resource::<[A-Za-z0-9]+\.Arn>\/live\/\*$/,
        reason:
          'Volsd-Sync reads the whole content tree: every object under live/ of the push bucket, nothing else.',
      },
      {
        finding: findingArn('states', 'execution:.+:\\*'),
        reason: "Executions of the pool's own state machines: their names are only known at run time.",
      },
    ]);
  }

  /**
   * Lets hosts call the host API `fn` through its function URL (AuthType AWS_IAM): InvokeFunctionUrl,
   * and InvokeFunction only through the URL (`lambda:InvokedViaFunctionUrl`), which function URLs
   * created since October 2025 also need. A direct Invoke would let a host write the event, identity
   * included, itself.
   */
  public allowHostApi(fn: IFunction): this {
    this.hostPolicy.addStatements(...invokeThroughUrlStatements(fn, 'InvokeHostApi'));
    return this;
  }

  /** Lets admins start `stateMachines` (all of the pool's), list and follow their executions. */
  public allowAdminWorkflows(...stateMachines: IStateMachine[]): this {
    this.allowWorkflows(this.adminPolicy, stateMachines, [
      'states:DescribeExecution',
      'states:GetExecutionHistory',
    ]);
    return this;
  }

  private allowWorkflows(
    policy: ManagedPolicy,
    stateMachines: IStateMachine[],
    executionActions: string[],
  ): void {
    if (stateMachines.length === 0) return;
    const stack = Stack.of(this);
    const executionArns = stateMachines.map((sm) => {
      const name = Arn.split(sm.stateMachineArn, ArnFormat.COLON_RESOURCE_NAME).resourceName ?? '';
      return stack.formatArn({
        service: 'states',
        resource: 'execution',
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        resourceName: `${name}:*`,
      });
    });
    policy.addStatements(
      new PolicyStatement({
        actions: ['states:StartExecution', 'states:ListExecutions'],
        resources: stateMachines.map((sm) => sm.stateMachineArn),
      }),
      new PolicyStatement({ actions: executionActions, resources: executionArns }),
    );
  }
}
