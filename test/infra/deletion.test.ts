import type { CfnElement } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { readAppConfig } from '../../lib/config.js';
import { VolsdStack } from '../../lib/volsd-stack.js';
import { type NagFinding, nagFindings, testApp } from './helpers.js';

type Resource = {
  Type: string;
  Properties: Record<string, unknown>;
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
};

function synthApp(context: Record<string, unknown>): { stack: VolsdStack; template: Template } {
  const app = testApp(context);
  const { stackName, stackProps } = readAppConfig(app.node);
  const stack = new VolsdStack(app, stackName, stackProps);
  return { stack, template: Template.fromStack(stack) };
}

/** The table and both buckets (push, access logs) by logical id. */
function dataResources(stack: VolsdStack, template: Template): Record<string, Resource> {
  const ids = [stack.pool.table.table, stack.pool.push.bucket, stack.pool.push.accessLogBucket].map((c) =>
    stack.getLogicalId(c.node.defaultChild as CfnElement),
  );
  const all = template.toJSON().Resources as Record<string, Resource>;
  return Object.fromEntries(ids.map((id) => [id, all[id] as Resource]));
}

describe('retainData true (the default)', () => {
  let stack: VolsdStack;
  let template: Template;
  beforeAll(() => {
    ({ stack, template } = synthApp({}));
  });

  it('keeps the table and both buckets when the stack is deleted or replaces them', () => {
    for (const [id, resource] of Object.entries(dataResources(stack, template))) {
      expect([id, resource.DeletionPolicy, resource.UpdateReplacePolicy]).toEqual([id, 'Retain', 'Retain']);
    }
  });

  it('protects the table from DeleteTable', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', { DeletionProtectionEnabled: true });
  });

  it('never empties a bucket', () => {
    template.resourceCountIs('Custom::S3AutoDeleteObjects', 0);
  });

  it('outputs the tag that finds the volumes and snapshots left behind', () => {
    template.hasOutput('PoolResourcesTag', { Value: 'volsd:pool=web' });
  });
});

describe('retainData false', () => {
  let stack: VolsdStack;
  let template: Template;
  let findings: NagFinding[];
  beforeAll(() => {
    ({ stack, template } = synthApp({ 'volsd:retainData': false }));
    findings = nagFindings(stack);
  });

  it('deletes the table and both buckets with the stack', () => {
    for (const [id, resource] of Object.entries(dataResources(stack, template))) {
      expect([id, resource.DeletionPolicy, resource.UpdateReplacePolicy]).toEqual([id, 'Delete', 'Delete']);
    }
  });

  it('lifts the deletion protection of the table', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', { DeletionProtectionEnabled: false });
  });

  it('empties both buckets first (every version, by CDK custom resource), so CloudFormation can delete them', () => {
    const emptied = Object.values(template.findResources('Custom::S3AutoDeleteObjects')).map((r) =>
      JSON.stringify(r.Properties.BucketName),
    );
    const buckets = [stack.pool.push.bucket, stack.pool.push.accessLogBucket].map((b) =>
      JSON.stringify(stack.resolve(b.bucketName)),
    );
    expect(emptied.sort()).toEqual(buckets.sort());
  });

  it("spares the emptying role from the push bucket's Deny on object writes and deletes", () => {
    const provider = Object.keys(template.findResources('AWS::IAM::Role')).find((id) =>
      id.startsWith('CustomS3AutoDeleteObjectsCustomResourceProviderRole'),
    );
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: {
        Ref: stack.getLogicalId(stack.pool.push.bucket.node.defaultChild as CfnElement),
      },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Sid: 'DenyWritesButNamedWriters',
            Effect: 'Deny',
            Condition: {
              ArnNotLike: { 'aws:PrincipalArn': Match.arrayWith([{ 'Fn::GetAtt': [provider, 'Arn'] }]) },
            },
          }),
        ]),
      },
    });
  });

  it('leaves no cdk-nag finding unacknowledged', () => {
    expect(findings).toEqual([]);
  });
});
