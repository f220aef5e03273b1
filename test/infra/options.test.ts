import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AutoScalingGroup } from 'aws-cdk-lib/aws-autoscaling';
import { InstanceType, MachineImage, SubnetType, Vpc } from 'aws-cdk-lib/aws-ec2';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { beforeAll, describe, expect, it } from 'vitest';
import { poolTag, roleTag } from '../../lambdas/shared/tags.js';
import { readAppConfig } from '../../lib/config.js';
import { VolsdPool } from '../../lib/volsd-pool.js';
import { VolsdStack } from '../../lib/volsd-stack.js';
import { actionsOf, allStatements, type NagFinding, nagFindings, testApp } from './helpers.js';

describe('a pool serving a group of the same app, with its own keys and topic', () => {
  let template: Template;
  let pool: VolsdPool;
  let findings: NagFinding[];

  beforeAll(() => {
    const stack = new Stack(testApp(), 'Options');
    const vpc = new Vpc(stack, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'private', subnetType: SubnetType.PRIVATE_ISOLATED }],
    });
    const web = new AutoScalingGroup(stack, 'Web', {
      vpc,
      instanceType: new InstanceType('t4g.micro'),
      machineImage: MachineImage.latestAmazonLinux2023(),
      requireImdsv2: true,
    });
    pool = new VolsdPool(stack, 'Pool', {
      poolName: 'api',
      vpc,
      autoScalingGroups: [web],
      idlePerAz: 0,
      volume: { kmsKey: new Key(stack, 'VolumeKey', { enableKeyRotation: true }) },
      dataKey: new Key(stack, 'DataKey', { enableKeyRotation: true }),
      alarmTopic: new Topic(stack, 'Ops', {
        enforceSSL: true,
        masterKey: new Key(stack, 'OpsKey', { enableKeyRotation: true }),
      }),
      heartbeatTimeout: Duration.minutes(5),
    });
    findings = nagFindings(stack).filter((f) => f.path.startsWith('Options/Pool'));
    template = Template.fromStack(stack);
  });

  it('tags the served group, propagated to its instances', () => {
    type Tag = { Key: string; Value: string; PropagateAtLaunch: boolean };
    const groups = Object.values(template.findResources('AWS::AutoScaling::AutoScalingGroup')).filter((g) =>
      (g.Properties.Tags as Tag[]).some((t) => t.Key === roleTag && t.Value === 'client'),
    );
    expect(groups).toHaveLength(1);
    expect(groups[0]?.Properties.Tags).toEqual(
      expect.arrayContaining([{ Key: poolTag, PropagateAtLaunch: true, Value: 'api' }]),
    );
  });

  it("attaches the instance policy to the served group's role, so Volsd-Sync can read live/", () => {
    const roles = Object.values(template.findResources('AWS::IAM::Role')).filter((r) =>
      JSON.stringify(r.Properties.ManagedPolicyArns ?? []).includes('InstancePolicy'),
    );
    expect(roles).toHaveLength(1);
    expect(JSON.stringify(roles[0]?.Properties.AssumeRolePolicyDocument)).toContain('ec2.amazonaws.com');
  });

  it("never tags the served group's launch template, so root volumes stay out of the pool", () => {
    for (const lt of Object.values(template.findResources('AWS::EC2::LaunchTemplate'))) {
      expect(JSON.stringify(lt.Properties)).not.toContain(poolTag);
    }
  });

  it('hooks into the group by reference', () => {
    template.hasResourceProperties('AWS::AutoScaling::LifecycleHook', {
      AutoScalingGroupName: { Ref: Match.stringLikeRegexp('^WebASG') },
      LifecycleHookName: 'volsd-api-launch',
      HeartbeatTimeout: 300,
      DefaultResult: 'ABANDON',
    });
  });

  it('encrypts the table and the push bucket with the data key', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: Match.anyValue() },
    });
    template.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          Match.objectLike({ ServerSideEncryptionByDefault: Match.objectLike({ SSEAlgorithm: 'aws:kms' }) }),
        ],
      },
    });
  });

  it('lets the workers decrypt the push bucket only through S3', () => {
    const decrypt = allStatements(template).filter(
      ({ owner, statement }) => /SyncWorkersRole/.test(owner) && actionsOf(statement).includes('kms:Decrypt'),
    );
    expect(decrypt).toHaveLength(1);
    expect(decrypt[0]?.statement.Condition).toEqual({
      StringLike: { 'kms:ViaService': 's3.*.amazonaws.com' },
    });
  });

  it('uses the given topic and creates none', () => {
    template.resourceCountIs('AWS::SNS::Topic', 1);
    expect(pool.monitoring.alarmTopic.node.id).toBe('Ops');
  });

  it('creates no idle alarm for a target of 0', () => {
    expect(
      Object.keys(
        template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'IdleVolumes' } }),
      ),
    ).toEqual([]);
  });

  it('includes the volume key and no fast snapshot restore in the workflow permissions', () => {
    const actions = pool.permissions.all().flatMap((s) => s.actions);
    expect(actions).toContain('kms:CreateGrant');
    expect(actions.filter((a) => /FastSnapshotRestore/i.test(a))).toEqual([]);
  });

  it('hands the workflows their settings as environment variables', () => {
    expect(pool.workflowEnvironment()).toMatchObject({
      POOL_NAME: 'api',
      MOUNT_PATH: '/srv/volsd',
      HEARTBEAT_TIMEOUT: '300',
      ACQUIRE_FAILURE_RESULT: 'ABANDON',
      MOUNT_DOCUMENT: 'Volsd-Mount-api',
      SYNC_DOCUMENT: 'Volsd-Sync-api',
      VOLUME_SIZE_GIB: '20',
      VOLUME_TYPE: 'gp3',
      KMS_KEY_ID: expect.any(String),
    });
  });

  it('leaves cdk-nag nothing to report', () => {
    expect(findings).toEqual([]);
  });
});

describe('the app on an existing VPC, serving no group', () => {
  let template: Template;

  beforeAll(() => {
    const app = testApp({
      'volsd:account': '123456789012',
      'volsd:region': 'eu-west-1',
      'volsd:vpcId': 'vpc-0123456789abcdef0',
      'volsd:availabilityZones': ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
      'volsd:subnetIds': 'subnet-a,subnet-b,subnet-c',
    });
    const { stackName, stackProps } = readAppConfig(app.node);
    template = Template.fromStack(new VolsdStack(app, stackName, stackProps));
  });

  it('creates no VPC and puts one worker in each given subnet', () => {
    template.resourceCountIs('AWS::EC2::VPC', 0);
    const subnets = Object.values(template.findResources('AWS::AutoScaling::AutoScalingGroup')).map(
      (g) => g.Properties.VPCZoneIdentifier,
    );
    expect(subnets).toEqual([['subnet-a'], ['subnet-b'], ['subnet-c']]);
  });

  it('creates no lifecycle hook and no intake rule, but keeps the intake queue', () => {
    template.resourceCountIs('AWS::AutoScaling::LifecycleHook', 0);
    const rules = Object.values(template.findResources('AWS::Events::Rule'));
    const sources = rules.flatMap((r) => r.Properties.EventPattern?.source ?? []);
    // The push status rule, and the boot unit's two (unmount status, instance running): manual acquires
    // wait on those events too.
    expect(sources.sort()).toEqual(['aws.ec2', 'aws.ssm', 'aws.ssm']);
    // The replenish schedules, one per AZ, are there all the same.
    const replenish = rules.filter((r) =>
      JSON.stringify(r.Properties.Targets).includes('WorkflowsReplenish'),
    );
    expect(replenish).toHaveLength(3);
    expect(
      Object.keys(template.findResources('AWS::SQS::Queue')).filter((id) => /Intake/.test(id)),
    ).toHaveLength(2);
  });

  it('creates no dispatcher: nothing would feed it', () => {
    const functions = Object.keys(template.findResources('AWS::Lambda::Function'));
    expect(functions.filter((id) => /Dispatcher/.test(id))).toEqual([]);
    expect(functions.filter((id) => /Acquire/.test(id))).toHaveLength(1);
  });
});

describe('a pool with adaptive sizing', () => {
  it('alarms per AZ on idle volumes below the target replenish reports, even from a start of 0', () => {
    const stack = new Stack(testApp(), 'Adaptive');
    const vpc = new Vpc(stack, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'private', subnetType: SubnetType.PRIVATE_ISOLATED }],
    });
    new VolsdPool(stack, 'Pool', {
      poolName: 'web',
      vpc,
      idlePerAz: 0,
      adaptive: { minPerAz: 0, maxPerAz: 10, budgetDollarsPerMonth: 100 },
    });
    const alarms = Object.values(Template.fromStack(stack).findResources('AWS::CloudWatch::Alarm'));
    const onIdle = alarms.filter((a) => JSON.stringify(a.Properties).includes('"MetricName":"IdleVolumes"'));
    expect(onIdle).toHaveLength(2);
    for (const alarm of onIdle) {
      expect(JSON.stringify(alarm.Properties.Metrics)).toContain('"MetricName":"IdleTarget"');
      expect(alarm.Properties).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
    }
  });
});
