/**
 * The AWS-strict rules of the simulator: behaviours where AWS is harsher than a naive model, each
 * with its source in `docs/sandbox.md`. Every rule is on by default; a rule is switched off only by an
 * explicit option (`new Cloud({ rules: { attachRequiresRunning: false } })`, `--no-rule <name>`), for
 * comparison. Scenarios and tests run with all of them on.
 */
export const strictRuleNames = [
  /** AttachVolume on an instance that is not `running` (or `stopped`): `IncorrectState`. */
  'attachRequiresRunning',
  /** New ids unknown to Describe* for a while; attachments in DescribeInstances lag DescribeVolumes. */
  'eventualConsistency',
  /** CreateVolume with a reused ClientToken and other parameters: `IdempotentParameterMismatch`. */
  'idempotencyMismatch',
  /** SSM SendCommand, ListCommandInvocations, GetCommandInvocation, DescribeInstanceInformation buckets. */
  'ssmThrottling',
  /** Auto Scaling CompleteLifecycleAction, RecordLifecycleActionHeartbeat, Describe* buckets. */
  'autoScalingThrottling',
  /** Attach and detach durations with a long tail; a force-detached device name unusable until reboot. */
  'attachTail',
  /** SSM tag targets resolved at delivery; offline agents Delayed then DeliveryTimedOut; delivery tail. */
  'ssmDelivery',
  /** DynamoDB global secondary indexes lag their table. */
  'indexLag',
  /** EBS attachment limits per instance type (DescribeInstanceTypes data), not one number for all. */
  'instanceTypeLimits',
  /**
   * A volume created from a snapshot starts uninitialized and loads its blocks lazily (default or
   * provisioned rate, or a host reading every block); DescribeVolumeStatus reports it late
   * (`initialization.ts`).
   */
  'volumeInitialization',
] as const;

export type StrictRule = (typeof strictRuleNames)[number];
export type StrictRules = Readonly<Record<StrictRule, boolean>>;

/** Every rule on, less those `off` names explicitly false. Unknown names are refused. */
export function resolveRules(off: Partial<Record<string, boolean>> = {}): StrictRules {
  for (const name of Object.keys(off)) {
    if (!(strictRuleNames as readonly string[]).includes(name)) {
      throw new Error(`unknown sandbox rule '${name}' (known: ${strictRuleNames.join(', ')})`);
    }
  }
  return Object.fromEntries(strictRuleNames.map((n) => [n, off[n] !== false])) as StrictRules;
}

/** The names of the rules in force, in their canonical order (the scenarios' `strictRules`). */
export function rulesInForce(rules: StrictRules): StrictRule[] {
  return strictRuleNames.filter((n) => rules[n]);
}
