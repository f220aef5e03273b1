import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { readAppConfig } from '../../lib/config.js';
import { pushWriteActions } from '../../lib/push-bucket.js';
import { VolsdStack } from '../../lib/volsd-stack.js';
import { testApp } from './helpers.js';

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;
interface Statement {
  Sid?: string;
  Effect?: string;
  Principal?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

/**
 * Policy documents whose service-principal statements need no source condition: trust policies
 * (`AssumeRolePolicyDocument`). A role's trust names the service that runs it (Lambda, Step
 * Functions, EC2); the role is used only by resources of this stack that name it, and passing it to
 * anything else needs iam:PassRole, which is the guard AWS relies on there.
 */
const exemptDocuments = new Set(['AssumeRolePolicyDocument']);

/** Every policy document of `resources` (resource policies, key policies, identity policies). */
function policyDocuments(resources: Resources): Array<{ where: string; statements: Statement[] }> {
  const out: Array<{ where: string; statements: Statement[] }> = [];
  const walk = (node: unknown, where: string) => {
    if (Array.isArray(node)) {
      node.forEach((n, i) => {
        walk(n, `${where}[${i}]`);
      });
    } else if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
        const statements = (value as { Statement?: unknown } | undefined)?.Statement;
        if (/Policy(Document)?$|^KeyPolicy$/.test(key) && Array.isArray(statements)) {
          if (!exemptDocuments.has(key)) out.push({ where: `${where}.${key}`, statements });
        } else walk(value, `${where}.${key}`);
      }
    }
  };
  for (const [id, resource] of Object.entries(resources)) walk(resource.Properties, id);
  return out;
}

const isServicePrincipal = (s: Statement) =>
  typeof s.Principal === 'object' && s.Principal !== null && 'Service' in s.Principal;
const sourceKeys = (s: Statement) =>
  Object.values(s.Condition ?? {})
    .flatMap((block) => Object.keys(block))
    .filter((k) => k === 'aws:SourceAccount' || k === 'aws:SourceArn');

/** The documented configurations: cdk.json alone, served groups with a mail, a given topic. */
const configurations: Record<string, Record<string, unknown>> = {
  'cdk.json': {},
  'served groups and alarm mail': {
    'volsd:autoScalingGroupNames': 'web-a,web-b',
    'volsd:alarmEmail': 'ops@example.com',
    'volsd:pushWriterArns': 'arn:aws:iam::123456789012:role/ci-*',
  },
  'existing VPC and topic': {
    'volsd:account': '123456789012',
    'volsd:region': 'eu-west-1',
    'volsd:vpcId': 'vpc-0123456789abcdef0',
    'volsd:availabilityZones': 'eu-west-1a,eu-west-1b',
    'volsd:subnetIds': 'subnet-0123456789abcdef0,subnet-0123456789abcdef1',
    'volsd:alarmTopicArn': 'arn:aws:sns:eu-west-1:123456789012:ops',
    'volsd:volumeKmsKeyArn': 'arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555',
  },
};

function synth(context: Record<string, unknown>): { stack: VolsdStack; template: Template } {
  const app = testApp(context);
  const { stackName, stackProps } = readAppConfig(app.node);
  const stack = new VolsdStack(app, stackName, stackProps);
  return { stack, template: Template.fromStack(stack) };
}

describe.each(Object.entries(configurations))('service principals (%s)', (_name, context) => {
  let resources: Resources;
  beforeAll(() => {
    resources = synth(context).template.toJSON().Resources as Resources;
  });

  it('scope every service-principal statement with aws:SourceAccount or aws:SourceArn', () => {
    const unscoped = policyDocuments(resources).flatMap(({ where, statements }) =>
      statements
        .filter((s) => s.Effect === 'Allow' && isServicePrincipal(s) && sourceKeys(s).length === 0)
        .map((s) => `${where}: ${JSON.stringify(s.Principal)} ${s.Sid ?? ''}`),
    );
    expect(unscoped).toEqual([]);
  });

  it('give every Lambda permission for a service a source ARN or account', () => {
    const open = Object.entries(resources)
      .filter(([, r]) => r.Type === 'AWS::Lambda::Permission')
      .filter(([, r]) => /\.amazonaws\.com$/.test(String(r.Properties?.Principal)))
      .filter(([, r]) => r.Properties?.SourceArn === undefined && r.Properties?.SourceAccount === undefined)
      .map(([id]) => id);
    expect(open).toEqual([]);
  });
});

describe('the standalone app', () => {
  let template: Template;
  let stack: VolsdStack;
  beforeAll(() => {
    ({ stack, template } = synth(configurations['served groups and alarm mail'] ?? {}));
  });

  it('lets S3 notify the push queue only from the push bucket of this account', () => {
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 's3.amazonaws.com' },
            Condition: {
              ArnLike: { 'aws:SourceArn': stack.resolve(stack.pool.push.bucket.bucketArn) },
              StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
            },
          }),
        ]),
      },
    });
  });

  it("lets CloudWatch publish to the alarm topic, only from this account's alarms", () => {
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
            Condition: {
              ArnLike: {
                'aws:SourceArn': {
                  'Fn::Join': [
                    '',
                    Match.arrayWith([
                      Match.stringLikeRegexp(':cloudwatch:'),
                      Match.stringLikeRegexp(':alarm:\\*$'),
                    ]),
                  ],
                },
              },
              StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
            },
          }),
        ]),
      },
    });
  });

  it('keeps the TLS-only Deny on the alarm topic beside the CloudWatch Allow', () => {
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it("lets CloudWatch use the alarm topic's key only for this account's alarms", () => {
    template.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Condition: Match.objectLike({ StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } }),
          }),
        ]),
      },
    });
  });

  it('denies object writes to every principal but the publisher role and the named writers', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: stack.resolve(stack.pool.push.bucket.bucketName),
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Principal: { AWS: '*' },
            // minimizePolicies (cdk.json) sorts actions.
            Action: [...pushWriteActions].sort(),
            Resource: stack.resolve(stack.pool.push.bucket.arnForObjects('*')),
            Condition: {
              ArnNotLike: {
                'aws:PrincipalArn': [
                  stack.resolve(stack.pool.push.publisherRole.roleArn),
                  'arn:aws:iam::123456789012:role/ci-*',
                ],
              },
            },
          }),
        ]),
      },
    });
  });

  it('lets the publisher role write and list only live/', () => {
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [stack.resolve(stack.pool.push.publisherRole.roleName)] },
    });
    const statements = Object.values(policies).flatMap(
      (p) =>
        (p as { Properties: { PolicyDocument: { Statement: Array<Record<string, unknown>> } } }).Properties
          .PolicyDocument.Statement,
    );
    expect(statements.map((s) => [[s.Action].flat().sort(), JSON.stringify(s.Resource)])).toEqual([
      [
        ['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:PutObject'],
        JSON.stringify(stack.resolve(stack.pool.push.bucket.arnForObjects('live/*'))),
      ],
      [['s3:ListBucket'], JSON.stringify(stack.resolve(stack.pool.push.bucket.bucketArn))],
    ]);
  });

  it('outputs the publisher role', () => {
    template.hasOutput('PushPublisherRoleArn', {
      Value: stack.resolve(stack.pool.push.publisherRole.roleArn),
    });
  });

  it('gives the fan-out the object size limit', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ PUSH_MAX_OBJECT_BYTES: String(1024 ** 3) }) },
    });
  });
});
