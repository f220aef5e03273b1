import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { allDocuments, documentContent, readScript } from '../../lambdas/shared/documents.js';
import { intakeDeliveryDelaySeconds } from '../../lambdas/shared/intake.js';
import { tableSchema } from '../../lambdas/shared/table-schema.js';
import { poolTag, roleTag } from '../../lambdas/shared/tags.js';
import { readAppConfig } from '../../lib/config.js';
import { lifecycleDetailTypes } from '../../lib/lifecycle-intake.js';
import { metricsNamespace, volsdMetrics } from '../../lib/monitoring.js';
import { flattenReference } from '../../lib/nag.js';
import { mutatingEc2Actions } from '../../lib/permissions.js';
import { VolsdStack } from '../../lib/volsd-stack.js';
import { logDeliveryActions } from '../../lib/workflows.js';
import {
  actionsOf,
  allStatements,
  ec2Mutations,
  type NagFinding,
  nagFindings,
  testApp,
  unscopedEc2Mutations,
} from './helpers.js';

type Resources = Record<
  string,
  { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string }
>;

let stack: VolsdStack;
let template: Template;
let resources: Resources;
let findings: NagFinding[];

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);

beforeAll(() => {
  // The app's own path: cdk.json context -> readAppConfig -> VolsdStack, with two served groups.
  // CDK's built-in CloudFormation validation runs here, once, on the whole app (synth fails on errors).
  const app = testApp(
    {
      'volsd:autoScalingGroupNames': 'web-a,web-b',
      'volsd:heartbeatTimeoutSeconds': '300',
      'volsd:acquireFailureResult': 'CONTINUE',
    },
    { cloudFormationValidation: true },
  );
  const { stackName, stackProps } = readAppConfig(app.node);
  stack = new VolsdStack(app, stackName, stackProps);
  findings = nagFindings(stack);
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources as Resources;
});

describe('volume table', () => {
  it('has the keys and the GSI of tableSchema', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: tableSchema.partitionKey, KeyType: 'HASH' },
        { AttributeName: tableSchema.sortKey, KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: tableSchema.byPoolIndex.name,
          KeySchema: [
            { AttributeName: tableSchema.byPoolIndex.partitionKey, KeyType: 'HASH' },
            { AttributeName: tableSchema.byPoolIndex.sortKey, KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    });
  });

  it('is on-demand, encrypted, with point-in-time recovery and deletion protection', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      DeletionProtectionEnabled: true,
    });
  });

  it('is retained when the stack goes', () => {
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });
});

describe('push bucket', () => {
  const pushBucket = () => {
    const versioned = ofType('AWS::S3::Bucket').filter(([, r]) => r.Properties.VersioningConfiguration);
    expect(versioned).toHaveLength(1);
    return versioned[0] as [string, Resources[string]];
  };

  it('is versioned, blocks all public access and is encrypted', () => {
    const [, bucket] = pushBucket();
    expect(bucket.Properties).toMatchObject({
      VersioningConfiguration: { Status: 'Enabled' },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
    });
  });

  it('expires noncurrent versions', () => {
    const [, bucket] = pushBucket();
    expect(bucket.Properties.LifecycleConfiguration).toMatchObject({
      Rules: expect.arrayContaining([
        expect.objectContaining({ Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 30 } }),
      ]),
    });
  });

  it('logs server access to the log bucket', () => {
    const [, bucket] = pushBucket();
    expect(bucket.Properties.LoggingConfiguration).toMatchObject({
      DestinationBucketName: { Ref: expect.stringMatching(/AccessLogs/) },
      LogFilePrefix: 'push-bucket/',
    });
  });

  it('denies every request without TLS, on both buckets', () => {
    const policies = ofType('AWS::S3::BucketPolicy');
    expect(policies).toHaveLength(2);
    for (const [, policy] of policies) {
      expect(policy.Properties.PolicyDocument).toMatchObject({
        Statement: expect.arrayContaining([
          expect.objectContaining({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      });
    }
  });

  it('sends object created and removed events under live/ to the push queue', () => {
    const pushQueue = Object.keys(resources).find((id) => /PushQueue(?!Dlq)[0-9A-F]{8}$/.test(id));
    expect(pushQueue).toBeDefined();
    template.hasResourceProperties('Custom::S3BucketNotifications', {
      NotificationConfiguration: {
        QueueConfigurations: ['s3:ObjectCreated:*', 's3:ObjectRemoved:*'].map((event) => ({
          Events: [event],
          Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: 'live/' }] } },
          QueueArn: { 'Fn::GetAtt': [pushQueue, 'Arn'] },
        })),
      },
    });
  });
});

describe('queues', () => {
  it('are all encrypted', () => {
    const queues = ofType('AWS::SQS::Queue');
    // Intake and push, each with its DLQ; the DLQs of the schedules and of the push status rules.
    expect(queues).toHaveLength(6);
    for (const [, queue] of queues) expect(queue.Properties.SqsManagedSseEnabled).toBe(true);
  });

  it('each work queue redrives to a DLQ after bounded receives, and each DLQ is one', () => {
    const queues = ofType('AWS::SQS::Queue');
    const redriveDlqs = queues.flatMap(([, q]) => {
      const redrive = q.Properties.RedrivePolicy as
        | { deadLetterTargetArn: { 'Fn::GetAtt': [string] } }
        | undefined;
      return redrive ? [redrive.deadLetterTargetArn['Fn::GetAtt'][0]] : [];
    });
    const targetDlqs = ofType('AWS::Events::Rule').flatMap(([, rule]) =>
      (rule.Properties.Targets as Array<{ DeadLetterConfig?: { Arn: { 'Fn::GetAtt': [string] } } }>).flatMap(
        (t) => (t.DeadLetterConfig ? [t.DeadLetterConfig.Arn['Fn::GetAtt'][0]] : []),
      ),
    );
    const dlqIds = new Set([...redriveDlqs, ...targetDlqs]);
    for (const [id, queue] of queues) {
      if (dlqIds.has(id)) continue;
      expect(queue.Properties.RedrivePolicy, id).toMatchObject({ maxReceiveCount: 5 });
    }
    expect(dlqIds.size).toBe(4);
  });

  it('delay only the lifecycle intake, by the seconds the sandbox models (EC2 lists a launch by then)', () => {
    const delayed = ofType('AWS::SQS::Queue').filter(([, q]) => q.Properties.DelaySeconds !== undefined);
    expect(
      delayed.map(([id, q]) => [/Intake.*Queue/.test(id) && !/Dlq/.test(id), q.Properties.DelaySeconds]),
    ).toEqual([[true, intakeDeliveryDelaySeconds]]);
  });

  it('each have a TLS-only policy', () => {
    const queueIds = ofType('AWS::SQS::Queue').map(([id]) => id);
    const tlsOnly = ofType('AWS::SQS::QueuePolicy').filter(([, p]) =>
      JSON.stringify(p.Properties.PolicyDocument).includes('"aws:SecureTransport":"false"'),
    );
    const covered = new Set(
      tlsOnly.flatMap(([, p]) => (p.Properties.Queues as Array<{ Ref: string }>).map((q) => q.Ref)),
    );
    expect([...covered].sort()).toEqual([...queueIds].sort());
  });

  it('admit EventBridge only from the rules that target them', () => {
    const eventsGrants = ofType('AWS::SQS::QueuePolicy').flatMap(([, p]) =>
      (p.Properties.PolicyDocument as { Statement: Array<Record<string, unknown>> }).Statement.filter((s) =>
        JSON.stringify(s.Principal).includes('events.amazonaws.com'),
      ).map((grant) => ({ queues: p.Properties.Queues as Array<{ Ref: string }>, grant })),
    );
    expect(eventsGrants.length).toBeGreaterThan(0);
    for (const { queues, grant } of eventsGrants) {
      const sourceRule = (grant.Condition as { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [string] } } })
        .ArnEquals['aws:SourceArn']['Fn::GetAtt'][0];
      const targets = JSON.stringify(resources[sourceRule]?.Properties.Targets);
      for (const queue of queues) expect(targets, `${sourceRule} -> ${queue.Ref}`).toContain(queue.Ref);
      expect(grant.Condition).toEqual({
        ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [sourceRule, 'Arn'] } },
      });
    }
  });
});

describe('lifecycle intake', () => {
  it('matches lifecycle actions of the served groups and the pool hooks', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.autoscaling'],
        'detail-type': [lifecycleDetailTypes.launch, lifecycleDetailTypes.terminate],
        detail: {
          AutoScalingGroupName: ['web-a', 'web-b'],
          LifecycleHookName: ['volsd-web-launch', 'volsd-web-terminate'],
        },
      },
    });
  });

  it('targets the intake queue with a DLQ for undeliverable events', () => {
    const [, rule] = ofType('AWS::Events::Rule')[0] ?? [];
    const targets = rule?.Properties.Targets as Array<Record<string, { 'Fn::GetAtt': [string, string] }>>;
    expect(targets).toHaveLength(1);
    const [target] = targets;
    expect(target?.Arn?.['Fn::GetAtt'][0]).toMatch(/LifecycleIntakeQueue(?!Dlq)/);
    expect(target?.DeadLetterConfig).toEqual({
      Arn: { 'Fn::GetAtt': [expect.stringMatching(/LifecycleIntakeQueueDlq/), 'Arn'] },
    });
  });

  it('adds a launch hook with the configured heartbeat and result to each group', () => {
    for (const group of ['web-a', 'web-b']) {
      template.hasResourceProperties('AWS::AutoScaling::LifecycleHook', {
        AutoScalingGroupName: group,
        LifecycleHookName: 'volsd-web-launch',
        LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
        HeartbeatTimeout: 300,
        DefaultResult: 'CONTINUE',
      });
    }
  });

  it('adds a terminate hook that continues by default to each group', () => {
    for (const group of ['web-a', 'web-b']) {
      template.hasResourceProperties('AWS::AutoScaling::LifecycleHook', {
        AutoScalingGroupName: group,
        LifecycleHookName: 'volsd-web-terminate',
        LifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
        HeartbeatTimeout: 300,
        DefaultResult: 'CONTINUE',
      });
    }
  });
});

describe('sync workers', () => {
  it('are one group per AZ subnet, of one instance up to what the target needs, desired left to replenish', () => {
    const groups = ofType('AWS::AutoScaling::AutoScalingGroup');
    expect(groups).toHaveLength(3); // the stack's VPC spans 3 AZs by default
    const subnets = groups.map(([, g]) => {
      // The default target (2 idle per AZ) fits one t4g.small worker.
      expect(g.Properties).toMatchObject({ MinSize: '1', MaxSize: '1' });
      expect(g.Properties.DesiredCapacity).toBeUndefined();
      expect(g.Properties.VPCZoneIdentifier).toHaveLength(1);
      return JSON.stringify(g.Properties.VPCZoneIdentifier);
    });
    expect(new Set(subnets).size).toBe(3);
  });

  it('require IMDSv2, run Amazon Linux 2023 arm64 and encrypt the root volume', () => {
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({
        MetadataOptions: { HttpTokens: 'required' },
        ImageId: { Ref: Match.stringLikeRegexp('al2023.*arm64') },
        InstanceType: 't4g.small',
        BlockDeviceMappings: [Match.objectLike({ Ebs: Match.objectLike({ Encrypted: true }) })],
      }),
    });
    const imageParameter = Object.entries(
      template.toJSON().Parameters as Record<string, { Default: string }>,
    ).find(([id]) => /al2023.*arm64/.test(id));
    expect(imageParameter?.[1].Default).toMatch(
      /^\/aws\/service\/ami-amazon-linux-latest\/al2023-ami-kernel-.*-arm64$/,
    );
  });

  it('tag their instances with the pool and the worker role', () => {
    for (const [, group] of ofType('AWS::AutoScaling::AutoScalingGroup')) {
      expect(group.Properties.Tags).toEqual(
        expect.arrayContaining([
          { Key: poolTag, Value: 'web', PropagateAtLaunch: true },
          { Key: roleTag, Value: 'worker', PropagateAtLaunch: true },
        ]),
      );
    }
  });

  it('never tag volumes with the pool through the launch template', () => {
    const launchTemplates = ofType('AWS::EC2::LaunchTemplate');
    expect(launchTemplates).toHaveLength(1);
    const data = launchTemplates[0]?.[1].Properties.LaunchTemplateData as {
      TagSpecifications?: Array<{ ResourceType: string; Tags: Array<{ Key: string }> }>;
    };
    const volumeTags = (data.TagSpecifications ?? [])
      .filter((spec) => spec.ResourceType === 'volume')
      .flatMap((spec) => spec.Tags.map((t) => t.Key));
    expect(volumeTags).not.toContain(poolTag);
  });

  it('may read only live/ of the push bucket besides SSM core', () => {
    const workerRole = ofType('AWS::IAM::Role').find(([id]) => /SyncWorkersRole/.test(id));
    expect(JSON.stringify(workerRole?.[1].Properties.ManagedPolicyArns)).toContain(
      'AmazonSSMManagedInstanceCore',
    );
    const workerStatements = allStatements(template).filter(({ owner }) =>
      /SyncWorkersRoleDefaultPolicy/.test(owner),
    );
    const s3 = workerStatements.filter(({ statement }) =>
      actionsOf(statement).some((a) => a.startsWith('s3:')),
    );
    expect(s3.flatMap(({ statement }) => actionsOf(statement)).sort()).toEqual([
      's3:GetObject',
      's3:ListBucket',
    ]);
    for (const { statement } of s3) {
      const text = JSON.stringify(statement);
      expect(text.includes('/live/*') || text.includes('"s3:prefix":["live/","live/*"]')).toBe(true);
    }
  });
});

describe('IAM', () => {
  it('conditions every mutating EC2 action on the pool tag', () => {
    // Not vacuous: the workflow statements are in the template.
    expect(ec2Mutations(template).length).toBeGreaterThan(8);
    expect(unscopedEc2Mutations(template)).toEqual([]);
  });

  it('grants each mutating EC2 action the workflows need', () => {
    const granted = new Set(allStatements(template).flatMap(({ statement }) => actionsOf(statement)));
    const missing = mutatingEc2Actions.filter((a) => !granted.has(a));
    expect(missing).toEqual([]);
  });

  it('grants no fast snapshot restore action in any policy, not even through a wildcard', () => {
    const fsr = [
      'ec2:EnableFastSnapshotRestores',
      'ec2:DisableFastSnapshotRestores',
      'ec2:DescribeFastSnapshotRestores',
    ];
    // IAM action patterns: case-insensitive, `*` and `?` wildcards (actions hold only [A-Za-z0-9:-]).
    const covers = (pattern: string, action: string) =>
      new RegExp(`^${pattern.replaceAll('*', '.*').replaceAll('?', '.')}$`, 'i').test(action);
    const statements = allStatements(template);
    expect(statements.length).toBeGreaterThan(20);
    const granting = statements.flatMap(({ owner, statement }) =>
      actionsOf(statement)
        .filter((a) => fsr.some((action) => covers(a, action)))
        .map((a) => `${owner}: ${a}`),
    );
    expect(granting).toEqual([]);
    expect(JSON.stringify(template.toJSON())).not.toMatch(/FastSnapshotRestore/i);
  });

  it('allows CreateTags only as part of CreateVolume or CreateSnapshot', () => {
    const createTags = allStatements(template).filter(({ statement }) =>
      actionsOf(statement).includes('ec2:CreateTags'),
    );
    expect(createTags.length).toBeGreaterThan(0);
    for (const { statement } of createTags) {
      expect(['CreateVolume', 'CreateSnapshot']).toContain(
        statement.Condition?.StringEquals?.['ec2:CreateAction'],
      );
    }
  });

  it('uses Resource * only for read-only actions, and for log delivery on state machine roles', () => {
    const stateMachineRoles = new Set(
      ofType('AWS::StepFunctions::StateMachine').map(
        ([, sm]) => (sm.Properties.RoleArn as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0],
      ),
    );
    // acquire, release, replenish, snapshot, reconcile, syncall.
    expect(stateMachineRoles.size).toBe(6);
    const ofStateMachine = (owner: string) =>
      (resources[owner]?.Properties.Roles as Array<{ Ref: string }> | undefined)?.every((r) =>
        stateMachineRoles.has(r.Ref),
      ) ?? false;
    const star = allStatements(template).filter(
      ({ statement }) => JSON.stringify(statement.Resource) === '"*"',
    );
    const writes = star.flatMap(({ owner, statement }) =>
      actionsOf(statement).filter(
        (a) =>
          !/^[a-z0-9-]+:(Describe|List|Get)/.test(a) &&
          !a.startsWith('xray:') &&
          !(ofStateMachine(owner) && (logDeliveryActions as readonly string[]).includes(a)),
      ),
    );
    expect(writes).toEqual([]);
  });
});

describe('observability', () => {
  it('gives every log group a retention', () => {
    const logGroups = ofType('AWS::Logs::LogGroup');
    expect(logGroups.length).toBeGreaterThan(0);
    for (const [id, group] of logGroups) expect(group.Properties.RetentionInDays, id).toBeGreaterThan(0);
  });

  it('alarms on each DLQ holding a message', () => {
    const dlqs = Object.keys(resources).filter(
      (id) => resources[id]?.Type === 'AWS::SQS::Queue' && /Dlq/.test(id),
    );
    for (const dlq of dlqs) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlq, 'QueueName'] } }],
        ComparisonOperator: 'GreaterThanThreshold',
        Threshold: 0,
      });
    }
    expect(dlqs).toHaveLength(4);
  });

  it('alarms on idle volumes below target in each AZ', () => {
    const idle = ofType('AWS::CloudWatch::Alarm').filter(
      ([, a]) => a.Properties.MetricName === volsdMetrics.idleVolumes,
    );
    expect(idle).toHaveLength(3);
    for (const [, alarm] of idle) {
      expect(alarm.Properties).toMatchObject({
        Namespace: metricsNamespace,
        Threshold: 2,
        ComparisonOperator: 'LessThanThreshold',
        TreatMissingData: 'missing',
        Dimensions: expect.arrayContaining([
          { Name: 'Pool', Value: 'web' },
          expect.objectContaining({ Name: 'Az' }),
        ]),
      });
    }
  });

  it('alarms on acquire failures, launches in an AZ the pool does not cover and partial pushes of the pool', () => {
    for (const metric of [
      volsdMetrics.acquireFailures,
      volsdMetrics.uncoveredAzLaunches,
      volsdMetrics.pushPartial,
    ]) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: metricsNamespace,
        MetricName: metric,
        Dimensions: [{ Name: 'Pool', Value: 'web' }],
        Threshold: 1,
      });
    }
  });

  it('alarms when a sync worker is missing', () => {
    const workers = ofType('AWS::CloudWatch::Alarm').filter(
      ([, a]) => a.Properties.MetricName === 'GroupInServiceInstances',
    );
    expect(workers).toHaveLength(3);
  });

  it('sends every alarm to the alarm topic', () => {
    const topic = ofType('AWS::SNS::Topic')[0]?.[0];
    for (const [id, alarm] of ofType('AWS::CloudWatch::Alarm')) {
      expect(alarm.Properties.AlarmActions, id).toEqual([{ Ref: topic }]);
    }
  });

  it('encrypts the alarm topic and refuses non-TLS publishing', () => {
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('has a dashboard', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });
});

describe('SSM documents', () => {
  it('deploys every catalogue document as <name>-<pool>, built from its script', () => {
    for (const doc of allDocuments) {
      template.hasResourceProperties('AWS::SSM::Document', {
        Name: `${doc.name}-web`,
        DocumentType: 'Command',
        UpdateMethod: 'NewVersion',
        Content: documentContent(doc, readScript(doc)),
      });
    }
    template.resourceCountIs('AWS::SSM::Document', allDocuments.length);
  });

  it('lets the workflows send exactly these documents', () => {
    const sendStatements = allStatements(template).filter(({ statement }) =>
      actionsOf(statement).includes('ssm:SendCommand'),
    );
    // Not vacuous: acquire, release, replenish, snapshot, reconcile, syncall, the fan-out and grow send documents.
    expect(new Set(sendStatements.map(({ owner }) => owner)).size).toBe(8);
    const documentResources = sendStatements
      .flatMap(({ statement }) => [statement.Resource].flat().map(flattenReference))
      .filter((arn) => arn.includes(':document/'))
      .map((arn) => arn.replace(/^.*:document\//, ''));
    expect([...new Set(documentResources)].sort()).toEqual(allDocuments.map((d) => `${d.name}-web`).sort());
  });
});

describe('published configuration', () => {
  it('puts the table, the bucket and the mount path under /volsd/<pool>/', () => {
    for (const name of ['table-name', 'push-bucket-name', 'mount-path']) {
      template.hasResourceProperties('AWS::SSM::Parameter', { Name: `/volsd/web/${name}`, Type: 'String' });
    }
  });

  it('outputs the client and admin policies', () => {
    template.hasOutput('InstancePolicyArn', {});
    template.hasOutput('ClientHostPolicyArn', {});
    template.hasOutput('AdminPolicyArn', {});
  });

  it("outputs the boot unit's signal URL and scripts under plain keys, for groups defined elsewhere", () => {
    template.hasOutput('BootSignalUrl', {
      Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('^PoolBootUnitHostFunction'), 'FunctionUrl'] },
    });
    template.hasOutput('BootUnitBundle', {
      Value: { 'Fn::Sub': Match.stringLikeRegexp('^s3://cdk-[a-z0-9]+-assets-.+\\.zip$') },
    });
  });

  it('outputs the configuration path and the state machines', () => {
    template.hasOutput('ConfigPath', { Value: '/volsd/web' });
    for (const name of ['Acquire', 'Release', 'Replenish', 'Snapshot', 'Reconcile']) {
      template.hasOutput(`${name}StateMachineArn`, {
        Value: { Ref: Match.stringLikeRegexp(`^PoolWorkflows${name}`) },
      });
    }
  });
});

describe('cdk-nag AwsSolutions', () => {
  it('finds nothing unacknowledged', () => {
    expect(findings).toEqual([]);
  });
});
