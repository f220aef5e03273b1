import { Annotations, Arn, ArnFormat, Stack, Token } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IConstruct } from 'constructs';

/** Id of the synth warning raised when a launch key's policy cannot be edited by the stack. */
export const keyPolicyWarningId = 'volsd:autoScalingKeyPolicy';

/** Path of Amazon EC2 Auto Scaling's default service-linked role. */
const serviceLinkedRolePath = 'role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling';

/**
 * ARN of Auto Scaling's default service-linked role in the stack's account: the principal that
 * launches a group's instances and creates their EBS volumes (not whoever created the group).
 */
export function autoScalingServiceLinkedRoleArn(stack: Stack): string {
  return `arn:${stack.partition}:iam::${stack.account}:${serviceLinkedRolePath}`;
}

/**
 * The two key policy statements AWS documents for Auto Scaling to launch instances whose EBS volumes
 * use a customer managed key ("Required AWS KMS key policy for use with encrypted volumes", Amazon EC2
 * Auto Scaling User Guide, Example 1), for `principalArn`: use of the key, and CreateGrant only for
 * grants to AWS resources (EC2 holds a grant while the volume is attached).
 */
export function autoScalingKeyPolicyJson(principalArn: string): Array<Record<string, unknown>> {
  const Principal = { AWS: principalArn };
  return [
    {
      Sid: 'AllowAutoScalingServiceLinkedRoleUseOfTheKey',
      Effect: 'Allow',
      Principal,
      Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:DescribeKey'],
      Resource: '*',
    },
    {
      Sid: 'AllowAutoScalingServiceLinkedRoleAttachmentOfPersistentResources',
      Effect: 'Allow',
      Principal,
      Action: 'kms:CreateGrant',
      Resource: '*',
      Condition: { Bool: { 'kms:GrantIsForAWSResource': true } },
    },
  ];
}

/**
 * Lets Auto Scaling launch instances whose volumes use `key`. Its service-linked role has no access
 * to customer managed keys of its own, and without it every launch fails in the group's activity
 * history while the stack completes. A key of this app gets the statements in its key policy. An
 * imported key (`Key.fromKeyArn`) cannot: its policy belongs to whoever manages the key, so a synth
 * warning (acknowledgeable by {@link keyPolicyWarningId}) names the statements to add.
 * @param purpose what launches with the key, for the warning ("The sync workers' root volumes")
 * @returns the statements the stack could not add (empty when added to the key policy here)
 */
export function allowAutoScalingToUseKey(scope: IConstruct, key: IKey, purpose: string): PolicyStatement[] {
  const stack = Stack.of(scope);
  const statements = autoScalingKeyPolicyJson(autoScalingServiceLinkedRoleArn(stack)).map((json) =>
    PolicyStatement.fromJson(json),
  );
  const notAdded = statements.filter((statement) => !key.addToResourcePolicy(statement).statementAdded);
  if (notAdded.length === 0) return [];

  // The message is read at synth, where an environment-agnostic stack has no account yet.
  const known = (value: string, placeholder: string) => (Token.isUnresolved(value) ? placeholder : value);
  const account = known(stack.account, '<account of this stack>');
  const principal = `arn:${known(stack.partition, 'aws')}:iam::${account}:${serviceLinkedRolePath}`;
  const keyAccount = Token.isUnresolved(key.keyArn)
    ? undefined
    : Arn.split(key.keyArn, ArnFormat.SLASH_RESOURCE_NAME).account;
  const crossAccount =
    keyAccount && !Token.isUnresolved(stack.account) && keyAccount !== stack.account
      ? ` The key is in account ${keyAccount}, not ${account}: allow ${account} in the key policy and create ` +
        'a grant for the service-linked role from this account (AWS Example 2, "cross-account access").'
      : '';
  Annotations.of(scope).addWarningV2(
    keyPolicyWarningId,
    `${purpose} use the KMS key ${key.keyArn}, whose key policy this stack cannot edit. Until the policy ` +
      "allows Auto Scaling's service-linked role, every launch fails (see the group's activity history) while " +
      'the stack completes. Add these statements to the key policy (also in ' +
      `the stack output VolumeKeyPolicyStatements): ${JSON.stringify(autoScalingKeyPolicyJson(principal))}${crossAccount}`,
  );
  return notAdded;
}
