import type { CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { readAppConfig } from '../../lib/config.js';
import type { ResolvedStatement } from '../../lib/nag.js';
import { VolsdFunction } from '../../lib/volsd-function.js';
import { VolsdStack } from '../../lib/volsd-stack.js';
import { callsOf } from './code-calls.js';
import { actionsOf, allStatements, testApp } from './helpers.js';

/*
 * Every Volsd function's role against the AWS calls of its own bundle (test/infra/code-calls.ts), in
 * each configuration that changes a role. The sandbox runs the real handlers without their roles, so
 * this is where a call the role does not allow (AccessDenied on the first real deploy) or a grant no
 * code uses (a wider blast radius for nothing) shows. Checked for the APIs Volsd's code calls itself;
 * KMS (used by EC2 and DynamoDB on the caller's behalf), logs and X-Ray are not calls of the code.
 */

const account = '123456789012';
const region = 'eu-west-1';
const keyArn = `arn:aws:kms:${region}:${account}:key/11111111-2222-3333-4444-555555555555`;

const configurations: Record<string, Record<string, unknown>> = {
  'served groups, direct creation (the defaults)': { 'volsd:autoScalingGroupNames': 'web-a,web-b' },
  'no direct creation, recycle, a volume key': {
    'volsd:autoScalingGroupNames': 'web-a',
    'volsd:directCreate': false,
    'volsd:releasePolicy': 'recycle',
    'volsd:volumeKmsKeyArn': keyArn,
  },
  'no served group (volsd-client hosts only), adaptive sizing': {
    'volsd:adaptiveMinPerAz': 2,
    'volsd:adaptiveMaxPerAz': 10,
    'volsd:adaptiveBudgetDollarsPerMonth': 100,
    'volsd:adaptiveLookbackDays': 7,
  },
};

/** The services whose calls are the code's own. */
const checked = /^(ec2|autoscaling|ssm|states|dynamodb|s3|sqs|sns|lambda):/;

/** What Lambda's event source mapping does with the function's role when it consumes a queue. */
const queueConsumer = [
  'sqs:ReceiveMessage',
  'sqs:DeleteMessage',
  'sqs:ChangeMessageVisibility',
  'sqs:GetQueueAttributes',
  'sqs:GetQueueUrl',
];

/** The item actions of the table; the repository class is bundled whole wherever it is used. */
const tableItems = /^dynamodb:(GetItem|Query|PutItem|UpdateItem|DeleteItem)$/;

/**
 * Functions granted single item actions by hand (by partition key, `dynamodb:LeadingKeys`, or GetItem
 * only) rather than the table bound: the host API, the boot unit's events and host functions. Their
 * bundles name every item action (the repository class), so only the other direction holds here: each
 * action granted is one of their calls. What they may touch is pinned by test/infra/boot-unit.test.ts
 * and test/infra/permissions.test.ts.
 */
const itemsByHand = /\/(HostApi\/Function|BootUnit\/EventsFunction|BootUnit\/HostFunction)$/;

/**
 * Calls in a bundle that the function never makes, by function path suffix, with why: the bundle keeps
 * what tree shaking cannot drop. Each must still be in the bundle (a stale entry fails).
 */
const neverCalled: Array<{
  fn: RegExp;
  actions: RegExp;
  when?: (ctx: Record<string, unknown>) => boolean;
  why: string;
}> = [
  {
    fn: /BootUnit\/EventsFunction$/,
    actions:
      /^(ec2:CreateVolume|ec2:ModifyInstanceAttribute|ec2:DescribeVolumeStatus|ssm:SendCommand|ssm:GetCommandInvocation|autoscaling:CompleteLifecycleAction|autoscaling:RecordLifecycleActionHeartbeat|states:StartExecution)$/,
    why: "it bundles the acquire's step table (lambdas/acquire/steps.ts, one object) but runs only chainSteps: the detach from the worker and the attach",
  },
  {
    fn: /Workflows\/AcquireFunction$/,
    actions: /^ec2:CreateVolume$/,
    when: (ctx) => ctx['volsd:directCreate'] === false,
    why: 'without direct creation (DIRECT_CREATE false) the acquire waits for the replenish instead of creating',
  },
  {
    fn: /Workflows\/(AcquireFunction|ReleaseFunction|ReconcileFunction)$/,
    actions: /^autoscaling:(CompleteLifecycleAction|RecordLifecycleActionHeartbeat)$/,
    when: (ctx) => !ctx['volsd:autoScalingGroupNames'],
    why: 'with no served group there is no lifecycle action: volsd-client hosts acquire and release without one',
  },
];

/** Whether `granted` (an IAM action, possibly with `*`) covers `action`. */
function covers(granted: string, action: string): boolean {
  if (granted === '*') return true;
  const pattern = new RegExp(
    `^${granted
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
    'i',
  );
  return pattern.test(action);
}

interface Subject {
  path: string;
  calls: ReadonlySet<string>;
  statements: ResolvedStatement[];
  consumesQueue: boolean;
  /** Grants single item actions of the table by hand instead of binding it ({@link itemsByHand}). */
  itemsByHand: boolean;
}

function subjectsOf(context: Record<string, unknown>): Subject[] {
  const app = testApp({ 'volsd:account': account, 'volsd:region': region, ...context });
  const { stackName, stackProps } = readAppConfig(app.node);
  const stack = new VolsdStack(app, stackName, stackProps);
  const resources = Template.fromStack(stack).toJSON().Resources as Record<
    string,
    { Type: string; Properties: Record<string, unknown> }
  >;
  const statements = allStatements(Template.fromJSON({ Resources: resources }));
  const logicalId = (c: { node: { defaultChild?: unknown } }) =>
    stack.getLogicalId(c.node.defaultChild as CfnElement);
  return stack.node
    .findAll()
    .filter((c): c is VolsdFunction => c instanceof VolsdFunction)
    .map((fn) => {
      const role = logicalId(fn.role);
      const mine = statements
        .filter(({ owner }) => {
          const roles = resources[owner]?.Properties.Roles as Array<{ Ref?: string }> | undefined;
          return roles?.some((r) => r.Ref === role) ?? false;
        })
        .map(({ statement }) => statement);
      const functionId = logicalId(fn.function);
      return {
        path: fn.node.path,
        calls: callsOf(fn.entry, fn.handlerName),
        statements: mine,
        consumesQueue: Object.values(resources).some(
          (r) =>
            r.Type === 'AWS::Lambda::EventSourceMapping' &&
            (r.Properties.FunctionName as { Ref?: string } | undefined)?.Ref === functionId,
        ),
        itemsByHand: itemsByHand.test(fn.node.path),
      };
    });
}

describe.each(Object.entries(configurations))('every role against its code: %s', (_name, context) => {
  let subjects: Subject[];
  beforeAll(() => {
    subjects = subjectsOf(context);
  });

  it('finds the functions and their calls', () => {
    // Guards the scan itself: a bundle read wrong would make every check below pass.
    expect(subjects.length).toBeGreaterThanOrEqual(12);
    const acquire = subjects.find((s) => s.path.endsWith('Workflows/AcquireFunction'));
    expect([...(acquire?.calls ?? [])]).toEqual(
      expect.arrayContaining([
        'ec2:AttachVolume',
        'ssm:SendCommand',
        'dynamodb:UpdateItem',
        'states:SendTaskSuccess',
      ]),
    );
  });

  it('allows every call the code makes', () => {
    const missing: string[] = [];
    for (const s of subjects) {
      const granted = s.statements.flatMap(actionsOf);
      for (const call of s.calls) {
        if (!checked.test(call) || granted.some((g) => covers(g, call))) continue;
        if (s.itemsByHand && tableItems.test(call)) continue; // the repository class, see itemsByHand
        const excused = neverCalled.some(
          (e) => e.fn.test(s.path) && e.actions.test(call) && (e.when?.(context) ?? true),
        );
        if (!excused) missing.push(`${s.path}: ${call}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('grants nothing the code does not call', () => {
    const unused: string[] = [];
    for (const s of subjects) {
      for (const statement of s.statements) {
        for (const action of actionsOf(statement)) {
          if (!checked.test(action)) continue;
          if ([...s.calls].some((call) => covers(action, call))) continue;
          // Lambda's event source mapping polls the queue with the function's role.
          if (s.consumesQueue && queueConsumer.includes(action)) continue;
          // Tag-on-create: CreateVolume and CreateSnapshot with TagSpecifications need CreateTags, and the
          // statement allows it only as part of that creation.
          if (
            action === 'ec2:CreateTags' &&
            JSON.stringify(statement.Condition ?? {}).includes('ec2:CreateAction')
          )
            continue;
          unused.push(`${s.path}: ${action}`);
        }
      }
    }
    expect(unused).toEqual([]);
  });

  it('grants items by hand to exactly the functions listed, each action one of their calls', () => {
    expect(subjects.filter((x) => x.itemsByHand)).toHaveLength(3);
    for (const s of subjects.filter((x) => x.itemsByHand)) {
      const items = s.statements.flatMap(actionsOf).filter((a) => a.startsWith('dynamodb:'));
      expect(items.length, s.path).toBeGreaterThan(0);
      for (const a of items) expect(s.calls.has(a), `${s.path}: ${a}`).toBe(true);
    }
  });
});

describe('the list of calls a bundle has but the function never makes', () => {
  it('names only calls still in those bundles', () => {
    const subjects = subjectsOf(configurations['no direct creation, recycle, a volume key'] ?? {});
    for (const entry of neverCalled.filter((e) => e.fn.source.includes('EventsFunction'))) {
      const s = subjects.find((x) => entry.fn.test(x.path));
      expect(s, entry.fn.source).toBeDefined();
      const named = entry.actions.source.replace(/^\^\(|\)\$$/g, '').split('|');
      for (const action of named)
        expect(s?.calls.has(action), `${s?.path}: ${action} (${entry.why})`).toBe(true);
    }
  });
});
