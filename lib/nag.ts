import { Aspects, CfnResource, type IAspect, Stack, Validations } from 'aws-cdk-lib';
import { CfnManagedPolicy, CfnPolicy, CfnRole } from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';

/** One IAM policy statement as CloudFormation holds it. */
export interface ResolvedStatement {
  readonly Effect?: string;
  readonly Action?: string | string[];
  readonly Resource?: unknown;
  readonly Condition?: Record<string, Record<string, unknown>>;
}

/** A reason to accept some of cdk-nag's IAM5 (wildcard) findings, and the proof demanded for it. */
export interface WildcardAcknowledgement {
  /** Matches the finding as cdk-nag prints it after `AwsSolutions-IAM5[`, e.g. `Resource::arn:...:volume/*`. */
  readonly finding: RegExp;
  /** Why the wildcard is acceptable. */
  readonly reason: string;
  /**
   * Must hold for every Allow statement of the policy that produces the finding; otherwise the
   * finding is left for cdk-nag to report. So an acknowledgement cannot cover a later, broader
   * statement by accident.
   * @default no check
   */
  readonly check?: (statement: ResolvedStatement) => boolean;
}

const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : [value]);

/** Renders a resolved CloudFormation value the way cdk-nag prints it in findings. */
export function flattenReference(node: unknown): string {
  if (node === undefined) return '';
  if (typeof node === 'string') return node.replace(/\$\{/g, '<').replace(/\}/g, '>');
  if (typeof node === 'object' && node !== null) {
    const value = node as Record<string, unknown>;
    if (Array.isArray(value['Fn::Join'])) {
      const [delimiter, items] = value['Fn::Join'] as [string, unknown[]];
      return items.map(flattenReference).join(delimiter);
    }
    if (value['Fn::Sub'] !== undefined) return flattenReference(value['Fn::Sub']);
    if (Array.isArray(value['Fn::GetAtt'])) {
      const [resource, attribute] = value['Fn::GetAtt'] as [unknown, unknown];
      return `<${flattenReference(resource)}.${flattenReference(attribute)}>`;
    }
    if (value['Fn::ImportValue'] !== undefined) return flattenReference(value['Fn::ImportValue']);
    if (value.Ref !== undefined) return `<${flattenReference(value.Ref)}>`;
  }
  return JSON.stringify(node);
}

/** The IAM5 findings one statement produces (`Action::x*`, `Resource::...*`). */
export function wildcardFindings(statement: ResolvedStatement): string[] {
  if (statement.Effect !== 'Allow') return [];
  const actions = asArray(statement.Action)
    .filter((a): a is string => typeof a === 'string' && a.includes('*'))
    .map((a) => `Action::${a}`);
  const resources = asArray(statement.Resource)
    .map(flattenReference)
    .filter((r) => r.includes('*'))
    .map((r) => `Resource::${r}`);
  return [...actions, ...resources];
}

/** Every Allow statement of an IAM resource (inline policies of a role included), resolved. */
export function policyStatements(node: CfnResource): ResolvedStatement[] {
  const stack = Stack.of(node);
  const documents: unknown[] = [];
  if (node instanceof CfnPolicy || node instanceof CfnManagedPolicy) {
    documents.push(stack.resolve(node.policyDocument));
  } else if (node instanceof CfnRole) {
    for (const policy of asArray(stack.resolve(node.policies)) as Array<{ policyDocument?: unknown }>) {
      if (policy?.policyDocument) documents.push(stack.resolve(policy.policyDocument));
    }
  }
  return documents.flatMap((d) => asArray((d as { Statement?: unknown })?.Statement) as ResolvedStatement[]);
}

class WildcardAcknowledger implements IAspect {
  constructor(private readonly acknowledgements: readonly WildcardAcknowledgement[]) {}

  visit(node: IConstruct): void {
    if (!CfnResource.isCfnResource(node)) return;
    const statements = policyStatements(node);
    const findings = new Set(statements.flatMap(wildcardFindings));
    for (const finding of findings) {
      const producers = statements.filter((s) => wildcardFindings(s).includes(finding));
      const ack = this.acknowledgements.find(
        (a) => a.finding.test(finding) && (!a.check || producers.every(a.check)),
      );
      if (ack) Validations.of(node).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason: ack.reason });
    }
  }
}

/**
 * Acknowledges cdk-nag IAM5 wildcard findings on the IAM policies under `scope` that match one of
 * `acknowledgements`, each with its reason, and only where its `check` holds for every statement
 * producing the finding. Runs as an aspect, so it sees the final, minimized policy documents.
 */
export function acknowledgeWildcards(
  scope: IConstruct,
  acknowledgements: readonly WildcardAcknowledgement[],
): void {
  Aspects.of(scope).add(new WildcardAcknowledger(acknowledgements));
}

/**
 * A regular expression matching the flattened ARN of `service` whose resource part matches
 * `resource` (a regex source), whatever the partition, Region and account: literal values of a stack
 * with an environment, or `<AWS::Partition>`, `<AWS::Region>`, `<AWS::AccountId>` of an agnostic one.
 */
export function findingArn(service: string, resource: string): RegExp {
  return new RegExp(
    `^Resource::arn:(?:<AWS::Partition>|aws[a-z-]*):${service}:(?:<AWS::Region>|[a-z0-9-]*):(?:<AWS::AccountId>|\\d{12}|):${resource}$`,
  );
}

const readOnlyAction =
  /^(?:[a-z0-9-]+:(?:Describe|List|Get)[A-Za-z]*|xray:PutTraceSegments|xray:PutTelemetryRecords)$/;

/** True when every action of `statement` only reads (or uploads X-Ray traces). */
export function isReadOnlyStatement(statement: ResolvedStatement): boolean {
  return asArray(statement.Action).every((a) => typeof a === 'string' && readOnlyAction.test(a));
}

const poolTagKey = /^(?:aws:ResourceTag|aws:RequestTag|ssm:resourceTag)\/volsd:pool$/;

/** True when `statement` is conditioned on the `volsd:pool` tag (of the resource or of the request). */
export function isPoolTagScoped(statement: ResolvedStatement): boolean {
  return Object.values(statement.Condition ?? {}).some((block) =>
    Object.keys(block).some((k) => poolTagKey.test(k)),
  );
}

/**
 * The acknowledgements every Volsd function role needs: Resource "*" only for read-only actions
 * (AWS allows nothing narrower for Describe/List/Get and X-Ray), and EC2/Auto Scaling wildcards only
 * on statements conditioned on the pool tag or naming served groups.
 */
export const volsdWildcardAcknowledgements: readonly WildcardAcknowledgement[] = [
  {
    finding: /^Resource::\*$/,
    reason:
      'Only read-only actions (Describe/List/Get, X-Ray trace upload) that support no resource-level permissions.',
    check: isReadOnlyStatement,
  },
  {
    finding: findingArn('ec2', '(?:volume|instance|snapshot)/\\*'),
    reason:
      'Any volume, instance or snapshot, but only those tagged volsd:pool=<pool> (IAM tag condition on every statement).',
    check: isPoolTagScoped,
  },
  {
    finding: findingArn('autoscaling', 'autoScalingGroup:\\*'),
    reason:
      "Any Auto Scaling group, but only the pool's sync worker groups (autoscaling:ResourceTag conditions on volsd:pool and volsd:role=worker): replenish sizes them.",
    check: (statement) =>
      Object.values(statement.Condition ?? {}).some(
        (block) =>
          'autoscaling:ResourceTag/volsd:pool' in block && 'autoscaling:ResourceTag/volsd:role' in block,
      ),
  },
  {
    finding: findingArn('autoscaling', 'autoScalingGroup:\\*:autoScalingGroupName/[^*]+'),
    reason: 'A served group by name; the * is the group id, which changes when the group is recreated.',
  },
];

/** The wildcards of CDK's table grants (`VolsdFunction.bindTable`), each proven narrow by its check. */
export const tableGrantAcknowledgements: readonly WildcardAcknowledgement[] = [
  {
    finding: /^Resource::<[A-Za-z0-9]+\.Arn>\/index\/\*$/,
    reason:
      "The indexes of the bound table (CDK's table grant): claims query idle volumes by pool, AZ and state.",
    check: (statement) => [statement.Action ?? []].flat().every((a) => a.startsWith('dynamodb:')),
  },
  {
    finding: /^Action::kms:(?:ReEncrypt|GenerateDataKey)\*$/,
    reason:
      "CDK's grant on the data key of a table encrypted with it: the variants of ReEncrypt and GenerateDataKey, on that one key only.",
    check: (statement) =>
      [statement.Action ?? []].flat().every((a) => a.startsWith('kms:')) &&
      !JSON.stringify(statement.Resource ?? '*').includes('*'),
  },
];
