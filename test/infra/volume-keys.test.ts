import { Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { SubnetType, Vpc } from 'aws-cdk-lib/aws-ec2';
import { type CfnKey, Key } from 'aws-cdk-lib/aws-kms';
import { beforeAll, describe, expect, it } from 'vitest';
import { readAppConfig } from '../../lib/config.js';
import { VolsdPool } from '../../lib/volsd-pool.js';
import { VolsdStack } from '../../lib/volsd-stack.js';
import { autoScalingKeyPolicyJson, keyPolicyWarningId } from '../../lib/volume-key.js';
import { actionsOf, allStatements, testApp } from './helpers.js';

const account = '123456789012';
const region = 'eu-west-1';
const volumeKeyArn = `arn:aws:kms:${region}:${account}:key/11111111-2222-3333-4444-555555555555`;
const defaultKeyArn = `arn:aws:kms:${region}:${account}:key/99999999-8888-7777-6666-555555555555`;
const serviceLinkedRole = `arn:aws:iam::${account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`;

/** The app's path (context -> readAppConfig -> VolsdStack) in a pinned account and Region. */
function synthApp(context: Record<string, unknown>): { stack: VolsdStack; template: Template } {
  const app = testApp({ 'volsd:account': account, 'volsd:region': region, ...context });
  const { stackName, stackProps } = readAppConfig(app.node);
  const stack = new VolsdStack(app, stackName, stackProps);
  return { stack, template: Template.fromStack(stack) };
}

/** A template value with `Fn::Join` done and the partition filled in (`aws`), as CloudFormation would. */
function rendered(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rendered);
  if (value === null || typeof value !== 'object') return value;
  const node = value as Record<string, unknown>;
  if (node.Ref === 'AWS::Partition') return 'aws';
  if (Array.isArray(node['Fn::Join'])) {
    const [delimiter, parts] = node['Fn::Join'] as [string, unknown[]];
    return parts.map(rendered).join(delimiter);
  }
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, rendered(v)]));
}

/** The documented statements as CDK writes them (actions sorted). */
const documentedStatements = autoScalingKeyPolicyJson(serviceLinkedRole).map((statement) => ({
  ...statement,
  Action: Array.isArray(statement.Action) ? [...statement.Action].sort() : statement.Action,
}));

/** Every Allow statement of the stack's IAM policies that allows `action`. */
function allowing(template: Template, action: string) {
  return allStatements(template)
    .map(({ statement }) => statement)
    .filter((s) => actionsOf(s).includes(action));
}

describe('a volume key given by ARN (imported)', () => {
  let stack: VolsdStack;
  let template: Template;
  beforeAll(() => {
    ({ stack, template } = synthApp({ 'volsd:volumeKmsKeyArn': volumeKeyArn }));
  });

  it("encrypts the sync workers' root volumes with it", () => {
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: {
        BlockDeviceMappings: [
          Match.objectLike({ Ebs: Match.objectLike({ Encrypted: true, KmsKeyId: volumeKeyArn }) }),
        ],
      },
    });
  });

  it("warns at synth that the key policy must allow Auto Scaling's service-linked role", () => {
    const warnings = Annotations.fromStack(stack).findWarning(
      '/Volsd-web/Pool/SyncWorkers',
      Match.stringLikeRegexp(`${keyPolicyWarningId}.*`),
    );
    expect(warnings).toHaveLength(1);
    const message = String(warnings[0]?.entry.data);
    expect(message).toContain(volumeKeyArn);
    expect(message).toContain(JSON.stringify(autoScalingKeyPolicyJson(serviceLinkedRole)));
  });

  it('outputs the two statements AWS documents, for the service-linked role of this account', () => {
    const outputs = template.findOutputs('VolumeKeyPolicyStatements');
    const value = rendered(outputs.VolumeKeyPolicyStatements?.Value) as string;
    expect(JSON.parse(value)).toEqual([
      {
        Sid: 'AllowAutoScalingServiceLinkedRoleUseOfTheKey',
        Effect: 'Allow',
        Principal: { AWS: serviceLinkedRole },
        Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:DescribeKey'],
        Resource: '*',
      },
      {
        Sid: 'AllowAutoScalingServiceLinkedRoleAttachmentOfPersistentResources',
        Effect: 'Allow',
        Principal: { AWS: serviceLinkedRole },
        Action: 'kms:CreateGrant',
        Resource: '*',
        Condition: { Bool: { 'kms:GrantIsForAWSResource': true } },
      },
    ]);
  });

  it('lets the workflow functions create grants on it only for AWS resources, through EC2 here', () => {
    const grants = allowing(template, 'kms:CreateGrant');
    expect(grants.length).toBeGreaterThan(0);
    for (const grant of grants) {
      expect(grant.Resource).toEqual(volumeKeyArn);
      expect(grant.Condition).toEqual({
        StringEquals: { 'kms:ViaService': `ec2.${region}.amazonaws.com` },
        Bool: { 'kms:GrantIsForAWSResource': 'true' },
      });
    }
  });
});

describe("the account's default EBS key, customer managed (volsd:accountDefaultEbsKeyArn)", () => {
  let stack: VolsdStack;
  let template: Template;
  beforeAll(() => {
    ({ stack, template } = synthApp({ 'volsd:accountDefaultEbsKeyArn': defaultKeyArn }));
  });

  it('lets the workflow functions use it the way the EBS User Guide lists, only through EC2 here', () => {
    const uses = allowing(template, 'kms:GenerateDataKeyWithoutPlaintext');
    expect(uses.length).toBeGreaterThan(0);
    for (const use of uses) {
      expect(use.Resource).toEqual(defaultKeyArn);
      expect(actionsOf(use)).toEqual(
        expect.arrayContaining(['kms:Decrypt', 'kms:DescribeKey', 'kms:ReEncryptFrom', 'kms:ReEncryptTo']),
      );
      expect(use.Condition).toEqual({ StringEquals: { 'kms:ViaService': `ec2.${region}.amazonaws.com` } });
    }
  });

  it('lets them create grants on it only for AWS resources', () => {
    const grants = allowing(template, 'kms:CreateGrant');
    expect(grants.length).toBeGreaterThan(0);
    for (const grant of grants) {
      expect(grant.Resource).toEqual(defaultKeyArn);
      expect(grant.Condition?.Bool).toEqual({ 'kms:GrantIsForAWSResource': 'true' });
    }
  });

  it('leaves the root volumes on the default key (no KmsKeyId) and still names the key policy statements', () => {
    const [launchTemplate] = Object.values(template.findResources('AWS::EC2::LaunchTemplate'));
    expect(JSON.stringify(launchTemplate)).not.toContain('KmsKeyId');
    expect(Object.keys(template.findOutputs('VolumeKeyPolicyStatements'))).toEqual([
      'VolumeKeyPolicyStatements',
    ]);
    expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp(defaultKeyArn))).toHaveLength(
      1,
    );
  });
});

describe('no customer managed key (aws/ebs)', () => {
  let stack: VolsdStack;
  let template: Template;
  beforeAll(() => {
    ({ stack, template } = synthApp({}));
  });

  it('gives the functions no KMS permission for EBS', () => {
    expect(allowing(template, 'kms:CreateGrant')).toEqual([]);
  });

  it('neither warns about nor outputs key policy statements', () => {
    expect(template.findOutputs('VolumeKeyPolicyStatements')).toEqual({});
    expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp(keyPolicyWarningId))).toEqual(
      [],
    );
  });
});

describe('a volume key of the same app', () => {
  let stack: Stack;
  let pool: VolsdPool;
  let volumeKey: Key;
  let template: Template;
  beforeAll(() => {
    stack = new Stack(testApp(), 'OwnKey', { env: { account, region } });
    volumeKey = new Key(stack, 'VolumeKey', { enableKeyRotation: true });
    const vpc = new Vpc(stack, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'private', subnetType: SubnetType.PRIVATE_ISOLATED }],
    });
    pool = new VolsdPool(stack, 'Pool', {
      poolName: 'web',
      vpc,
      volume: { kmsKey: volumeKey },
    });
    template = Template.fromStack(stack);
  });

  it('gets the Auto Scaling statements in its own key policy, so the workers launch', () => {
    const key =
      template.findResources('AWS::KMS::Key')[stack.getLogicalId(volumeKey.node.defaultChild as CfnKey)];
    const statements = rendered(key?.Properties.KeyPolicy.Statement) as unknown[];
    expect(statements).toEqual(expect.arrayContaining(documentedStatements));
  });

  it('leaves nothing for the operator to add', () => {
    expect(pool.workers.missingKeyPolicyStatements).toEqual([]);
    expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp(keyPolicyWarningId))).toEqual(
      [],
    );
  });
});

describe('key ARNs in the context', () => {
  it.each(['volsd:volumeKmsKeyArn', 'volsd:accountDefaultEbsKeyArn'])(
    '%s refuses an alias ARN',
    (contextKey) => {
      const app = testApp({ [contextKey]: `arn:aws:kms:${region}:${account}:alias/aws/ebs` });
      expect(() => readAppConfig(app.node)).toThrow(/must be a key ARN/);
    },
  );
});
