import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AttributeType, Table } from 'aws-cdk-lib/aws-dynamodb';
import {
  type PolicyStatement,
  Role,
  ServicePrincipal,
  PolicyStatement as Statement,
} from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { DefinitionBody, Pass, StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import { hostPolicyActions } from '../../lambdas/hostapi/contract.js';
import { DocumentName } from '../../lambdas/shared/documents.js';
import { ConfigParameters } from '../../lib/config-parameters.js';
import {
  acknowledgeWildcards,
  flattenReference,
  type ResolvedStatement,
  volsdWildcardAcknowledgements,
} from '../../lib/nag.js';
import { ClientPolicies, forbiddenInstanceAttributes, WorkflowPermissions } from '../../lib/permissions.js';
import { actionsOf, allStatements, nagFindings, testApp, unscopedEc2Mutations } from './helpers.js';

const env = { account: '123456789012', region: 'eu-west-1' };
const arn = (service: string, rest: string) => `arn:<AWS::Partition>:${service}:eu-west-1:${rest}`;

let stack: Stack;
let permissions: WorkflowPermissions;

/** `statements` as CloudFormation would hold them, with references flattened (`<AWS::Partition>`). */
function resolved(statements: PolicyStatement[]): Array<ResolvedStatement & { Resource: string[] }> {
  return statements.map((s) => {
    const json = stack.resolve(s.toStatementJson()) as ResolvedStatement;
    return { ...json, Resource: [json.Resource].flat().map(flattenReference) };
  });
}

/** The statements allowing `action`, from `statements`. */
const allowing = (statements: ReturnType<typeof resolved>, action: string) =>
  statements.filter((s) => actionsOf(s).includes(action));

beforeAll(() => {
  stack = new Stack(testApp(), 'Permissions', { env });
  permissions = new WorkflowPermissions({
    scope: stack,
    poolName: 'web',
    documentNames: new Map([
      [DocumentName.Mount, 'Volsd-Mount-web'],
      [DocumentName.Sync, 'Volsd-Sync-web'],
    ]),
    groupNames: ['web-a'],
    volumeKey: new Key(stack, 'VolumeKey', { enableKeyRotation: true }),
  });
});

describe('workflow permissions', () => {
  it("replenish may size only the pool's sync worker groups (pool and worker role tags)", () => {
    const statements = resolved(permissions.forReplenish());
    for (const action of [
      'autoscaling:SetDesiredCapacity',
      'autoscaling:TerminateInstanceInAutoScalingGroup',
    ]) {
      expect(allowing(statements, action)).toEqual([
        expect.objectContaining({
          Condition: {
            StringEquals: {
              'autoscaling:ResourceTag/volsd:pool': 'web',
              'autoscaling:ResourceTag/volsd:role': 'worker',
            },
          },
        }),
      ]);
    }
    // No other workflow sizes groups.
    for (const other of [permissions.forAcquire(), permissions.forRelease(), permissions.forReconcile()]) {
      expect(allowing(resolved(other), 'autoscaling:SetDesiredCapacity')).toEqual([]);
    }
  });

  it('attach and detach need the volume AND the instance tagged with the pool', () => {
    const statements = allowing(resolved(permissions.forAcquire()), 'ec2:AttachVolume');
    expect(statements).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Resource: [arn('ec2', '123456789012:volume/*')],
          Condition: {
            StringEquals: { 'aws:ResourceTag/volsd:pool': 'web', 'aws:ResourceTag/volsd:role': 'volume' },
          },
        }),
        expect.objectContaining({
          Resource: [arn('ec2', '123456789012:instance/*')],
          Condition: { StringEquals: { 'aws:ResourceTag/volsd:pool': 'web' } },
        }),
      ]),
    );
    expect(statements).toHaveLength(2);
  });

  it('create volumes only tagged with the pool and role in the request, from pool snapshots', () => {
    const statements = allowing(resolved(permissions.forReplenish()), 'ec2:CreateVolume');
    expect(statements).toEqual([
      expect.objectContaining({
        Resource: [arn('ec2', '123456789012:volume/*')],
        Condition: {
          StringEquals: { 'aws:RequestTag/volsd:pool': 'web', 'aws:RequestTag/volsd:role': 'volume' },
        },
      }),
      expect.objectContaining({
        Resource: [arn('ec2', ':snapshot/*')],
        Condition: { StringEquals: { 'aws:ResourceTag/volsd:pool': 'web' } },
      }),
    ]);
  });

  it('snapshot only pool volumes into snapshots tagged with the pool', () => {
    const statements = allowing(resolved(permissions.forSnapshot()), 'ec2:CreateSnapshot');
    expect(statements.map((s) => [s.Resource, s.Condition])).toEqual([
      [
        [arn('ec2', '123456789012:volume/*')],
        { StringEquals: { 'aws:ResourceTag/volsd:pool': 'web', 'aws:ResourceTag/volsd:role': 'volume' } },
      ],
      [[arn('ec2', ':snapshot/*')], { StringEquals: { 'aws:RequestTag/volsd:pool': 'web' } }],
    ]);
  });

  it('tag only while creating a volume or a snapshot', () => {
    const statements = allowing(resolved(permissions.all()), 'ec2:CreateTags');
    expect(statements.map((s) => s.Condition?.StringEquals?.['ec2:CreateAction']).sort()).toEqual([
      'CreateSnapshot',
      'CreateVolume',
    ]);
  });

  it('use the volume key only through EC2, and grant it only to AWS resources', () => {
    const [grant] = allowing(resolved(permissions.forReplenish()), 'kms:CreateGrant');
    expect(grant?.Condition).toEqual({
      StringEquals: { 'kms:ViaService': 'ec2.eu-west-1.amazonaws.com' },
      Bool: { 'kms:GrantIsForAWSResource': 'true' },
    });
    for (const statement of resolved(permissions.forReplenish()).filter((s) =>
      actionsOf(s).some((a) => a.startsWith('kms:')),
    )) {
      expect(statement.Condition?.StringEquals?.['kms:ViaService']).toBe('ec2.eu-west-1.amazonaws.com');
    }
  });

  it('send commands only with the pool documents to pool-tagged instances', () => {
    const statements = allowing(resolved(permissions.all()), 'ssm:SendCommand');
    expect(statements).toEqual([
      expect.objectContaining({
        Resource: [
          arn('ssm', '123456789012:document/Volsd-Mount-web'),
          arn('ssm', '123456789012:document/Volsd-Sync-web'),
        ],
      }),
      expect.objectContaining({
        Resource: [arn('ec2', '123456789012:instance/*')],
        Condition: { StringEquals: { 'ssm:resourceTag/volsd:pool': 'web' } },
      }),
    ]);
    expect(statements[0]?.Condition).toBeUndefined();
  });

  it('send each workflow only the documents its steps send (the fan-out: Volsd-Sync)', () => {
    const documents = (statements: PolicyStatement[]) =>
      allowing(resolved(statements), 'ssm:SendCommand').flatMap((s) =>
        s.Resource.filter((r) => r.includes(':document/')),
      );
    expect(documents(permissions.forFanOut())).toEqual([arn('ssm', '123456789012:document/Volsd-Sync-web')]);
    expect(documents(permissions.forRelease())).toEqual([]);
  });

  it('complete lifecycle actions only of the served groups', () => {
    const [statement] = allowing(resolved(permissions.forAcquire()), 'autoscaling:CompleteLifecycleAction');
    expect(statement?.Resource).toEqual([
      arn('autoscaling', '123456789012:autoScalingGroup:*:autoScalingGroupName/web-a'),
    ]);
    expect(actionsOf(statement ?? {})).toEqual([
      'autoscaling:CompleteLifecycleAction',
      'autoscaling:RecordLifecycleActionHeartbeat',
    ]);
  });

  it('let the dispatcher complete only launch actions of the served groups, and no heartbeat', () => {
    const statements = resolved(permissions.forDispatcher());
    expect(statements.map((s) => [actionsOf(s), s.Resource])).toEqual([
      [['autoscaling:DescribeAutoScalingInstances'], ['*']],
      [
        ['autoscaling:CompleteLifecycleAction'],
        [arn('autoscaling', '123456789012:autoScalingGroup:*:autoScalingGroupName/web-a')],
      ],
    ]);
  });

  it('modify instance attributes only on pool instances that are not sync workers', () => {
    const statements = allowing(resolved(permissions.forAcquire()), 'ec2:ModifyInstanceAttribute');
    const allows = statements.filter((s) => s.Effect === 'Allow');
    expect(allows).toEqual([
      expect.objectContaining({
        Resource: [arn('ec2', '123456789012:instance/*')],
        Condition: {
          StringEquals: { 'aws:ResourceTag/volsd:pool': 'web' },
          StringNotEquals: { 'aws:ResourceTag/volsd:role': 'worker' },
        },
      }),
    ]);
  });

  it('deny a ModifyInstanceAttribute that names any attribute but the block device mapping', () => {
    const statements = allowing(resolved(permissions.forAcquire()), 'ec2:ModifyInstanceAttribute');
    expect(statements).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Resource: [arn('ec2', '123456789012:instance/*')],
        Condition: {
          Null: { 'ec2:Attribute': 'false' },
          StringNotEqualsIgnoreCase: { 'ec2:Attribute': 'blockDeviceMapping' },
        },
      }),
    );
  });

  it.each(forbiddenInstanceAttributes.map((name) => [name]))(
    'deny a ModifyInstanceAttribute that sets %s',
    (name) => {
      const statements = allowing(resolved(permissions.forAcquire()), 'ec2:ModifyInstanceAttribute');
      expect(statements).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Resource: [arn('ec2', '123456789012:instance/*')],
          Condition: { Null: { [`ec2:Attribute/${name}`]: 'false' } },
        }),
      );
    },
  );

  it('never deny the DeleteOnTermination request Volsd sends (no Attribute, no attribute value key)', () => {
    // setDeleteOnTermination sends only InstanceId and BlockDeviceMappings: every Deny must need a key
    // that request does not carry.
    const denies = allowing(resolved(permissions.forAcquire()), 'ec2:ModifyInstanceAttribute').filter(
      (s) => s.Effect === 'Deny',
    );
    expect(denies.length).toBeGreaterThan(0);
    for (const deny of denies) {
      const nullKeys = Object.entries(deny.Condition?.Null ?? {});
      expect(nullKeys.length).toBeGreaterThan(0);
      for (const [key, value] of nullKeys) {
        expect(value).toBe('false');
        expect(key).not.toMatch(/BlockDeviceMapping/i);
      }
    }
  });

  it('give no fast snapshot restore action (removed until it is implemented)', () => {
    const actions = resolved(permissions.all()).flatMap(actionsOf);
    expect(actions.length).toBeGreaterThan(10);
    expect(actions.filter((a) => /FastSnapshotRestore/i.test(a))).toEqual([]);
  });

  it('give each workflow only what its steps do', () => {
    const actions = (statements: PolicyStatement[]) => new Set(resolved(statements).flatMap(actionsOf));
    expect(actions(permissions.forAcquire()).has('ec2:DeleteVolume')).toBe(false);
    expect(actions(permissions.forAcquire()).has('ec2:CreateVolume')).toBe(false);
    expect(actions(permissions.forRelease()).has('ec2:ModifyInstanceAttribute')).toBe(false);
    expect([...actions(permissions.forFanOut())].filter((a) => a.startsWith('ec2:'))).toEqual([]);
    expect(actions(permissions.forReconcile()).has('ec2:CreateVolume')).toBe(false);
  });

  it('lets the acquire create volumes only when direct creation is on', () => {
    const scope = { scope: stack, poolName: 'web', documentNames: new Map(), groupNames: [] };
    const on = resolved(new WorkflowPermissions({ ...scope, directCreate: true }).forAcquire()).flatMap(
      actionsOf,
    );
    const off = resolved(new WorkflowPermissions({ ...scope, directCreate: false }).forAcquire()).flatMap(
      actionsOf,
    );
    expect(on).toContain('ec2:CreateVolume');
    expect(off).not.toContain('ec2:CreateVolume');
    expect(off).not.toContain('ec2:CreateTags');
  });

  it('grant nothing for lifecycle actions when the pool serves no group', () => {
    const none = new WorkflowPermissions({
      scope: stack,
      poolName: 'web',
      documentNames: new Map(),
      groupNames: [],
    });
    const actions = resolved([...none.all(), ...none.forDispatcher()]).flatMap(actionsOf);
    expect(actions).not.toContain('autoscaling:CompleteLifecycleAction');
    expect(actions).not.toContain('ssm:SendCommand');
  });
});

describe('least-privilege checks', () => {
  // A stack holding the workflow statements and one rogue statement, to prove the checks catch it.
  let template: Template;
  let rogueFindings: string[];

  beforeAll(() => {
    const rogueStack = new Stack(testApp(), 'Rogue', { env });
    const rogue = new WorkflowPermissions({
      scope: rogueStack,
      poolName: 'web',
      documentNames: new Map(),
      groupNames: [],
    });
    const role = new Role(rogueStack, 'Role', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
    for (const s of rogue.forRelease()) role.addToPrincipalPolicy(s);
    role.addToPrincipalPolicy(
      new Statement({
        sid: 'Rogue',
        actions: ['ec2:DeleteVolume'],
        resources: [`arn:aws:ec2:eu-west-1:123456789012:volume/*`],
      }),
    );
    acknowledgeWildcards(role, volsdWildcardAcknowledgements);
    rogueFindings = nagFindings(rogueStack).map((f) => f.rule);
    template = Template.fromStack(rogueStack);
  });

  it('the template check finds a mutating EC2 statement without a pool tag condition', () => {
    const found = unscopedEc2Mutations(template).map(({ statement }) => (statement as { Sid?: string }).Sid);
    expect(found).toEqual(['Rogue']);
  });

  it('cdk-nag reports its wildcard: the acknowledgement demands a pool tag condition', () => {
    expect(rogueFindings).toContain(
      'AwsSolutions-IAM5[Resource::arn:aws:ec2:eu-west-1:123456789012:volume/*]',
    );
  });
});

describe('client policies', () => {
  let template: Template;
  let findings: string[];

  beforeAll(() => {
    const clientStack = new Stack(testApp(), 'Clients', { env });
    const table = new Table(clientStack, 'Table', {
      partitionKey: { name: 'pk', type: AttributeType.STRING },
    });
    const config = new ConfigParameters(clientStack, 'Config', { poolName: 'web' });
    config.add('table-name', table.tableName);
    const policies = new ClientPolicies(clientStack, 'ClientPolicies', {
      poolName: 'web',
      table,
      parametersArn: config.parametersArn,
      parameterPathArn: config.pathArn,
      pushBucket: new Bucket(clientStack, 'Push', { enforceSSL: true }),
      pushBucketKey: new Key(clientStack, 'PushKey', { enableKeyRotation: true }),
    });
    const sm = (id: string) =>
      new StateMachine(clientStack, id, {
        definitionBody: DefinitionBody.fromChainable(new Pass(clientStack, `${id}Pass`)),
      });
    const acquire = sm('Acquire');
    policies.allowHostApi(
      LambdaFunction.fromFunctionArn(
        clientStack,
        'HostApi',
        'arn:aws:lambda:eu-west-1:123456789012:function:hostapi',
      ),
    );
    policies.allowAdminWorkflows(acquire, sm('Replenish'));
    template = Template.fromStack(clientStack);
    findings = nagFindings(clientStack)
      .filter((f) => f.path.includes('ClientPolicies'))
      .map((f) => f.rule);
  });

  const policyStatements = (pattern: RegExp) =>
    allStatements(template)
      .filter(({ owner }) => pattern.test(owner))
      .map(({ statement }) => statement);

  it('let instances that mount pool volumes read live/ of the push bucket, and nothing else', () => {
    const instance = policyStatements(/InstancePolicy/);
    expect(instance.map((s) => [actionsOf(s), flattenReference(s.Resource)])).toEqual([
      [['s3:GetObject'], expect.stringMatching(/^<Push[A-Z0-9]+\.Arn>\/live\/\*$/)],
      [['s3:ListBucket'], expect.stringMatching(/^<Push[A-Z0-9]+\.Arn>$/)],
      [['kms:Decrypt'], expect.stringMatching(/^<PushKey[A-Z0-9]+\.Arn>$/)],
    ]);
    expect(instance[1]?.Condition).toEqual({ StringLike: { 's3:prefix': ['live/', 'live/*'] } });
    expect(instance[2]?.Condition).toEqual({ StringLike: { 'kms:ViaService': 's3.*.amazonaws.com' } });
  });

  it('let hosts read the pool configuration and call the host API, and nothing else (the list the sandbox enforces)', () => {
    const host = policyStatements(/HostPolicy/);
    const actions = host.flatMap(actionsOf);
    expect([...actions].sort()).toEqual([...hostPolicyActions].sort());
    const parameters = host.find((s) => actionsOf(s).includes('ssm:GetParameter'));
    expect(JSON.stringify(parameters?.Resource)).toContain(':parameter/volsd/web/*');
  });

  it('let hosts invoke the host API only through its IAM-authenticated URL, never with an event of their own', () => {
    const host = policyStatements(/HostPolicy/);
    const url = host.find((s) => actionsOf(s).includes('lambda:InvokeFunctionUrl'));
    const invoke = host.find((s) => actionsOf(s).includes('lambda:InvokeFunction'));
    expect(url?.Resource).toBe('arn:aws:lambda:eu-west-1:123456789012:function:hostapi');
    expect(url?.Condition).toEqual({ StringEquals: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' } });
    expect(invoke?.Resource).toBe('arn:aws:lambda:eu-west-1:123456789012:function:hostapi');
    expect(invoke?.Condition).toEqual({ Bool: { 'lambda:InvokedViaFunctionUrl': 'true' } });
  });

  it('let admins query the table and its index', () => {
    const read = policyStatements(/AdminPolicy/).find((s) => actionsOf(s).includes('dynamodb:Query'));
    expect(JSON.stringify(read?.Resource)).toContain('/index/*');
    expect(actionsOf(read ?? {}).some((a) => /Put|Update|Delete/.test(a))).toBe(false);
  });

  it('leave cdk-nag nothing to report', () => {
    expect(findings).toEqual([]);
  });
});
