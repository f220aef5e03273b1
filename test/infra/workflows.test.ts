import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { App, CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { Asset } from 'aws-cdk-lib/aws-s3-assets';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ZodTypeAny } from 'zod';
import { configFromEnv, dispatcherEnv } from '../../lambdas/dispatcher/handler.js';
import { fanOutConfigFromEnv, fanOutEnv } from '../../lambdas/fanout/config.js';
import { reconcileConfigShape } from '../../lambdas/reconcile/config.js';
import { loadWorkflowConfig, workflowConfigShape } from '../../lambdas/shared/workflow-config.js';
import { loadSyncAllConfig, syncAllConfigShape } from '../../lambdas/syncall/config.js';
import { readAppConfig } from '../../lib/config.js';
import { flattenReference, type ResolvedStatement } from '../../lib/nag.js';
import { mutatingEc2Actions } from '../../lib/permissions.js';
import { commandStatusDetailType } from '../../lib/push-fanout.js';
import type { VolsdFunction } from '../../lib/volsd-function.js';
import { VolsdStack } from '../../lib/volsd-stack.js';
import type { Workflow } from '../../lib/workflows.js';
import { actionsOf, allStatements, testApp } from './helpers.js';

const require = createRequire(import.meta.url);
// asl-validator ships no types.
const aslValidator = require('asl-validator') as (
  definition: unknown,
  options?: { checkPaths?: boolean; checkArn?: boolean },
) => { isValid: boolean; errorsText: (separator?: string) => string };

type Resource = { Type: string; Properties: Record<string, unknown>; DependsOn?: string[] };
type Env = Record<string, unknown>;
type State = { Type: string; Retry?: unknown[]; Catch?: unknown[]; States?: Record<string, State> } & Record<
  string,
  unknown
>;

let app: App;
let stack: VolsdStack;
let resources: Record<string, Resource>;
let workflows: Workflow[];

const logicalId = (construct: IConstruct): string =>
  stack.getLogicalId(construct.node.defaultChild as CfnElement);
const resourceOf = (construct: IConstruct): Resource => {
  const resource = resources[logicalId(construct)];
  if (!resource) throw new Error(`no resource for ${construct.node.path}`);
  return resource;
};
const envOf = (fn: VolsdFunction): Env =>
  (resourceOf(fn.function).Properties.Environment as { Variables: Env }).Variables;
/** Allow statements of the policies attached to `role` (its default policy). */
const statementsOf = (fn: VolsdFunction): ResolvedStatement[] => {
  const role = logicalId(fn.role);
  return allStatements(Template.fromJSON({ Resources: resources }))
    .filter(({ owner }) => {
      const roles = resources[owner]?.Properties.Roles as Array<{ Ref: string }> | undefined;
      return roles?.some((r) => r.Ref === role) ?? false;
    })
    .map(({ statement }) => statement);
};
const ref = (construct: IConstruct) => ({ Ref: logicalId(construct) });

/** Plausible values for what is a token at synth, so the handlers' own config parsers can run. */
function standIn(key: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (key.endsWith('_ARN')) return `arn:aws:states:us-east-1:123456789012:stateMachine:${key.toLowerCase()}`;
  const known: Record<string, string> = {
    TABLE_NAME: 'Volsd-web-PoolVolumeTable-1ABC',
    PUSH_BUCKET: 'volsd-web-poolpushbucket-1abc',
    EXPECTED_ACCOUNT_ID: '123456789012',
  };
  const standIn = known[key];
  if (!standIn) throw new Error(`${key} is a token the test has no stand-in for: ${JSON.stringify(value)}`);
  return standIn;
}
/**
 * A CloudFormation string value (a literal or an Fn::Join) as text, each intrinsic in it replaced by
 * `@<n>`; the intrinsics in `tokens`.
 */
function render(value: unknown): { text: string; tokens: unknown[] } {
  const tokens: unknown[] = [];
  const walk = (v: unknown): string => {
    if (typeof v === 'string') return v;
    const join = (v as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
    if (join) return join[1].map(walk).join(join[0]);
    tokens.push(v);
    return `@${tokens.length - 1}`;
  };
  return { text: walk(value), tokens };
}

/** The source of a workflow's own steps: every .ts file of lambdas/<name>/. */
function codeOf(name: string): string {
  const dir = fileURLToPath(new URL(`../../lambdas/${name}/`, import.meta.url));
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n');
}

const standInEnv = (env: Env): Record<string, string> =>
  Object.fromEntries(Object.entries(env).map(([key, value]) => [key, standIn(key, value)]));

/** The definition as deployed: the asset file of the state machine. */
function definitionOf(workflow: Workflow): { text: string; substitutions: Record<string, unknown> } {
  const asset = workflow.stateMachine.node.findChild('DefinitionBody') as Asset;
  const text = readFileSync(join(app.outdir, asset.assetPath), 'utf8');
  const substitutions = resourceOf(workflow.stateMachine).Properties.DefinitionSubstitutions as Record<
    string,
    unknown
  >;
  return { text, substitutions };
}

function tasksOf(states: Record<string, State>): Array<[string, State]> {
  return Object.entries(states).flatMap(([name, state]) => {
    const nested = [
      ...((state.Branches as Array<{ States: Record<string, State> }> | undefined) ?? []),
      ...['Iterator', 'ItemProcessor'].flatMap((k) =>
        state[k] ? [state[k] as { States: Record<string, State> }] : [],
      ),
    ].flatMap((b) => tasksOf(b.States));
    return [...(state.Type === 'Task' ? [[name, state] as [string, State]] : []), ...nested];
  });
}

/** The configuration a workflow's function reads: the shared one, and reconcile's and sync-all's own. */
const shapeOf = (workflow: Workflow): Record<string, ZodTypeAny> => ({
  ...workflowConfigShape,
  ...(workflow.name === 'reconcile' ? reconcileConfigShape : {}),
  ...(workflow.name === 'syncall' ? syncAllConfigShape : {}),
});

const infrastructureEnv = ['POWERTOOLS_SERVICE_NAME', 'POWERTOOLS_METRICS_NAMESPACE', 'NODE_OPTIONS'];
const requiredKeys = (shape: Record<string, ZodTypeAny>) =>
  Object.entries(shape)
    .filter(([, schema]) => !schema.isOptional())
    .map(([key]) => key);

beforeAll(() => {
  app = testApp({ 'volsd:autoScalingGroupNames': 'web-a,web-b' });
  const { stackName, stackProps } = readAppConfig(app.node);
  stack = new VolsdStack(app, stackName, stackProps);
  resources = Template.fromStack(stack).toJSON().Resources as Record<string, Resource>;
  const w = stack.pool.workflows;
  workflows = [w.acquire, w.release, w.replenish, w.snapshot, w.reconcile, w.syncAll];
});

describe('state machines', () => {
  it('are Standard, traced, named after the pool, and log every transition without execution data', () => {
    for (const workflow of workflows) {
      expect(resourceOf(workflow.stateMachine).Properties).toMatchObject({
        StateMachineName: `volsd-web-${workflow.name}`,
        StateMachineType: 'STANDARD',
        TracingConfiguration: { Enabled: true },
        LoggingConfiguration: {
          Level: 'ALL',
          IncludeExecutionData: false,
          Destinations: [
            {
              CloudWatchLogsLogGroup: {
                LogGroupArn: { 'Fn::GetAtt': [logicalId(workflow.logGroup), 'Arn'] },
              },
            },
          ],
        },
      });
    }
  });

  it('log to a vended-logs group with a retention, unique per stack instance', () => {
    for (const workflow of workflows) {
      const props = resourceOf(workflow.logGroup).Properties;
      expect(props.RetentionInDays).toBe(30);
      expect(flattenReference(props.LogGroupName)).toMatch(
        new RegExp(`^/aws/vendedlogs/states/volsd-web-${workflow.name}-.*AWS::StackId`),
      );
    }
  });

  it('deploy valid ASL', () => {
    for (const workflow of workflows) {
      const { text, substitutions } = definitionOf(workflow);
      let deployed = text;
      for (const key of Object.keys(substitutions)) {
        deployed = deployed.replaceAll(`\${${key}}`, `arn:aws:lambda:us-east-1:123456789012:function:${key}`);
      }
      const result = aslValidator(JSON.parse(deployed));
      expect(result.isValid, `${workflow.name}: ${result.errorsText('; ')}`).toBe(true);
    }
  });

  it('have a Retry and a Catch on every Task', () => {
    for (const workflow of workflows) {
      const definition = JSON.parse(definitionOf(workflow).text) as { States: Record<string, State> };
      const tasks = tasksOf(definition.States);
      // Sync-all is the shortest: send, then wait.
      expect(tasks.length).toBeGreaterThanOrEqual(2);
      for (const [name, task] of tasks) {
        expect(task.Retry?.length, `${workflow.name}.${name} Retry`).toBeGreaterThan(0);
        expect(task.Catch?.length, `${workflow.name}.${name} Catch`).toBeGreaterThan(0);
      }
    }
  });

  it('have a substitution for every placeholder, and a placeholder for every substitution', () => {
    for (const workflow of workflows) {
      const { text, substitutions } = definitionOf(workflow);
      const placeholders = new Set([...text.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]));
      expect([...placeholders].sort(), workflow.name).toEqual(Object.keys(substitutions).sort());
    }
  });

  it("run every Task on the workflow's own function", () => {
    for (const workflow of workflows) {
      const { text, substitutions } = definitionOf(workflow);
      expect(Object.values(substitutions)).toEqual([
        { 'Fn::GetAtt': [logicalId(workflow.function.function), 'Arn'] },
      ]);
      const definition = JSON.parse(text) as { States: Record<string, State> };
      const placeholder = `\${${Object.keys(substitutions)[0]}}`;
      for (const [, task] of tasksOf(definition.States)) {
        // A callback Task names the function in its Parameters and waits for its token.
        const callback = task.Resource === 'arn:aws:states:::lambda:invoke.waitForTaskToken';
        const target = callback
          ? (task as { Parameters?: { FunctionName?: string } }).Parameters?.FunctionName
          : task.Resource;
        expect(target).toBe(placeholder);
      }
    }
  });

  it('may invoke their own function and nothing else, and no other version of it', () => {
    for (const workflow of workflows) {
      const role = (resourceOf(workflow.stateMachine).Properties.RoleArn as { 'Fn::GetAtt': [string] })[
        'Fn::GetAtt'
      ][0];
      const invokes = allStatements(Template.fromJSON({ Resources: resources })).filter(
        ({ owner, statement }) =>
          (resources[owner]?.Properties.Roles as Array<{ Ref: string }> | undefined)?.some(
            (r) => r.Ref === role,
          ) && actionsOf(statement).some((a) => a.startsWith('lambda:')),
      );
      expect(invokes.map(({ statement }) => [statement.Action, statement.Resource])).toEqual([
        ['lambda:InvokeFunction', { 'Fn::GetAtt': [logicalId(workflow.function.function), 'Arn'] }],
      ]);
    }
  });
});

describe('workflow functions', () => {
  it('resume task tokens of their own state machine when it has callback Tasks (acquire), and no others', () => {
    const answering = workflows.map((workflow) => {
      const answers = statementsOf(workflow.function).filter((s) =>
        actionsOf(s).some((a) => a.startsWith('states:SendTask')),
      );
      // What the code answers with (lambdas/shared/task-waits.ts): resumeTask only, never failTask or
      // heartbeatTask, so SendTaskSuccess only.
      const code = codeOf(workflow.name);
      expect(/\b(?:failTask|heartbeatTask)\(/.test(code), workflow.name).toBe(false);
      for (const s of answers) expect(actionsOf(s)).toEqual(['states:SendTaskSuccess']);
      const resources = answers.flatMap((s) => [s.Resource].flat().map((r) => render(r).text));
      return [workflow.name, definitionOf(workflow).text.includes('.waitForTaskToken'), resources] as const;
    });
    expect(answering.filter(([, callbacks]) => callbacks).map(([name]) => name)).toEqual(['acquire']);
    for (const [name, callbacks, resources] of answering) {
      const poolName = stack.pool.settings.poolName;
      expect(resources).toEqual(
        callbacks ? [`arn:@0:states:@1:@2:stateMachine:volsd-${poolName}-${name}`] : [],
      );
    }
  });

  it('get every variable the workflow configuration requires', () => {
    expect(requiredKeys(workflowConfigShape)).toEqual(
      expect.arrayContaining(['TABLE_NAME', 'POOL_NAME', 'PUSH_BUCKET']),
    );
    for (const workflow of workflows) {
      const required = requiredKeys(shapeOf(workflow));
      expect(Object.keys(envOf(workflow.function)), workflow.name).toEqual(expect.arrayContaining(required));
    }
  });

  it('give reconcile the acquire state machine, the served groups and the launch hook', () => {
    const { acquire, reconcile } = stack.pool.workflows;
    expect(envOf(reconcile.function)).toMatchObject({
      ACQUIRE_STATE_MACHINE_ARN: ref(acquire.stateMachine),
      SERVED_GROUPS: 'web-a,web-b',
      LAUNCH_HOOK_NAME: 'volsd-web-launch',
    });
    const lists = statementsOf(reconcile.function).filter((s) =>
      actionsOf(s).includes('states:ListExecutions'),
    );
    expect(lists.map((s) => [actionsOf(s), s.Resource])).toEqual([
      [['states:ListExecutions'], ref(acquire.stateMachine)],
    ]);
  });

  it('get only variables the workflow configuration knows, each valid', () => {
    for (const workflow of workflows) {
      const shape = shapeOf(workflow);
      for (const [key, value] of Object.entries(envOf(workflow.function))) {
        if (infrastructureEnv.includes(key)) continue;
        const schema = shape[key];
        expect(schema, `${workflow.name}: ${key} is unknown to workflowConfigShape`).toBeDefined();
        if (typeof value === 'string') {
          expect(schema?.safeParse(value).success, `${workflow.name}: ${key}=${value}`).toBe(true);
        }
      }
    }
  });

  it('load their configuration from the synthesized environment', () => {
    for (const workflow of workflows) {
      const config = loadWorkflowConfig(standInEnv(envOf(workflow.function)));
      expect(config).toMatchObject({
        POOL_NAME: 'web',
        MOUNT_PATH: '/srv/www',
        HEARTBEAT_TIMEOUT: 600,
        VOLUME_SIZE_GIB: 20,
        MOUNT_DOCUMENT: 'Volsd-Mount-web',
        UNMOUNT_DOCUMENT: 'Volsd-Unmount-web',
        SYNC_DOCUMENT: 'Volsd-Sync-web',
        FORMAT_DOCUMENT: 'Volsd-Format-web',
        FREEZE_DOCUMENT: 'Volsd-Freeze-web',
      });
    }
  });

  it('name the volume table and the push bucket', () => {
    for (const workflow of workflows) {
      expect(envOf(workflow.function)).toMatchObject({
        TABLE_NAME: ref(stack.pool.table.table),
        PUSH_BUCKET: ref(stack.pool.push.bucket),
      });
    }
  });

  it("pass the pool's push object size limit to the syncs they send", () => {
    for (const workflow of workflows) {
      expect(envOf(workflow.function).PUSH_MAX_OBJECT_BYTES, workflow.name).toBe(
        String(stack.pool.settings.push.maxObjectBytes),
      );
    }
  });

  it('of acquire, release and reconcile may request a replenish, replenish its own follow-up run, and only they', () => {
    const { acquire, release, replenish, snapshot, reconcile, syncAll } = stack.pool.workflows;
    for (const workflow of [acquire, release, reconcile]) {
      expect(envOf(workflow.function).REPLENISH_STATE_MACHINE_ARN).toEqual(ref(replenish.stateMachine));
      const starts = statementsOf(workflow.function).filter((s) =>
        actionsOf(s).includes('states:StartExecution'),
      );
      expect(starts.map((s) => s.Resource)).toEqual([ref(replenish.stateMachine)]);
    }
    // The follow-up a run starts when a request was noted on its lease (lambdas/replenish `done`): its own
    // state machine, by name (a reference would be a cycle), StartExecution only.
    const followUp = statementsOf(replenish.function).filter((s) =>
      actionsOf(s).some((a) => a.startsWith('states:')),
    );
    expect(followUp.flatMap(actionsOf)).toEqual(['states:StartExecution']);
    const own = `arn:@0:states:@1:@2:stateMachine:volsd-${stack.pool.settings.poolName}-replenish`;
    expect(followUp.map((s) => render(s.Resource).text)).toEqual([own]);
    expect(render(envOf(replenish.function).REPLENISH_STATE_MACHINE_ARN).text).toBe(own);
    expect(codeOf('replenish')).toMatch(/requestReplenish\(/);
    for (const workflow of [snapshot, syncAll]) {
      expect(envOf(workflow.function).REPLENISH_STATE_MACHINE_ARN).toBeUndefined();
      expect(
        statementsOf(workflow.function)
          .flatMap(actionsOf)
          .filter((a) => a.startsWith('states:')),
      ).toEqual([]);
    }
  });

  it('may each call exactly the mutating EC2 actions of their steps', () => {
    const { acquire, release, replenish, snapshot, reconcile, syncAll } = stack.pool.workflows;
    const mutating = (fn: VolsdFunction) =>
      [...new Set(statementsOf(fn).flatMap(actionsOf))]
        .filter((a) => (mutatingEc2Actions as readonly string[]).includes(a))
        .sort();
    // CreateVolume (tagged at creation): direct creation, on by default.
    expect(mutating(acquire.function)).toEqual([
      'ec2:AttachVolume',
      'ec2:CreateTags',
      'ec2:CreateVolume',
      'ec2:DetachVolume',
      'ec2:ModifyInstanceAttribute',
    ]);
    expect(mutating(release.function)).toEqual(['ec2:DeleteVolume', 'ec2:DetachVolume']);
    expect(mutating(replenish.function)).toEqual([
      'ec2:AttachVolume',
      'ec2:CreateTags',
      'ec2:CreateVolume',
      'ec2:DeleteVolume',
      'ec2:DetachVolume',
    ]);
    expect(mutating(snapshot.function)).toEqual([
      'ec2:CreateSnapshot',
      'ec2:CreateTags',
      'ec2:DeleteSnapshot',
    ]);
    expect(mutating(reconcile.function)).toEqual(['ec2:DeleteVolume', 'ec2:DetachVolume']);
    expect(mutating(syncAll.function)).toEqual([]);
    // AttachVolume exactly where the workflow's own code attaches.
    for (const workflow of workflows) {
      const attaches = /\battach(?:Volume|AtFreeDevice)\(/.test(codeOf(workflow.name));
      expect(mutating(workflow.function).includes('ec2:AttachVolume'), workflow.name).toBe(attaches);
    }
  });

  it('may each send exactly the SSM documents their steps send (config.<NAME>_DOCUMENT in their code)', () => {
    const catalogue: Record<string, string> = {
      MOUNT: 'Volsd-Mount',
      UNMOUNT: 'Volsd-Unmount',
      SYNC: 'Volsd-Sync',
      FORMAT: 'Volsd-Format',
      FREEZE: 'Volsd-Freeze',
    };
    const poolName = stack.pool.settings.poolName;
    for (const workflow of workflows) {
      const code = codeOf(workflow.name);
      const sent = new Set(
        [...code.matchAll(/config\.([A-Z]+)_DOCUMENT/g)].map((m) => catalogue[m[1] ?? '']),
      );
      const granted = statementsOf(workflow.function)
        .filter((s) => actionsOf(s).includes('ssm:SendCommand'))
        .flatMap((s) => [s.Resource].flat().map((r) => render(r).text))
        .filter((r) => r.includes(':document/'))
        .map((r) => r.replace(/^.*:document\//, '').replace(new RegExp(`-${poolName}$`), ''));
      expect(new Set(granted), workflow.name).toEqual(sent);
    }
    expect(workflows.map((w) => w.name)).toContain('acquire');
  });

  it("let sync-all send the pool's documents to the pool's instances only, as the fan-out may", () => {
    const { syncAll } = stack.pool.workflows;
    const sends = statementsOf(syncAll.function).filter((s) => actionsOf(s).includes('ssm:SendCommand'));
    const fanOutSends = statementsOf(stack.pool.fanOut.fanOut).filter((s) =>
      actionsOf(s).includes('ssm:SendCommand'),
    );
    expect(sends).toEqual(fanOutSends);
    expect(sends.map((s) => s.Condition ?? null)).toContainEqual({
      StringEquals: { 'ssm:resourceTag/volsd:pool': 'web' },
    });
  });

  it("give sync-all the fan-out's rate control, and load it", () => {
    const env = standInEnv(envOf(stack.pool.workflows.syncAll.function));
    expect(loadSyncAllConfig(env)).toEqual({
      FANOUT_MAX_CONCURRENCY: '25%',
      FANOUT_MAX_ERRORS: '25%',
      FANOUT_DELIVERY_TIMEOUT: 600,
    });
  });

  it('never read the push bucket: only Volsd-Sync on the instances does', () => {
    for (const workflow of workflows) {
      expect(
        statementsOf(workflow.function)
          .flatMap(actionsOf)
          .filter((a) => a.startsWith('s3:')),
      ).toEqual([]);
    }
  });
});

describe('lifecycle dispatcher', () => {
  it('gets every variable its configuration requires, and loads it', () => {
    const dispatcher = stack.pool.workflows.dispatcher;
    if (!dispatcher) throw new Error('no dispatcher');
    const env = envOf(dispatcher);
    // AWS_REGION is set by the Lambda runtime.
    const required = requiredKeys(dispatcherEnv).filter((k) => k !== 'AWS_REGION');
    expect(Object.keys(env)).toEqual(expect.arrayContaining(required));
    expect(configFromEnv({ ...standInEnv(env), AWS_REGION: 'us-east-1' })).toMatchObject({
      pool: 'web',
      servedGroups: ['web-a', 'web-b'],
      verifyInstances: true,
    });
    expect(env).toMatchObject({
      ACQUIRE_STATE_MACHINE_ARN: ref(stack.pool.workflows.acquire.stateMachine),
      RELEASE_STATE_MACHINE_ARN: ref(stack.pool.workflows.release.stateMachine),
      EXPECTED_ACCOUNT_ID: { Ref: 'AWS::AccountId' },
    });
  });

  it('starts consuming only once the pool record exists', () => {
    const record = logicalId(stack.pool.record.resource);
    const mapping = Object.values(resources).find(
      (r) =>
        r.Type === 'AWS::Lambda::EventSourceMapping' &&
        JSON.stringify(r.Properties.EventSourceArn).includes(logicalId(stack.pool.intake.queue)),
    );
    expect(mapping?.DependsOn).toEqual(expect.arrayContaining([record]));
  });

  it('consumes the intake queue ten messages at a time with partial batch responses', () => {
    const mappings = Object.values(resources).filter(
      (r) =>
        r.Type === 'AWS::Lambda::EventSourceMapping' &&
        JSON.stringify(r.Properties.EventSourceArn).includes(logicalId(stack.pool.intake.queue)),
    );
    expect(mappings).toHaveLength(1);
    expect(mappings[0]?.Properties).toMatchObject({
      FunctionName: ref(stack.pool.workflows.dispatcher?.function ?? stack),
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    expect(mappings[0]?.Properties.MaximumBatchingWindowInSeconds).toBeUndefined();
  });

  it('may start acquire and release, and complete lifecycle actions of the served groups only', () => {
    const dispatcher = stack.pool.workflows.dispatcher;
    if (!dispatcher) throw new Error('no dispatcher');
    const statements = statementsOf(dispatcher);
    const starts = statements.filter((s) => actionsOf(s).includes('states:StartExecution'));
    expect(starts.flatMap((s) => [s.Resource].flat())).toEqual([
      ref(stack.pool.workflows.acquire.stateMachine),
      ref(stack.pool.workflows.release.stateMachine),
    ]);
    const complete = statements.filter((s) => actionsOf(s).includes('autoscaling:CompleteLifecycleAction'));
    expect(complete.flatMap((s) => [s.Resource].flat().map(flattenReference))).toEqual([
      expect.stringMatching(/:autoScalingGroup:\*:autoScalingGroupName\/web-a$/),
      expect.stringMatching(/:autoScalingGroup:\*:autoScalingGroupName\/web-b$/),
    ]);
    expect(statements.flatMap(actionsOf).filter((a) => a.startsWith('ec2:'))).toEqual([]);
  });
});

describe('schedules', () => {
  const scheduleRules = () =>
    stack.pool.workflows.replenish.schedules.map((rule) => [logicalId(rule), resourceOf(rule)] as const);

  it('start replenish in each AZ at the configured rate, with its pool, AZ and reason', () => {
    const rules = scheduleRules();
    expect(rules).toHaveLength(3); // one per AZ of the default VPC
    rules.forEach(([, rule], index) => {
      const [target] = rule.Properties.Targets as Array<Record<string, unknown>>;
      expect(rule.Properties.ScheduleExpression).toBe('rate(5 minutes)');
      expect(target?.Arn).toEqual(ref(stack.pool.workflows.replenish.stateMachine));
      const input = render(target?.Input);
      expect(JSON.parse(input.text)).toEqual({ pool: 'web', az: '@0', reason: 'schedule' });
      expect(input.tokens).toEqual([{ 'Fn::Select': [index, { 'Fn::GetAZs': '' }] }]);
    });
  });

  it('retry a failed start, then send it to a DLQ that alarms', () => {
    const dlq = logicalId(stack.pool.workflows.scheduleDeadLetterQueue);
    for (const [, rule] of scheduleRules()) {
      const [target] = rule.Properties.Targets as Array<Record<string, unknown>>;
      expect(target).toMatchObject({
        RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 300 },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [dlq, 'Arn'] } },
      });
    }
    const alarms = Object.values(resources).filter(
      (r) =>
        r.Type === 'AWS::CloudWatch::Alarm' && JSON.stringify(r.Properties.Dimensions ?? []).includes(dlq),
    );
    expect(alarms).toHaveLength(1);
  });

  it('start only after the pool record exists', () => {
    const record = logicalId(stack.pool.record.resource);
    for (const [, rule] of scheduleRules()) expect(rule.DependsOn).toEqual(expect.arrayContaining([record]));
  });
});

describe('pool record', () => {
  const record = () => resourceOf(stack.pool.record.resource);

  it("writes the pool's AZs and idle target at deploy, keeping its content generation", () => {
    const create = render(record().Properties.Create);
    expect(record().Type).toBe('Custom::VolsdPoolRecord');
    expect(JSON.parse(create.text)).toMatchObject({
      service: 'DynamoDB',
      action: 'updateItem',
      parameters: {
        TableName: '@0',
        Key: { pk: { S: 'POOL#web' }, sk: { S: 'POOL' } },
        UpdateExpression: expect.stringContaining('generation = if_not_exists(generation, :zero)'),
        ExpressionAttributeValues: {
          ':pool': { S: 'web' },
          ':azs': { L: [{ S: '@1' }, { S: '@2' }, { S: '@3' }] },
          ':t': { N: '2' },
          ':zero': { N: '0' },
        },
      },
    });
    expect(create.tokens[0]).toEqual(ref(stack.pool.table.table));
    expect(render(record().Properties.Update)).toEqual(create);
  });

  it('may update items of the volume table and do nothing else', () => {
    const policies = Object.values(resources).filter(
      (r) => r.Type === 'AWS::IAM::Policy' && (r.Properties.PolicyName as string).includes('Record'),
    );
    const statements = policies.flatMap(
      (p) => (p.Properties.PolicyDocument as { Statement: ResolvedStatement[] }).Statement,
    );
    expect(statements.map((s) => [s.Action, s.Resource])).toEqual([
      ['dynamodb:UpdateItem', { 'Fn::GetAtt': [logicalId(stack.pool.table.table), 'Arn'] }],
    ]);
  });
});

describe('published configuration and client policies', () => {
  it('publish the state machine ARNs volsd-client starts under /volsd/<pool>/', () => {
    const { acquire, release, replenish, snapshot, syncAll } = stack.pool.workflows;
    const published: Array<[Workflow, string]> = [
      ...[acquire, release, replenish, snapshot].map((w): [Workflow, string] => [w, w.name]),
      // The name volsd-client reads (configParameterNames.syncAllStateMachineArn).
      [syncAll, 'sync-all'],
    ];
    for (const [workflow, name] of published) {
      const parameter = Object.values(resources).find(
        (r) =>
          r.Type === 'AWS::SSM::Parameter' && r.Properties.Name === `/volsd/web/${name}-state-machine-arn`,
      );
      expect(parameter?.Properties.Value, workflow.name).toEqual(ref(workflow.stateMachine));
    }
  });

  const startsIn = (policy: IConstruct) =>
    (resourceOf(policy).Properties.PolicyDocument as { Statement: ResolvedStatement[] }).Statement.filter(
      (s) => actionsOf(s).includes('states:StartExecution'),
    ).flatMap((s) => [s.Resource].flat());

  it('let client hosts start no workflow themselves: the host API starts acquire and release for them', () => {
    const { acquire, release } = stack.pool.workflows;
    expect(startsIn(stack.pool.clientPolicies.hostPolicy)).toEqual([]);
    expect(startsIn(stack.pool.hostApi.function.role.node.findChild('DefaultPolicy'))).toEqual([
      ref(acquire.stateMachine),
      ref(release.stateMachine),
    ]);
  });

  it('let admins start every workflow', () => {
    expect(startsIn(stack.pool.clientPolicies.adminPolicy)).toEqual(
      expect.arrayContaining(workflows.map((w) => ref(w.stateMachine))),
    );
  });
});

describe('alarms', () => {
  const alarms = () => Object.values(resources).filter((r) => r.Type === 'AWS::CloudWatch::Alarm');

  it('fire on a failed, timed-out or aborted execution of each state machine', () => {
    for (const workflow of workflows) {
      const mine = alarms().filter((a) =>
        JSON.stringify(a.Properties.Metrics ?? []).includes(logicalId(workflow.stateMachine)),
      );
      expect(mine, workflow.name).toHaveLength(1);
      const metricNames = JSON.stringify(mine[0]?.Properties.Metrics);
      for (const name of ['ExecutionsFailed', 'ExecutionsTimedOut', 'ExecutionsAborted'])
        expect(metricNames).toContain(name);
      expect(mine[0]?.Properties).toMatchObject({
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      });
    }
  });

  it('fire on dispatcher errors', () => {
    const dispatcher = stack.pool.workflows.dispatcher?.function;
    if (!dispatcher) throw new Error('no dispatcher');
    const mine = alarms().filter(
      (a) =>
        a.Properties.MetricName === 'Errors' &&
        JSON.stringify(a.Properties.Dimensions ?? []).includes(logicalId(dispatcher)),
    );
    expect(mine).toHaveLength(1);
  });
});

describe('push fan-out', () => {
  const fanOut = () => stack.pool.fanOut;

  it('consumes the push queue in large, windowed batches, two at most at once, with partial batch responses', () => {
    const mappings = Object.values(resources).filter(
      (r) =>
        r.Type === 'AWS::Lambda::EventSourceMapping' &&
        JSON.stringify(r.Properties.EventSourceArn).includes(logicalId(stack.pool.push.queue)),
    );
    expect(mappings).toHaveLength(1);
    expect(mappings[0]?.Properties).toMatchObject({
      FunctionName: ref(fanOut().fanOut.function),
      BatchSize: 1000,
      MaximumBatchingWindowInSeconds: 20,
      ScalingConfig: { MaximumConcurrency: 2 },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it('gives the fan-out and the status function every variable their configuration requires, and loads it', () => {
    const required = requiredKeys(fanOutEnv);
    for (const fn of [fanOut().fanOut, fanOut().status]) {
      const env = envOf(fn);
      expect(Object.keys(env)).toEqual(expect.arrayContaining(required));
      expect(fanOutConfigFromEnv(standInEnv(env))).toMatchObject({
        pool: 'web',
        prefix: 'live/',
        syncDocument: 'Volsd-Sync-web',
        maxConcurrency: '25%',
        maxErrors: '25%',
      });
    }
  });

  it('lets the fan-out send commands, list live/ (its space check), and read no outcome, no EC2 and no object', () => {
    const actions = statementsOf(fanOut().fanOut).flatMap(actionsOf);
    expect([...new Set(actions.filter((a) => a.startsWith('ssm:')))]).toEqual(['ssm:SendCommand']);
    expect(actions.filter((a) => a.startsWith('ec2:') || a.startsWith('s3:'))).toEqual(['s3:ListBucket']);
    // The outcomes are the push-status function's, and sync-all's own.
    for (const fn of [fanOut().status, stack.pool.workflows.syncAll.function]) {
      expect(statementsOf(fn).flatMap(actionsOf)).toEqual(
        expect.arrayContaining(['ssm:GetCommandInvocation']),
      );
    }
  });

  it('lets the status function only read command results and the table', () => {
    const actions = [...new Set(statementsOf(fanOut().status).flatMap(actionsOf))];
    const foreign = actions.filter(
      (a) => !a.startsWith('dynamodb:') && !a.startsWith('logs:') && !a.startsWith('xray:'),
    );
    expect(foreign.sort()).toEqual([
      'ssm:GetCommandInvocation',
      'ssm:ListCommandInvocations',
      'ssm:ListCommands',
    ]);
  });

  it('hands the final statuses of the pool Volsd-Sync commands to the status function, with retries and a DLQ', () => {
    const rule = resourceOf(fanOut().commandStatusRule);
    expect(rule.Properties.EventPattern).toEqual({
      source: ['aws.ssm'],
      'detail-type': [commandStatusDetailType],
      detail: { 'document-name': ['Volsd-Sync-web'], status: ['Success', 'Failed', 'TimedOut', 'Cancelled'] },
    });
    expect(rule.Properties.Targets).toEqual([
      expect.objectContaining({
        Arn: { 'Fn::GetAtt': [logicalId(fanOut().status.function), 'Arn'] },
        RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 3600 },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalId(fanOut().deadLetterQueue), 'Arn'] } },
      }),
    ]);
  });

  it('sweeps unfinished pushes every five minutes with the scheduled event itself', () => {
    const rule = resourceOf(fanOut().sweepRule);
    expect(rule.Properties.ScheduleExpression).toBe('rate(5 minutes)');
    const [target] = rule.Properties.Targets as Array<Record<string, unknown>>;
    expect(target?.Arn).toEqual({ 'Fn::GetAtt': [logicalId(fanOut().status.function), 'Arn'] });
    // The status function recognises the sweep by the scheduled event's own shape.
    expect(target?.Input).toBeUndefined();
  });

  it('alarms on fan-out and status errors and on its DLQ', () => {
    const alarmsOn = (needle: string) =>
      Object.values(resources).filter(
        (r) =>
          r.Type === 'AWS::CloudWatch::Alarm' &&
          JSON.stringify(r.Properties.Dimensions ?? []).includes(needle),
      );
    expect(alarmsOn(logicalId(fanOut().fanOut.function))).toHaveLength(1);
    expect(alarmsOn(logicalId(fanOut().status.function))).toHaveLength(1);
    expect(alarmsOn(logicalId(fanOut().deadLetterQueue))).toHaveLength(1);
  });
});

describe('pool growth', () => {
  const growth = () => stack.pool.growth;

  it('lets the grow function modify only volumes tagged with the pool and role volume, and change no other EC2 resource', () => {
    const statements = statementsOf(growth().grow);
    const ec2 = [...new Set(statements.flatMap(actionsOf).filter((a) => a.startsWith('ec2:')))].sort();
    const modify = statements.find((s) => actionsOf(s).includes('ec2:ModifyVolume'));
    expect(ec2).toEqual(['ec2:DescribeVolumes', 'ec2:DescribeVolumesModifications', 'ec2:ModifyVolume']);
    expect([...new Set(statements.flatMap(actionsOf).filter((a) => a.startsWith('ssm:')))]).toEqual([
      'ssm:SendCommand',
    ]);
    expect(JSON.stringify(modify?.Resource)).toContain(':volume/*');
    expect(modify?.Condition).toEqual({
      StringEquals: { 'aws:ResourceTag/volsd:pool': 'web', 'aws:ResourceTag/volsd:role': 'volume' },
    });
  });

  it('runs a growth round every five minutes with the configured size and threshold', () => {
    const rule = resourceOf(growth().schedule);
    expect(rule.Properties.ScheduleExpression).toBe('rate(5 minutes)');
    expect(envOf(growth().grow)).toMatchObject({ VOLUME_SIZE_GIB: '20', GROW_THRESHOLD_PERCENT: '80' });
  });

  it('gives the fan-out its space check: the sizes, and a listing of live/ only', () => {
    const list = statementsOf(stack.pool.fanOut.fanOut).find((s) => actionsOf(s).includes('s3:ListBucket'));
    expect(list?.Condition).toEqual({ StringLike: { 's3:prefix': ['live/', 'live/*'] } });
    expect(envOf(stack.pool.fanOut.fanOut)).toMatchObject({
      VOLUME_SIZE_GIB: '20',
      GROW_THRESHOLD_PERCENT: '80',
    });
  });

  it('alarms on a push refused for want of space and on volumes stuck below the target, quiet without data', () => {
    const alarms = Object.values(resources).filter((r) => r.Type === 'AWS::CloudWatch::Alarm');
    const byMetric = (name: string) => alarms.find((a) => a.Properties.MetricName === name)?.Properties;
    expect(byMetric('PushRefusedNoSpace')).toMatchObject({ Threshold: 1, TreatMissingData: 'notBreaching' });
    expect(byMetric('VolumesBelowTarget')).toMatchObject({
      Threshold: 1,
      Statistic: 'Minimum',
      EvaluationPeriods: 8,
      TreatMissingData: 'notBreaching',
    });
  });
});
