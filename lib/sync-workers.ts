import { Duration, Tags, Validations } from 'aws-cdk-lib';
import { AutoScalingGroup, GroupMetric, GroupMetrics } from 'aws-cdk-lib/aws-autoscaling';
import {
  AmazonLinuxCpuType,
  BlockDeviceVolume,
  EbsDeviceVolumeType,
  InstanceArchitecture,
  InstanceType,
  type ISubnet,
  type IVpc,
  LaunchTemplate,
  MachineImage,
  SecurityGroup,
} from 'aws-cdk-lib/aws-ec2';
import {
  Effect,
  Role as IamRole,
  ManagedPolicy,
  PolicyStatement,
  ServicePrincipal,
} from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { poolTag, Role, roleTag } from '../lambdas/shared/tags.js';
import { acknowledgeWildcards } from './nag.js';
import { livePrefix } from './push-bucket.js';
import { allowAutoScalingToUseKey } from './volume-key.js';

/** Default sync worker instance type: the smallest burstable Graviton with enough memory for aws s3 sync. */
export const defaultWorkerInstanceType = 't4g.small';

/** Props of {@link SyncWorkers}. */
export interface SyncWorkersProps {
  /** The pool's name (tags). */
  readonly poolName: string;
  /** VPC of the workers. */
  readonly vpc: IVpc;
  /** One subnet per AZ of the pool; each gets its own worker group. Needs a route to SSM and S3. */
  readonly subnets: readonly ISubnet[];
  /** The push bucket: workers may read `live/*` and nothing else. */
  readonly pushBucket: IBucket;
  /**
   * Instance type of the workers. Must be arm64 (Graviton): the image is Amazon Linux 2023 arm64.
   * @default t4g.small
   */
  readonly instanceType?: InstanceType;
  /**
   * Largest number of workers per AZ (each group's maximum). Replenish starts workers up to it as the
   * AZ's target needs and retires drained ones; the group starts with one.
   * @default 1
   */
  readonly maxWorkersPerAz?: number;
  /**
   * KMS key encrypting the workers' root volumes.
   * @default the account's default EBS key (aws/ebs)
   */
  readonly rootVolumeKey?: IKey;
  /**
   * The account's default EBS key, when customer managed and `rootVolumeKey` is not given: the root
   * volumes use it implicitly, so Auto Scaling needs it in the key policy all the same.
   * @default none (aws/ebs)
   */
  readonly accountDefaultVolumeKey?: IKey;
  /**
   * KMS key of the push bucket, when it has one: workers get Decrypt through S3 only.
   * @default none (SSE-S3 bucket)
   */
  readonly pushBucketKey?: IKey;
}

/** The sync workers of one AZ. */
export interface SyncWorker {
  /** The worker's subnet. */
  readonly subnet: ISubnet;
  /** The worker's AZ (a token in an environment-agnostic stack). */
  readonly availabilityZone: string;
  /**
   * Its Auto Scaling group: one instance at first, as many as replenish sets (up to the maximum); a
   * lost worker is replaced.
   */
  readonly group: AutoScalingGroup;
}

/**
 * Sync workers: per AZ subnet an Auto Scaling group (min 1, max `maxWorkersPerAz`, no desired
 * capacity in the template so a deploy never resets what replenish set) whose instances hold the AZ's
 * idle volumes mounted and in sync. Amazon Linux 2023 arm64 (image from the public SSM
 * parameter at deploy time, no lookup), IMDSv2 required, encrypted root volume, no inbound traffic.
 * Instances carry `volsd:pool` and `volsd:role=worker`; their role has AmazonSSMManagedInstanceCore and
 * read-only access to `live/*` of the push bucket.
 */
export class SyncWorkers extends Construct {
  /** One worker group per AZ, in subnet order. */
  public readonly workers: readonly SyncWorker[];
  /** Role of the worker instances. */
  public readonly role: IamRole;
  /** Security group of the worker instances (egress only). */
  public readonly securityGroup: SecurityGroup;
  /** Launch template shared by the workers. */
  public readonly launchTemplate: LaunchTemplate;
  /**
   * Key policy statements Auto Scaling needs on the root volumes' key that the stack could not add
   * (an imported key): to be added by whoever manages the key. Empty when none are missing.
   */
  public readonly missingKeyPolicyStatements: readonly PolicyStatement[];

  constructor(scope: Construct, id: string, props: SyncWorkersProps) {
    super(scope, id);
    const instanceType = props.instanceType ?? new InstanceType(defaultWorkerInstanceType);
    if (instanceType.architecture !== InstanceArchitecture.ARM_64) {
      throw new Error(`SyncWorkers: instance type ${instanceType} is not arm64 (Graviton)`);
    }

    this.role = new IamRole(this, 'Role', {
      assumedBy: new ServicePrincipal('ec2.amazonaws.com'),
      description: `Volsd ${props.poolName} sync worker`,
      managedPolicies: [ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });
    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]',
      reason: 'AWS-maintained minimum for the SSM agent (Run Command is how Volsd drives workers).',
    });
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ReadLiveTree',
        actions: ['s3:GetObject'],
        resources: [props.pushBucket.arnForObjects(`${livePrefix}*`)],
      }),
    );
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ListLiveTree',
        actions: ['s3:ListBucket'],
        resources: [props.pushBucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [livePrefix, `${livePrefix}*`] } },
      }),
    );
    if (props.pushBucketKey) {
      this.role.addToPrincipalPolicy(
        new PolicyStatement({
          sid: 'DecryptLiveTree',
          effect: Effect.ALLOW,
          actions: ['kms:Decrypt'],
          resources: [props.pushBucketKey.keyArn],
          conditions: { StringLike: { 'kms:ViaService': 's3.*.amazonaws.com' } },
        }),
      );
    }
    acknowledgeWildcards(this.role, [
      {
        finding: /^Resource::<[A-Za-z0-9]+\.Arn>\/live\/\*$/,
        reason:
          'Workers read the whole content tree: every object under live/ of the push bucket, nothing else.',
      },
    ]);

    this.securityGroup = new SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: `Volsd ${props.poolName} sync workers: no inbound, HTTPS out to SSM and S3`,
      allowAllOutbound: true,
    });

    this.launchTemplate = new LaunchTemplate(this, 'LaunchTemplate', {
      machineImage: MachineImage.latestAmazonLinux2023({ cpuType: AmazonLinuxCpuType.ARM_64 }),
      instanceType,
      role: this.role,
      securityGroup: this.securityGroup,
      requireImdsv2: true,
      detailedMonitoring: true,
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          volume: BlockDeviceVolume.ebs(16, {
            volumeType: EbsDeviceVolumeType.GP3,
            encrypted: true,
            kmsKey: props.rootVolumeKey,
            deleteOnTermination: true,
          }),
        },
      ],
    });

    // Auto Scaling, not this stack's roles, creates the root volumes: its service-linked role must be
    // allowed the key, or every worker launch fails while the stack itself completes.
    const launchKey = props.rootVolumeKey ?? props.accountDefaultVolumeKey;
    this.missingKeyPolicyStatements = launchKey
      ? allowAutoScalingToUseKey(this, launchKey, "The sync workers' root volumes")
      : [];

    this.workers = props.subnets.map((subnet, index) => {
      const group = new AutoScalingGroup(this, `Worker${index}`, {
        vpc: props.vpc,
        vpcSubnets: { subnets: [subnet] },
        launchTemplate: this.launchTemplate,
        minCapacity: 1,
        maxCapacity: props.maxWorkersPerAz ?? 1,
        groupMetrics: [new GroupMetrics(GroupMetric.IN_SERVICE_INSTANCES)],
        cooldown: Duration.minutes(1),
      });
      // On the group only (propagated to instances): the launch template would also tag the root
      // volume, and pool-tagged volumes are what the workflows may delete.
      for (const [key, value] of [
        [poolTag, props.poolName],
        [roleTag, Role.Worker],
      ] as const) {
        Tags.of(group).add(key, value, {
          includeResourceTypes: ['AWS::AutoScaling::AutoScalingGroup'],
          applyToLaunchedInstances: true,
        });
      }
      Validations.of(group).acknowledge({
        id: 'AwsSolutions-AS3',
        reason:
          'A missing worker is caught by the GroupInServiceInstances alarm (lib/monitoring.ts); ASG ' +
          'notifications cannot reach a KMS-encrypted topic without a key policy naming its service-linked role.',
      });
      return { subnet, availabilityZone: subnet.availabilityZone, group };
    });
  }
}
