import { readFileSync } from 'node:fs';
import { App, type Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { isPoolTagScoped, type ResolvedStatement } from '../../lib/nag.js';

/** The context block of cdk.json (feature flags and the default pool), so tests synthesize what the app does. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as {
    context: Record<string, unknown>;
  };
  return cdkJson.context;
}

/** What a test app spends time on beyond constructing and rendering the template. */
export interface TestAppOptions {
  /** Bundle the functions with esbuild (about a second each); otherwise their code assets are stand-ins. */
  readonly bundling?: boolean;
  /** Run CDK's built-in CloudFormation schema validation at synthesis (about 6 s per app). */
  readonly cloudFormationValidation?: boolean;
}

/**
 * A fresh App with cdk.json's context, plus `overrides`. Without bundling and without the built-in
 * CloudFormation validation unless asked for: the templates are the same, the tests stay fast.
 */
export function testApp(overrides: Record<string, unknown> = {}, options: TestAppOptions = {}): App {
  return new App({
    context: {
      ...cdkJsonContext(),
      ...(options.bundling ? {} : { 'aws:cdk:bundling-stacks': [] }),
      ...overrides,
    },
    builtinCloudFormationValidation: options.cloudFormationValidation ?? false,
  });
}

/** A cdk-nag violation, flattened for readable assertion failures. */
export interface NagFinding {
  rule: string;
  severity?: string;
  path: string;
}

/** Synthesizes `stack`'s app and returns every unacknowledged AwsSolutions finding in it. */
export function nagFindings(stack: Stack): NagFinding[] {
  Template.fromStack(stack); // runs aspects (acknowledgements) and synthesis first
  const report = new AwsSolutionsChecks().validateScope(stack);
  return report.violations.flatMap((v) =>
    v.violatingResources.map((r) => ({
      rule: v.ruleName,
      severity: v.severity,
      path: r.constructPath ?? '',
    })),
  );
}

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

/** Every Allow statement of every IAM role, policy and managed policy of `template`, with its owner. */
export function allStatements(template: Template): Array<{ owner: string; statement: ResolvedStatement }> {
  const resources = template.toJSON().Resources as Resources;
  const out: Array<{ owner: string; statement: ResolvedStatement }> = [];
  for (const [owner, resource] of Object.entries(resources)) {
    const props = resource.Properties ?? {};
    const documents: unknown[] = [];
    if (resource.Type === 'AWS::IAM::Policy' || resource.Type === 'AWS::IAM::ManagedPolicy') {
      documents.push(props.PolicyDocument);
    } else if (resource.Type === 'AWS::IAM::Role') {
      for (const p of (props.Policies as Array<{ PolicyDocument: unknown }> | undefined) ?? [])
        documents.push(p.PolicyDocument);
    }
    for (const doc of documents) {
      for (const statement of (doc as { Statement?: ResolvedStatement[] }).Statement ?? []) {
        if (statement.Effect === 'Allow') out.push({ owner, statement });
      }
    }
  }
  return out;
}

/** The statement's actions as an array. */
export function actionsOf(statement: ResolvedStatement): string[] {
  const a = statement.Action;
  return a === undefined ? [] : Array.isArray(a) ? a : [a];
}

/**
 * Statements of `template` that allow a mutating EC2 action without a pool tag condition (CreateTags
 * counts as scoped only when conditioned on ec2:CreateAction). Empty is the least-privilege rule.
 */
export function unscopedEc2Mutations(
  template: Template,
): Array<{ owner: string; statement: ResolvedStatement }> {
  return ec2Mutations(template).filter(({ statement }) => {
    const conditionKeys = Object.values(statement.Condition ?? {}).flatMap((block) => Object.keys(block));
    const createTagsOnCreate =
      actionsOf(statement).every((a) => a === 'ec2:CreateTags') && conditionKeys.includes('ec2:CreateAction');
    return !(isPoolTagScoped(statement) || createTagsOnCreate);
  });
}

/** Statements of `template` that allow any EC2 action other than Describe/Get/List. */
export function ec2Mutations(template: Template): Array<{ owner: string; statement: ResolvedStatement }> {
  return allStatements(template).filter(({ statement }) =>
    actionsOf(statement).some((a) => a.startsWith('ec2:') && !/^ec2:(Describe|Get|List)/.test(a)),
  );
}
