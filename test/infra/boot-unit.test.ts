import { Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AutoScalingGroup } from 'aws-cdk-lib/aws-autoscaling';
import { InstanceType, LaunchTemplate, MachineImage, SubnetType, Vpc } from 'aws-cdk-lib/aws-ec2';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { beforeAll, describe, expect, it } from 'vitest';
import { bootUnitTag } from '../../lambdas/shared/tags.js';
import { flattenReference } from '../../lib/nag.js';
import { VolsdPool } from '../../lib/volsd-pool.js';
import { actionsOf, allStatements, testApp } from './helpers.js';

type Tag = { Key: string; Value: string; PropagateAtLaunch: boolean };
type Statement = ReturnType<typeof allStatements>[number];

/** A pool serving `web` (a group of the app) and `custom` (a group with a launch template of its own). */
function build(bootUnit?: boolean) {
  const stack = new Stack(testApp(), 'Boot', { env: { account: '123456789012', region: 'eu-west-1' } });
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
  const custom = new AutoScalingGroup(stack, 'Custom', {
    vpc,
    launchTemplate: new LaunchTemplate(stack, 'CustomTemplate', {
      instanceType: new InstanceType('t4g.micro'),
      machineImage: MachineImage.latestAmazonLinux2023(),
      role: new Role(stack, 'CustomRole', { assumedBy: new ServicePrincipal('ec2.amazonaws.com') }),
      requireImdsv2: true,
    }),
  });
  const pool = new VolsdPool(stack, 'Pool', {
    poolName: 'api',
    vpc,
    autoScalingGroups: [web, custom],
    idlePerAz: 0,
    dataKey: new Key(stack, 'DataKey', { enableKeyRotation: true }),
    ...(bootUnit === undefined ? {} : { bootUnit }),
  });
  return { stack, pool, template: Template.fromStack(stack) };
}

/** The group's tags in the template. */
function groupTags(template: Template, logicalPrefix: string): Tag[] {
  const [group] = Object.entries(template.findResources('AWS::AutoScaling::AutoScalingGroup'))
    .filter(([id]) => id.startsWith(logicalPrefix))
    .map(([, g]) => g);
  return (group?.Properties.Tags as Tag[] | undefined) ?? [];
}

/**
 * The user data script of the launch template or configuration whose logical id starts with
 * `logicalPrefix`, its parts joined ('' when it has none).
 */
function userDataOf(template: Template, logicalPrefix: string): string {
  const resources = template.toJSON().Resources as Record<
    string,
    { Type: string; Properties?: { LaunchTemplateData?: { UserData?: unknown }; UserData?: unknown } }
  >;
  const [r] = Object.entries(resources)
    .filter(([id]) => id.startsWith(logicalPrefix))
    .map(([, r]) => r);
  const props = r?.Type === 'AWS::EC2::LaunchTemplate' ? r.Properties?.LaunchTemplateData : r?.Properties;
  const data = props?.UserData as { 'Fn::Base64'?: unknown } | undefined;
  // Fn::Base64 of Fn::Join ['', [...parts]]: the literal parts and the references, flattened.
  const join = (data?.['Fn::Base64'] as { 'Fn::Join'?: [string, unknown[]] } | undefined)?.['Fn::Join'];
  return (join?.[1] ?? [data?.['Fn::Base64']])
    .map((p) => (typeof p === 'string' ? p : JSON.stringify(p)))
    .join('');
}

describe('BootUnit in a pool serving groups of the app', () => {
  let template: Template;
  let pool: VolsdPool;
  let stack: Stack;
  let statements: Statement[];
  /** The logical id of a construct's resource. */
  let logicalId: (construct: { node: { defaultChild?: unknown } }) => string;

  beforeAll(() => {
    ({ stack, pool, template } = build());
    statements = allStatements(template);
    logicalId = (c) => stack.getLogicalId(c.node.defaultChild as never);
  });

  /** Statements of the role of `fn` (its default policy). */
  const ofRole = (fn: { role: { node: { defaultChild?: unknown } } }) => {
    const role = logicalId(fn.role);
    const resources = template.toJSON().Resources as Record<string, { Properties?: { Roles?: unknown[] } }>;
    return statements.filter(
      ({ owner }) =>
        owner === role ||
        (resources[owner]?.Properties?.Roles ?? []).some((r) => (r as { Ref?: string }).Ref === role),
    );
  };

  it('feeds the events function the final statuses of the Volsd-Unmount document only', () => {
    const fn = logicalId(pool.bootUnit.eventsFunction.function);
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.ssm'],
        'detail-type': ['EC2 Command Status-change Notification'],
        detail: {
          'document-name': ['Volsd-Unmount-api'],
          status: ['Success', 'Failed', 'TimedOut', 'Cancelled'],
        },
      },
      State: 'ENABLED',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [fn, 'Arn'] } })],
    });
  });

  it('feeds the events function the instances reaching running, no other state', () => {
    const fn = logicalId(pool.bootUnit.eventsFunction.function);
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.ec2'],
        'detail-type': ['EC2 Instance State-change Notification'],
        detail: { state: ['running'] },
      },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [fn, 'Arn'] } })],
    });
    // Only EventBridge may invoke it.
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [fn, 'Arn'] },
      Principal: 'events.amazonaws.com',
    });
  });

  it('puts the host function behind a Function URL with AWS_IAM auth, and only that URL', () => {
    const fn = logicalId(pool.bootUnit.hostFunction.function);
    const urls = Object.values(template.findResources('AWS::Lambda::Url')).filter(
      (u) => JSON.stringify(u.Properties.TargetFunctionArn) === JSON.stringify({ 'Fn::GetAtt': [fn, 'Arn'] }),
    );
    expect(urls).toHaveLength(1);
    expect(urls[0]?.Properties.AuthType).toBe('AWS_IAM');
    // No public (NONE) URL anywhere in the pool.
    for (const u of Object.values(template.findResources('AWS::Lambda::Url')))
      expect(u.Properties.AuthType).toBe('AWS_IAM');
  });

  it("lets the pool's instances invoke the signal URL of the host function only, with IAM auth, and the function only through it", () => {
    const fn = logicalId(pool.bootUnit.hostFunction.function);
    const invokingIt = statements.filter(
      ({ statement }) =>
        actionsOf(statement).some((a) => a.startsWith('lambda:Invoke')) &&
        JSON.stringify(statement.Resource) === JSON.stringify({ 'Fn::GetAtt': [fn, 'Arn'] }),
    );
    expect(new Set(invokingIt.map(({ owner }) => owner))).toEqual(
      new Set([logicalId(pool.clientPolicies.instancePolicy)]),
    );
    // Function URLs created since October 2025 need both actions (AWS Lambda Developer Guide,
    // "Control access to Lambda function URLs"); InvokeFunction only through the URL.
    expect(invokingIt.map(({ statement }) => [actionsOf(statement), statement.Condition])).toEqual([
      [['lambda:InvokeFunctionUrl'], { StringEquals: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' } }],
      [['lambda:InvokeFunction'], { Bool: { 'lambda:InvokedViaFunctionUrl': 'true' } }],
    ]);
  });

  it('lets the events function take the unmount waits, mark the running waits, move pool volumes, and answer only the acquire', () => {
    const mine = ofRole(pool.bootUnit.eventsFunction);
    const dynamo = mine.filter(({ statement }) =>
      actionsOf(statement).some((a) => a.startsWith('dynamodb:')),
    );
    const table = { 'Fn::GetAtt': [logicalId(pool.table.table), 'Arn'] };
    expect(
      dynamo.map(({ statement }) => [actionsOf(statement), statement.Condition, statement.Resource]),
    ).toEqual([
      [
        ['dynamodb:DeleteItem'],
        { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['WAIT#command#*'] } },
        table,
      ],
      [
        ['dynamodb:UpdateItem'],
        { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['WAIT#running#*'] } },
        table,
      ],
      // The stages it runs in the acquire's Task (lambdas/acquire/callbacks.ts): the volume record moves,
      // the boot unit's wait.
      [
        ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['VOL#*'] } },
        table,
      ],
      [
        ['dynamodb:PutItem'],
        { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['WAIT#boot#*'] } },
        table,
      ],
    ]);
    const states = mine.flatMap(({ statement }) =>
      actionsOf(statement).filter((a) => a.startsWith('states:')),
    );
    // It resumes or fails the acquire's Task, never heartbeats it.
    expect(states.sort()).toEqual(['states:SendTaskFailure', 'states:SendTaskSuccess']);
    const stateResources = mine
      .filter(({ statement }) => actionsOf(statement).some((a) => a.startsWith('states:')))
      .map(({ statement }) => statement.Resource);
    expect(stateResources).toEqual([{ Ref: logicalId(pool.workflows.acquire.stateMachine) }]);
    // On EC2 only the detach from the worker and the attach to the instance (pool volumes on pool
    // instances, by tag) and the describes; nothing on SSM or Auto Scaling.
    const aws = mine.filter(({ statement }) =>
      actionsOf(statement).some((a) => /^(ec2|ssm|autoscaling):/.test(a)),
    );
    expect(aws.map(({ statement }) => [actionsOf(statement), statement.Condition])).toEqual([
      [
        ['ec2:AttachVolume', 'ec2:DetachVolume'],
        {
          StringEquals: {
            'aws:ResourceTag/volsd:pool': pool.settings.poolName,
            'aws:ResourceTag/volsd:role': 'volume',
          },
        },
      ],
      [
        ['ec2:AttachVolume', 'ec2:DetachVolume'],
        { StringEquals: { 'aws:ResourceTag/volsd:pool': pool.settings.poolName } },
      ],
      [['ec2:DescribeInstances', 'ec2:DescribeVolumes'], undefined],
    ]);
  });

  it("lets the host function read and take only the boot waits, read the pool's record, and answer only the acquire", () => {
    const mine = ofRole(pool.bootUnit.hostFunction);
    const dynamo = mine
      .filter(({ statement }) => actionsOf(statement).some((a) => a.startsWith('dynamodb:')))
      .map(({ statement }) => ({
        actions: actionsOf(statement),
        keys: (statement.Condition as Record<string, Record<string, string[]>>)?.[
          'ForAllValues:StringLike'
        ]?.['dynamodb:LeadingKeys'],
      }));
    expect(dynamo).toEqual([
      { actions: ['dynamodb:GetItem'], keys: ['WAIT#boot#*', 'POOL#api'] },
      { actions: ['dynamodb:DeleteItem'], keys: ['WAIT#boot#*'] },
    ]);
    const states = mine.filter(({ statement }) => actionsOf(statement).some((a) => a.startsWith('states:')));
    expect(states).toHaveLength(1);
    expect(flattenReference(stack.resolve(states[0]?.statement.Resource))).toMatch(
      /:states:eu-west-1:123456789012:stateMachine:volsd-api-acquire$/,
    );
    expect(
      mine
        .flatMap(({ statement }) => actionsOf(statement))
        .filter((a) => /^(ec2|ssm|autoscaling|s3):/.test(a)),
    ).toEqual([]);
    // The table's key (the pool's data key here): decrypt only, it writes no item.
    expect(mine.flatMap(({ statement }) => actionsOf(statement)).filter((a) => a.startsWith('kms:'))).toEqual(
      ['kms:Decrypt'],
    );
  });

  it('installs the unit through the user data of a group of the app, with the signal URL and the pool settings', () => {
    const script = userDataOf(template, 'WebLaunchConfig');
    expect(script).toContain('mkdir -p /usr/local/lib/volsd /etc/volsd');
    expect(script).toMatch(
      /aws s3 cp --region eu-west-1 s3:\/\/cdk-[^ ]+\/[0-9a-f]{64}\.zip \/tmp\/volsd-boot\.zip/,
    );
    expect(script).toContain(
      'install -m 0644 /usr/local/lib/volsd/volsd-boot.service /etc/systemd/system/volsd-boot.service',
    );
    expect(script).toContain('systemctl enable --now volsd-boot.service');
    // boot.env names the host function's URL (a reference, resolved at deploy) and the pool's mount settings.
    expect(script).toContain(
      JSON.stringify({ 'Fn::GetAtt': [logicalId(pool.bootUnit.signalUrl as never), 'FunctionUrl'] }),
    );
    expect(script).toContain("'eu-west-1' '/srv/volsd' 'noatime'");
  });

  it('tags a group of the app volsd:boot-unit=1, propagated to its instances, and lets its role read the bundle', () => {
    expect(groupTags(template, 'WebASG')).toContainEqual({
      Key: bootUnitTag,
      Value: '1',
      PropagateAtLaunch: true,
    });
    const web = stack.node.findChild('Web') as AutoScalingGroup;
    const reads = ofRole(web).filter(({ statement }) =>
      actionsOf(statement).some((a) => a.startsWith('s3:GetObject')),
    );
    // The bundle's one object in the assets bucket, nothing wider there (the functions' code is there too).
    const bundleKey = pool.bootUnit.bundle.s3ObjectKey;
    expect(reads).toHaveLength(1);
    expect(actionsOf(reads[0]?.statement ?? {})).toEqual(['s3:GetObject']);
    const resources = [reads[0]?.statement.Resource].flat().map((r) => flattenReference(stack.resolve(r)));
    expect(resources).toHaveLength(1);
    expect(resources[0]).toMatch(
      new RegExp(`:s3:::cdk-hnb659fds-assets-123456789012-eu-west-1/${bundleKey}$`),
    );
  });

  it('leaves a group with a launch template of its own untagged, with a warning saying why', () => {
    expect(groupTags(template, 'CustomASG').map((t) => t.Key)).not.toContain(bootUnitTag);
    expect(userDataOf(template, 'CustomTemplate')).not.toContain('volsd-boot');
    const warnings = Annotations.fromStack(stack).findWarning(
      '/Boot/Custom',
      Match.stringLikeRegexp('boot unit is not installed'),
    );
    expect(warnings).toHaveLength(1);
  });
});

describe('BootUnit with bootUnit: false', () => {
  it('neither installs the unit nor tags the group, so its instances mount over SSM', () => {
    const { template } = build(false);
    expect(groupTags(template, 'WebASG').map((t) => t.Key)).not.toContain(bootUnitTag);
    expect(userDataOf(template, 'WebLaunchConfig')).not.toContain('volsd-boot');
  });
});
