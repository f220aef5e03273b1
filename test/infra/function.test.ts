import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AttributeType, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { Key } from 'aws-cdk-lib/aws-kms';
import type { Asset } from 'aws-cdk-lib/aws-s3-assets';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeStatements } from '../../lib/permissions.js';
import { VolsdFunction } from '../../lib/volsd-function.js';
import { allStatements, type NagFinding, nagFindings, testApp } from './helpers.js';

let stack: Stack;
let fn: VolsdFunction;
let table: Table;
let template: Template;
let findings: NagFinding[];

beforeAll(() => {
  stack = new Stack(testApp({}, { bundling: true }), 'FunctionFixture');
  table = new Table(stack, 'Table', { partitionKey: { name: 'pk', type: AttributeType.STRING } });
  const queue = new Queue(stack, 'Queue', { encryption: QueueEncryption.SQS_MANAGED, enforceSSL: true });
  fn = new VolsdFunction(stack, 'Hello', { entry: 'test/infra/fixtures/hello.ts', serviceName: 'hello' })
    .bindTable(table, 'TABLE_NAME', 'read')
    .bindQueue(queue, 'QUEUE_URL')
    .addToRolePolicy(...describeStatements(['ec2:DescribeVolumes']));
  template = Template.fromStack(stack);
  findings = nagFindings(stack).filter((f) => f.path.startsWith('FunctionFixture/Hello'));
});

describe('VolsdFunction', () => {
  it('runs Node.js 22 on ARM64 with active tracing', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      TracingConfig: { Mode: 'Active' },
      Timeout: 30,
      MemorySize: 256,
    });
  });

  it('runs the ESM bundle with source maps', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.handler',
      Environment: { Variables: Match.objectLike({ NODE_OPTIONS: '--enable-source-maps' }) },
    });
    const asset = fn.function.node.findChild('Code') as Asset;
    // The asset path is relative to the cloud assembly directory.
    const dir = join((stack.node.root as App).outdir, asset.assetPath);
    expect(readFileSync(join(dir, 'index.mjs'), 'utf8')).toMatch(/export\s*\{/);
    expect(existsSync(join(dir, 'index.mjs.map'))).toBe(true);
  });

  it('logs to its own log group with a retention', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      LoggingConfig: { LogGroup: { Ref: Match.stringLikeRegexp('HelloLogs') } },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  it('sets the Powertools service name and metrics namespace', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          POWERTOOLS_SERVICE_NAME: 'hello',
          POWERTOOLS_METRICS_NAMESPACE: 'Volsd',
        }),
      },
    });
  });

  it('binds a table: read grant and TABLE_NAME in one call', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ TABLE_NAME: { Ref: Match.stringLikeRegexp('^Table') } }) },
    });
    const tableGrants = allStatements(template).filter(({ statement }) =>
      JSON.stringify(statement.Resource).includes('Table'),
    );
    const actions = tableGrants.flatMap(({ statement }) => [statement.Action].flat());
    expect(actions).toContain('dynamodb:GetItem');
    expect(actions).not.toContain('dynamodb:PutItem');
  });

  it('binds a table read-write with exactly the item actions, and the key actions of its customer managed key', () => {
    const keyed = new Stack(testApp(), 'KeyedTable');
    const key = new Key(keyed, 'Key', { enableKeyRotation: true });
    const t = new Table(keyed, 'Table', {
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      encryption: TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: key,
    });
    t.addGlobalSecondaryIndex({
      indexName: 'byPool',
      partitionKey: { name: 'p', type: AttributeType.STRING },
    });
    new VolsdFunction(keyed, 'Writer', { entry: 'test/infra/fixtures/hello.ts' }).bindTable(t);
    const statements = allStatements(Template.fromStack(keyed)).map(({ statement }) => statement);
    const tableStatement = statements.find((s) => [s.Action].flat().includes('dynamodb:PutItem'));
    expect([tableStatement?.Action].flat().sort()).toEqual([
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
    ]);
    // The indexes too: the claims query one.
    expect(JSON.stringify(tableStatement?.Resource)).toContain('/index/*');
    const keyActions = statements
      .filter((s) => [s.Action].flat().some((a) => String(a).startsWith('kms:')))
      .flatMap((s) => [s.Action].flat());
    expect(keyActions.sort()).toEqual([
      'kms:Decrypt',
      'kms:DescribeKey',
      'kms:Encrypt',
      'kms:GenerateDataKey*',
      'kms:ReEncrypt*',
    ]);
  });

  it('binds a queue: send grant and QUEUE_URL in one call', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ QUEUE_URL: { Ref: Match.stringLikeRegexp('^Queue') } }) },
    });
    const actions = allStatements(template).flatMap(({ statement }) => [statement.Action].flat());
    expect(actions).toContain('sqs:SendMessage');
  });

  it('has no AWS managed policy on its role', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: Match.objectLike({
        Statement: [Match.objectLike({ Principal: { Service: 'lambda.amazonaws.com' } })],
      }),
      ManagedPolicyArns: Match.absent(),
    });
  });

  it('refuses to bind one environment variable to two values', () => {
    const other = new Table(stack, 'Other', { partitionKey: { name: 'pk', type: AttributeType.STRING } });
    expect(() => fn.bindTable(other, 'TABLE_NAME')).toThrow(/TABLE_NAME is already bound/);
  });

  it('leaves cdk-nag nothing to report', () => {
    expect(findings).toEqual([]);
  });
});
