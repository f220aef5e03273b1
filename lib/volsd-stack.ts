import { CfnOutput, Fn, RemovalPolicy, Stack, type StackProps, Token } from 'aws-cdk-lib';
import {
  FlowLogDestination,
  FlowLogTrafficType,
  GatewayVpcEndpointAwsService,
  type InterfaceVpcEndpoint,
  InterfaceVpcEndpointAwsService,
  type IVpc,
  SubnetType,
  Vpc,
} from 'aws-cdk-lib/aws-ec2';
import { Key } from 'aws-cdk-lib/aws-kms';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Construct } from 'constructs';
import { poolTag } from '../lambdas/shared/tags.js';
import { VolsdPool, type VolsdPoolProps } from './volsd-pool.js';

/** An existing VPC, described without a lookup so synthesis stays offline. */
export interface ExistingVpc {
  /** VPC id (vpc-...). */
  readonly vpcId: string;
  /** The AZs of `subnetIds`, in the same order. */
  readonly availabilityZones: readonly string[];
  /** One subnet per AZ for the sync workers; they need a route to SSM and S3 (NAT or endpoints). */
  readonly subnetIds: readonly string[];
}

/** Props of {@link VolsdStack}. */
export interface VolsdStackProps extends StackProps {
  /** The pool (everything but the VPC, which the stack provides). */
  readonly pool: Omit<VolsdPoolProps, 'vpc'>;
  /**
   * VPC for the sync workers, from the same app.
   * @default `existingVpc` if given, else a new VPC (see `maxAzs`)
   */
  readonly vpc?: IVpc;
  /**
   * An existing VPC by ids (what `cdk.json` can carry).
   * @default a new VPC
   */
  readonly existingVpc?: ExistingVpc;
  /**
   * AZs of the new VPC, the first ones of the Region; the pool serves launches in these AZs only, so
   * they must include every AZ of the served groups. Its subnets are isolated (no NAT gateway, no
   * internet): the workers reach SSM through interface endpoints and S3 through a free gateway
   * endpoint. Honoured in an environment-agnostic stack too (there CDK alone gives two AZs), where
   * more AZs than the Region has fails the deployment.
   * @default 3
   */
  readonly maxAzs?: number;
  /**
   * ARN of a customer managed KMS key for the pool's volumes.
   * @default the account's default EBS key
   */
  readonly volumeKeyArn?: string;
  /**
   * ARN of the account's default EBS encryption key in this Region, when it is customer managed
   * (`aws ec2 get-ebs-default-kms-key-id`, resolved to a key ARN): the workflow functions get its use
   * through EC2, and the sync workers' launches need it in its key policy.
   * @default none: the default EBS key is AWS managed (aws/ebs)
   */
  readonly accountDefaultEbsKeyArn?: string;
  /**
   * ARN of an existing SNS topic for the alarms.
   * @default a new encrypted topic
   */
  readonly alarmTopicArn?: string;
  /**
   * E-mail address subscribed to the alarm topic (confirm the subscription mail after deploy).
   * @default no subscription
   */
  readonly alarmEmail?: string;
}

/**
 * The standalone Volsd app stack: a VPC for the sync workers (or an existing one) and one
 * {@link VolsdPool}. Outputs what an operator needs next: the table, the push bucket, the alarm
 * topic, the managed policies to attach to client hosts and admins, the configuration path and the
 * workflows' state machines.
 */
export class VolsdStack extends Stack {
  /** The pool. */
  public readonly pool: VolsdPool;
  /** The sync workers' VPC. */
  public readonly vpc: IVpc;
  /** Interface endpoints of the VPC the stack created (none for a given VPC). */
  public readonly endpoints: InterfaceVpcEndpoint[] = [];

  constructor(scope: Construct, id: string, props: VolsdStackProps) {
    super(scope, id, props);
    this.vpc =
      props.vpc ??
      (props.existingVpc ? this.importVpc(props.existingVpc) : this.createVpc(props.maxAzs ?? 3));
    const volumeKey = props.volumeKeyArn ? Key.fromKeyArn(this, 'VolumeKey', props.volumeKeyArn) : undefined;
    const accountDefaultKey = props.accountDefaultEbsKeyArn
      ? Key.fromKeyArn(this, 'AccountDefaultEbsKey', props.accountDefaultEbsKeyArn)
      : undefined;
    const alarmTopic = props.alarmTopicArn
      ? Topic.fromTopicArn(this, 'AlarmTopic', props.alarmTopicArn)
      : undefined;

    this.pool = new VolsdPool(this, 'Pool', {
      ...props.pool,
      vpc: this.vpc,
      volume: {
        ...props.pool.volume,
        kmsKey: props.pool.volume?.kmsKey ?? volumeKey,
        accountDefaultKmsKey: props.pool.volume?.accountDefaultKmsKey ?? accountDefaultKey,
      },
      alarmTopic: props.pool.alarmTopic ?? alarmTopic,
    });
    // Endpoints admit HTTPS from the sync workers only (not the whole VPC CIDR).
    for (const endpoint of this.endpoints)
      endpoint.connections.allowDefaultPortFrom(this.pool.workers.securityGroup);
    if (props.alarmEmail)
      this.pool.monitoring.alarmTopic.addSubscription(new EmailSubscription(props.alarmEmail));

    const outputs: Record<string, [string, string]> = {
      PoolName: [this.pool.settings.poolName, 'Pool name (volsd-client --pool)'],
      TableName: [this.pool.table.table.tableName, 'Volume table'],
      PushBucketName: [this.pool.push.bucket.bucketName, 'Push bucket: publish under s3://<bucket>/live/'],
      PushPublisherRoleArn: [
        this.pool.push.publisherRole.roleArn,
        'Assume to publish (allow sts:AssumeRole on it to your CI); other writers: volsd:pushWriterArns',
      ],
      AlarmTopicArn: [this.pool.monitoring.alarmTopic.topicArn, 'Alarm topic'],
      InstancePolicyArn: [
        this.pool.clientPolicies.instancePolicy.managedPolicyArn,
        'Attach to the instance role of the served groups (Volsd-Sync reads live/)',
      ],
      ClientHostPolicyArn: [
        this.pool.clientPolicies.hostPolicy.managedPolicyArn,
        'Attach to roles of hosts running volsd-client',
      ],
      AdminPolicyArn: [
        this.pool.clientPolicies.adminPolicy.managedPolicyArn,
        'Attach to operators of the pool',
      ],
      ConfigPath: [this.pool.config.path, 'SSM parameters of the pool (volsd-client reads them)'],
      AcquireStateMachineArn: [this.pool.workflows.acquire.stateMachine.stateMachineArn, 'Acquire workflow'],
      ReleaseStateMachineArn: [this.pool.workflows.release.stateMachine.stateMachineArn, 'Release workflow'],
      ReplenishStateMachineArn: [
        this.pool.workflows.replenish.stateMachine.stateMachineArn,
        'Replenish workflow',
      ],
      SnapshotStateMachineArn: [
        this.pool.workflows.snapshot.stateMachine.stateMachineArn,
        'Snapshot workflow',
      ],
      ReconcileStateMachineArn: [
        this.pool.workflows.reconcile.stateMachine.stateMachineArn,
        'Reconcile workflow',
      ],
    };
    // What a group defined elsewhere needs for the boot unit's one-line user data (README).
    outputs.BootSignalUrl = [this.pool.bootUnit.signalUrl.url, "The boot unit's VOLSD_SIGNAL_URL"];
    outputs.BootUnitBundle = [
      this.pool.bootUnit.bundle.s3ObjectUrl,
      "The boot unit's scripts (zip) for the user data of groups defined elsewhere",
    ];
    // Volumes and snapshots are made at run time, not by CloudFormation: they outlive the stack.
    outputs.PoolResourcesTag = [
      `${poolTag}=${this.pool.settings.poolName}`,
      'Tag of the pool volumes and snapshots, which deleting the stack leaves behind (README, "Deleting the stack")',
    ];
    const missing = this.pool.workers.missingKeyPolicyStatements;
    if (missing.length > 0) {
      outputs.VolumeKeyPolicyStatements = [
        this.toJsonString(missing.map((statement) => statement.toStatementJson())),
        'Add to the volume key\'s policy, or the sync workers never launch (README, "Volume encryption keys")',
      ];
    }
    for (const [name, [value, description]] of Object.entries(outputs)) {
      new CfnOutput(this, name, { value, description });
    }
  }

  private createVpc(maxAzs: number): Vpc {
    // An environment-agnostic stack knows only two AZ tokens, so maxAzs above 2 would silently give 2;
    // naming the AZs by index keeps the count (the first ones of Fn::GetAZs, as CDK's own tokens are).
    const placement = Token.isUnresolved(this.region)
      ? { availabilityZones: Array.from({ length: maxAzs }, (_, i) => Fn.select(i, Fn.getAzs())) }
      : { maxAzs };
    const vpc = new Vpc(this, 'Vpc', {
      ...placement,
      natGateways: 0,
      subnetConfiguration: [{ name: 'workers', subnetType: SubnetType.PRIVATE_ISOLATED, cidrMask: 24 }],
      gatewayEndpoints: { S3: { service: GatewayVpcEndpointAwsService.S3 } },
    });
    // The SSM agent needs these three; S3 (content) goes through the gateway endpoint above.
    const services = {
      Ssm: InterfaceVpcEndpointAwsService.SSM,
      SsmMessages: InterfaceVpcEndpointAwsService.SSM_MESSAGES,
      Ec2Messages: InterfaceVpcEndpointAwsService.EC2_MESSAGES,
    };
    for (const [id, service] of Object.entries(services)) {
      this.endpoints.push(vpc.addInterfaceEndpoint(id, { service, open: false }));
    }
    vpc.addFlowLog('FlowLog', {
      trafficType: FlowLogTrafficType.REJECT,
      destination: FlowLogDestination.toCloudWatchLogs(
        new LogGroup(this, 'FlowLogs', {
          retention: RetentionDays.ONE_MONTH,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
      ),
    });
    return vpc;
  }

  private importVpc(existing: ExistingVpc): IVpc {
    return Vpc.fromVpcAttributes(this, 'Vpc', {
      vpcId: existing.vpcId,
      availabilityZones: [...existing.availabilityZones],
      privateSubnetIds: [...existing.subnetIds],
    });
  }
}
