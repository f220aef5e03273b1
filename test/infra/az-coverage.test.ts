import { Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AutoScalingGroup } from 'aws-cdk-lib/aws-autoscaling';
import { InstanceType, MachineImage, SubnetType, Vpc } from 'aws-cdk-lib/aws-ec2';
import { describe, expect, it } from 'vitest';
import { readAppConfig } from '../../lib/config.js';
import { uncheckedAzsWarningId, VolsdPool } from '../../lib/volsd-pool.js';
import { VolsdStack } from '../../lib/volsd-stack.js';
import { testApp } from './helpers.js';

const env = { account: '123456789012', region: 'eu-west-1' };
const regionAzs = ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'];

/** A stack in a pinned Region whose AZs are known (as `cdk.context.json` would hold them). */
function pinnedStack(): Stack {
  const app = testApp({ [`availability-zones:account=${env.account}:region=${env.region}`]: regionAzs });
  return new Stack(app, 'Azs', { env });
}

function vpcOf(stack: Stack, maxAzs: number): Vpc {
  return new Vpc(stack, `Vpc${maxAzs}`, {
    maxAzs,
    natGateways: 0,
    subnetConfiguration: [{ name: 'private', subnetType: SubnetType.PRIVATE_ISOLATED }],
  });
}

function servedGroup(stack: Stack, vpc: Vpc): AutoScalingGroup {
  return new AutoScalingGroup(stack, 'Web', {
    vpc,
    vpcSubnets: { subnetType: SubnetType.PRIVATE_ISOLATED },
    instanceType: new InstanceType('t4g.micro'),
    machineImage: MachineImage.latestAmazonLinux2023(),
    requireImdsv2: true,
  });
}

function workerSubnetAzs(stack: Stack): unknown[] {
  return Object.values(Template.fromStack(stack).findResources('AWS::EC2::Subnet')).map(
    (s) => s.Properties.AvailabilityZone,
  );
}

describe("the stack's own VPC", () => {
  it('spans the first three AZs of the Region by default, even environment-agnostic', () => {
    const app = testApp();
    const { stackName, stackProps } = readAppConfig(app.node);
    const stack = new VolsdStack(app, stackName, stackProps);
    expect(workerSubnetAzs(stack)).toEqual(
      [0, 1, 2].map((i) => ({ 'Fn::Select': [i, { 'Fn::GetAZs': '' }] })),
    );
  });

  it('honours volsd:maxAzs above two in an environment-agnostic stack', () => {
    const app = testApp({ 'volsd:maxAzs': 4 });
    const { stackName, stackProps } = readAppConfig(app.node);
    const stack = new VolsdStack(app, stackName, stackProps);
    expect(workerSubnetAzs(stack)).toHaveLength(4);
  });

  it('names the AZs of a pinned Region', () => {
    const app = testApp({
      'volsd:account': env.account,
      'volsd:region': env.region,
      [`availability-zones:account=${env.account}:region=${env.region}`]: regionAzs,
    });
    const { stackName, stackProps } = readAppConfig(app.node);
    const stack = new VolsdStack(app, stackName, stackProps);
    expect(stack.pool.availabilityZones).toEqual(regionAzs);
  });
});

describe('AZ coverage of served groups', () => {
  it('fails the synth when a group of the app launches in an AZ the pool does not cover', () => {
    // Prepare: the group spans three AZs, the pool's subnets only two of them.
    const stack = pinnedStack();
    const vpc = vpcOf(stack, 3);
    const pool = new VolsdPool(stack, 'Pool', {
      poolName: 'web',
      vpc,
      subnets: { subnetType: SubnetType.PRIVATE_ISOLATED, availabilityZones: regionAzs.slice(0, 2) },
      autoScalingGroups: [servedGroup(stack, vpc)],
    });

    // Act
    const errors = Annotations.fromStack(stack).findError(`/${pool.node.path}`, Match.anyValue());

    // Assess
    expect(errors).toHaveLength(1);
    expect(String(errors[0]?.entry.data)).toMatch(
      /Served group Azs\/Web launches in eu-west-1c, outside the pool's AZs \(eu-west-1a, eu-west-1b\)/,
    );
  });

  it('passes when the pool covers every AZ of the group', () => {
    const stack = pinnedStack();
    const vpc = vpcOf(stack, 3);
    new VolsdPool(stack, 'Pool', { poolName: 'web', vpc, autoScalingGroups: [servedGroup(stack, vpc)] });
    expect(Annotations.fromStack(stack).findError('*', Match.anyValue())).toEqual([]);
    expect(
      Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp(uncheckedAzsWarningId)),
    ).toEqual([]);
  });

  it('compares AZ tokens of an environment-agnostic stack by their index in the Region', () => {
    const stack = new Stack(testApp(), 'Agnostic');
    const groupVpc = vpcOf(stack, 2);
    new VolsdPool(stack, 'Pool', {
      poolName: 'web',
      vpc: vpcOf(stack, 1),
      autoScalingGroups: [servedGroup(stack, groupVpc)],
    });
    const errors = Annotations.fromStack(stack).findError('*', Match.anyValue());
    expect(errors.map((e) => String(e.entry.data))).toEqual([
      expect.stringContaining("launches in the Region's AZ #2, outside the pool's AZs (the Region's AZ #1)"),
    ]);
  });

  it('warns, naming the group and the pool AZs, when groups are given by name', () => {
    const stack = pinnedStack();
    new VolsdPool(stack, 'Pool', { poolName: 'web', vpc: vpcOf(stack, 2), autoScalingGroups: ['web-asg'] });
    const warnings = Annotations.fromStack(stack).findWarning(
      '*',
      Match.stringLikeRegexp(uncheckedAzsWarningId),
    );
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0]?.entry.data)).toMatch(/web-asg.*serves only eu-west-1a, eu-west-1b/);
  });

  it('warns for a group imported by name, whose subnets the app cannot see', () => {
    const stack = pinnedStack();
    const imported = AutoScalingGroup.fromAutoScalingGroupName(stack, 'Imported', 'api-asg');
    new VolsdPool(stack, 'Pool', { poolName: 'web', vpc: vpcOf(stack, 2), autoScalingGroups: [imported] });
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('api-asg'));
    expect(warnings).toHaveLength(1);
  });
});
