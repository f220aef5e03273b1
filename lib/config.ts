import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { InstanceType } from 'aws-cdk-lib/aws-ec2';
import type { Node } from 'constructs';
import { z } from 'zod';
import type { VolsdStackProps } from './volsd-stack.js';

/**
 * Configuration of the standalone app (`bin/volsd.ts`) from CDK context: the `context` block of
 * `cdk.json`, or `-c key=value` on the command line (values from the command line arrive as strings
 * and are converted). Every key starts with `volsd:`; an unknown `volsd:` key is an error, so a typo
 * never silently falls back to a default. Ranges are checked by `VolsdPool` (see `lib/pool-settings.ts`).
 *
 * | key | type | default | meaning |
 * | --- | --- | --- | --- |
 * | `volsd:poolName` | string | (required) | pool name, `^[a-z][a-z0-9-]{0,31}$` |
 * | `volsd:stackName` | string | `Volsd-<poolName>` | CloudFormation stack name |
 * | `volsd:account` / `volsd:region` | string | environment-agnostic | pin the stack's environment |
 * | `volsd:autoScalingGroupNames` | string[] or `a,b` | `[]` | groups served (lifecycle hooks are added to them; tag them `volsd:pool=<pool>`) |
 * | `volsd:idlePerAz` | integer | 2 | idle volumes per AZ (0..1000); each AZ runs as many sync workers as they need |
 * | `volsd:maxWorkersPerAz` | integer | what `idlePerAz` needs | largest sync worker group per AZ (must hold the target) |
 * | `volsd:adaptiveMinPerAz`, `volsd:adaptiveMaxPerAz`, `volsd:adaptiveBudgetDollarsPerMonth` | integer, integer, number | off | adaptive sizing of the idle target (all three together; `idlePerAz` is then the starting target): bounds per AZ and the monthly at-rest budget (docs/decisions.md, "Adaptive sizing") |
 * | `volsd:adaptiveLookbackDays` | integer | 7 | adaptive sizing: past days whose launches count (1..60) |
 * | `volsd:adaptiveWorkerDollarsPerMonth` | number | 13.54 for t4g.small | adaptive sizing: one sync worker and its root volume a month (required for another worker type) |
 * | `volsd:volumeSizeGiB` | integer | 20 | volume size (1..16384); raising it grows every existing volume online |
 * | `volsd:growThresholdPercent` | integer | 80 | grow every pool volume once the content fills this share of one (10..90) |
 * | `volsd:volumeIops` | integer | 3000 | gp3 IOPS (3000..80000) |
 * | `volsd:volumeThroughputMiBps` | integer | 125 | gp3 throughput (125..2000) |
 * | `volsd:volumeKmsKeyArn` | key ARN | aws/ebs | customer managed key of volumes, snapshots and the workers' root volumes (its key policy must allow Auto Scaling: README, "Volume encryption keys") |
 * | `volsd:accountDefaultEbsKeyArn` | key ARN | none | the account's default EBS key when customer managed: the workflows get its use through EC2 |
 * | `volsd:mountPath` | string | `/srv/volsd` | mount point on served hosts |
 * | `volsd:mountOptions` | string | `noatime` | mount options |
 * | `volsd:releasePolicy` | `delete`, `recycle` | `delete` | fate of a released volume |
 * | `volsd:acquireFailureResult` | `ABANDON`, `CONTINUE` | `ABANDON` | launch hook result on failure |
 * | `volsd:heartbeatTimeoutSeconds` | integer | 600 | lifecycle hook heartbeat timeout (30..7200) |
 * | `volsd:replenishRateMinutes` | integer | 5 | replenish schedule |
 * | `volsd:snapshotRateMinutes` | integer | 360 | snapshot schedule |
 * | `volsd:reconcileRateMinutes` | integer | 15 | reconcile schedule |
 * | `volsd:snapshotRetention` | integer | 3 | snapshots kept |
 * | `volsd:directCreate` | boolean | true | no idle volume in the AZ: create one from the latest snapshot for the instance |
 * | `volsd:initialization` | `provisioned-rate`, `default-rate` | `provisioned-rate` | how a snapshot-born pool volume is initialized before it is IDLE |
 * | `volsd:initializationRateMiBps` | integer | 300 | VolumeInitializationRate of `provisioned-rate` (100..300) |
 * | `volsd:coldDirectVolume` | `hold`, `continue` | `hold` | a direct creation still initializing: hold the launch until it is, or go InService at once |
 * | `volsd:fanOutMaxConcurrency` | string | `25%` | SSM MaxConcurrency of a push |
 * | `volsd:fanOutMaxErrors` | string | `25%` | SSM MaxErrors of a push |
 * | `volsd:pushWriterArns` | string[] or `a,b` | `[]` | IAM role/user ARNs (`ArnLike` wildcards) allowed to write the push bucket besides the pool's publisher role; every other principal is denied |
 * | `volsd:maxPushObjectBytes` | integer | 1073741824 (1 GiB) | largest pushed object; the fan-out refuses a larger key (`too-large`) |
 * | `volsd:workerInstanceType` | string | `t4g.small` | sync worker instance type (arm64) |
 * | `volsd:maxAzs` | integer | 3 | AZs of the new VPC (the Region's first ones); must include the served groups' AZs |
 * | `volsd:vpcId`, `volsd:availabilityZones`, `volsd:subnetIds` | string, string[], string[] | new VPC | use an existing VPC (all three together; one subnet per AZ, same order) |
 * | `volsd:alarmTopicArn` | string | new topic | existing alarm topic |
 * | `volsd:alarmEmail` | string | none | e-mail subscribed to the alarm topic |
 * | `volsd:retainData` | boolean | true | keep the table and the push and access-log buckets when the stack is deleted; `false` deletes them, emptied (README, "Deleting the stack") |
 *
 * A removed key ({@link removedContextKeys}) fails the synth with the reason it was removed.
 *
 * Example (`cdk.json`):
 * ```json
 * "context": {
 *   "volsd:poolName": "web",
 *   "volsd:autoScalingGroupNames": ["web-asg"],
 *   "volsd:idlePerAz": 2,
 *   "volsd:volumeSizeGiB": 20,
 *   "volsd:mountPath": "/srv/www",
 *   "volsd:alarmEmail": "ops@example.com"
 * }
 * ```
 */
export interface AppConfig {
  /** Stack name. */
  readonly stackName: string;
  /** Props of the app's {@link VolsdStack}. */
  readonly stackProps: VolsdStackProps;
}

const integer = z.coerce.number().int();
const text = z.string().min(1);
/** A KMS key ARN: IAM and key policies match a key by its key ARN, never by an alias. */
const keyArn = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/,
    'must be a key ARN (arn:<partition>:kms:<region>:<account>:key/<id>); for an alias, run aws kms describe-key --key-id <alias> --query KeyMetadata.Arn',
  );
const bool = z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean());
const list = z.preprocess(
  (v) =>
    typeof v === 'string'
      ? v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : v,
  z.array(text),
);

/**
 * Context keys that were removed, with the reason. Setting one fails the synth with that reason
 * rather than with a bare "unknown context key" or, worse, being ignored.
 */
export const removedContextKeys: Readonly<Record<string, string>> = {
  'volsd:fastSnapshotRestore':
    'removed: fast snapshot restore was never implemented (the snapshot workflow only logged that it was asked for), ' +
    'so the key granted EC2 permissions and promised a feature and its cost for nothing. It comes back with the ' +
    "warm-volumes work, which enables it on the latest snapshot in the pool's AZs within the fast snapshot restore " +
    'credit bucket (docs/decisions.md, "Fast snapshot restore removed"). Delete the key from cdk.json or -c.',
};

/** The `volsd:` context keys and their types. */
export const contextSchema = z
  .object({
    'volsd:poolName': text,
    'volsd:stackName': text.optional(),
    'volsd:account': z.coerce
      .string()
      .regex(/^\d{12}$/, 'must be a 12-digit account id')
      .optional(),
    'volsd:region': text.optional(),
    'volsd:autoScalingGroupNames': list.optional(),
    'volsd:idlePerAz': integer.optional(),
    'volsd:maxWorkersPerAz': integer.optional(),
    'volsd:adaptiveMinPerAz': integer.optional(),
    'volsd:adaptiveMaxPerAz': integer.optional(),
    'volsd:adaptiveBudgetDollarsPerMonth': z.coerce.number().positive().optional(),
    'volsd:adaptiveLookbackDays': integer.optional(),
    'volsd:adaptiveWorkerDollarsPerMonth': z.coerce.number().positive().optional(),
    'volsd:volumeSizeGiB': integer.optional(),
    'volsd:growThresholdPercent': integer.optional(),
    'volsd:volumeIops': integer.optional(),
    'volsd:volumeThroughputMiBps': integer.optional(),
    'volsd:volumeKmsKeyArn': keyArn.optional(),
    'volsd:accountDefaultEbsKeyArn': keyArn.optional(),
    'volsd:mountPath': text.optional(),
    'volsd:mountOptions': text.optional(),
    'volsd:releasePolicy': z.enum(['delete', 'recycle']).optional(),
    'volsd:acquireFailureResult': z.enum(['ABANDON', 'CONTINUE']).optional(),
    'volsd:heartbeatTimeoutSeconds': integer.optional(),
    'volsd:replenishRateMinutes': integer.optional(),
    'volsd:snapshotRateMinutes': integer.optional(),
    'volsd:reconcileRateMinutes': integer.optional(),
    'volsd:snapshotRetention': integer.optional(),
    'volsd:directCreate': bool.optional(),
    'volsd:initialization': z.enum(['provisioned-rate', 'default-rate']).optional(),
    'volsd:initializationRateMiBps': integer.optional(),
    'volsd:coldDirectVolume': z.enum(['hold', 'continue']).optional(),
    'volsd:fanOutMaxConcurrency': z.coerce.string().optional(),
    'volsd:fanOutMaxErrors': z.coerce.string().optional(),
    'volsd:pushWriterArns': list.optional(),
    'volsd:maxPushObjectBytes': integer.optional(),
    'volsd:workerInstanceType': text.optional(),
    'volsd:maxAzs': integer.min(1).optional(),
    'volsd:vpcId': text.optional(),
    'volsd:availabilityZones': list.optional(),
    'volsd:subnetIds': list.optional(),
    'volsd:alarmTopicArn': text.optional(),
    'volsd:alarmEmail': z.string().email().optional(),
    'volsd:retainData': bool.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const adaptiveKeys = [
      c['volsd:adaptiveMinPerAz'],
      c['volsd:adaptiveMaxPerAz'],
      c['volsd:adaptiveBudgetDollarsPerMonth'],
    ];
    const adaptiveGiven = adaptiveKeys.filter((v) => v !== undefined).length;
    const adaptiveExtras =
      c['volsd:adaptiveLookbackDays'] !== undefined || c['volsd:adaptiveWorkerDollarsPerMonth'] !== undefined;
    if ((adaptiveGiven !== 0 && adaptiveGiven !== 3) || (adaptiveGiven === 0 && adaptiveExtras)) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message:
          'volsd:adaptiveMinPerAz, volsd:adaptiveMaxPerAz and volsd:adaptiveBudgetDollarsPerMonth go together (adaptiveLookbackDays and adaptiveWorkerDollarsPerMonth need them)',
      });
    }
    const vpcKeys = [c['volsd:vpcId'], c['volsd:availabilityZones'], c['volsd:subnetIds']];
    const given = vpcKeys.filter((v) => v !== undefined).length;
    if (given !== 0 && given !== 3) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: 'volsd:vpcId, volsd:availabilityZones and volsd:subnetIds go together',
      });
    }
    if (
      c['volsd:availabilityZones'] &&
      c['volsd:subnetIds'] &&
      c['volsd:availabilityZones'].length !== c['volsd:subnetIds'].length
    ) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: 'volsd:availabilityZones and volsd:subnetIds must have the same length (one subnet per AZ)',
      });
    }
  });

/** Every `volsd:` key of the context, with its value. */
function volsdContext(node: Node): Record<string, unknown> {
  return Object.fromEntries(Object.entries(node.getAllContext()).filter(([key]) => key.startsWith('volsd:')));
}

/**
 * Reads and type-checks the `volsd:` context keys of `node` (the App's) and turns them into the
 * stack's props.
 * @throws Error naming every bad, unknown or removed key
 */
export function readAppConfig(node: Node): AppConfig {
  const context = volsdContext(node);
  const removed = Object.keys(context).filter((key) => Object.hasOwn(removedContextKeys, key));
  for (const key of removed) delete context[key];
  const parsed = contextSchema.safeParse(context);
  const problems = [
    ...removed.map((key) => `${key}: ${removedContextKeys[key]}`),
    ...(parsed.success
      ? []
      : parsed.error.issues.map((i) =>
          i.code === 'unrecognized_keys'
            ? `unknown context keys: ${i.keys.join(', ')}`
            : `${i.path.join('.') || 'context'}: ${i.message}`,
        )),
  ];
  if (!parsed.success || problems.length > 0) {
    throw new Error(`Invalid Volsd context (cdk.json or -c):\n  - ${problems.join('\n  - ')}`);
  }
  const c = parsed.data;
  const minutes = (value: number | undefined) => (value === undefined ? undefined : Duration.minutes(value));
  const poolName = c['volsd:poolName'];
  const vpcId = c['volsd:vpcId'];
  const azs = c['volsd:availabilityZones'];
  const subnetIds = c['volsd:subnetIds'];
  const account = c['volsd:account'];
  const region = c['volsd:region'];
  const retain = c['volsd:retainData'] ?? true;
  const adaptiveMin = c['volsd:adaptiveMinPerAz'];
  const adaptiveMax = c['volsd:adaptiveMaxPerAz'];
  const adaptiveBudget = c['volsd:adaptiveBudgetDollarsPerMonth'];
  return {
    stackName: c['volsd:stackName'] ?? `Volsd-${poolName}`,
    stackProps: {
      ...(account || region ? { env: { account, region } } : {}),
      description: `Volsd pool ${poolName}: idle, in-sync EBS volumes for Auto Scaling launches`,
      maxAzs: c['volsd:maxAzs'],
      ...(vpcId && azs && subnetIds ? { existingVpc: { vpcId, availabilityZones: azs, subnetIds } } : {}),
      volumeKeyArn: c['volsd:volumeKmsKeyArn'],
      accountDefaultEbsKeyArn: c['volsd:accountDefaultEbsKeyArn'],
      alarmTopicArn: c['volsd:alarmTopicArn'],
      alarmEmail: c['volsd:alarmEmail'],
      pool: {
        poolName,
        autoScalingGroups: c['volsd:autoScalingGroupNames'],
        idlePerAz: c['volsd:idlePerAz'],
        maxWorkersPerAz: c['volsd:maxWorkersPerAz'],
        ...(adaptiveMin !== undefined && adaptiveMax !== undefined && adaptiveBudget !== undefined
          ? {
              adaptive: {
                minPerAz: adaptiveMin,
                maxPerAz: adaptiveMax,
                budgetDollarsPerMonth: adaptiveBudget,
                // Left out when unset: the construct's defaults apply then.
                ...(c['volsd:adaptiveLookbackDays'] === undefined
                  ? {}
                  : { lookbackDays: c['volsd:adaptiveLookbackDays'] }),
                ...(c['volsd:adaptiveWorkerDollarsPerMonth'] === undefined
                  ? {}
                  : { workerDollarsPerMonth: c['volsd:adaptiveWorkerDollarsPerMonth'] }),
              },
            }
          : {}),
        volume: {
          sizeGiB: c['volsd:volumeSizeGiB'],
          growThresholdPercent: c['volsd:growThresholdPercent'],
          iops: c['volsd:volumeIops'],
          throughputMiBps: c['volsd:volumeThroughputMiBps'],
        },
        mountPath: c['volsd:mountPath'],
        mountOptions: c['volsd:mountOptions'],
        releasePolicy: c['volsd:releasePolicy'],
        acquireFailureResult: c['volsd:acquireFailureResult'],
        heartbeatTimeout:
          c['volsd:heartbeatTimeoutSeconds'] === undefined
            ? undefined
            : Duration.seconds(c['volsd:heartbeatTimeoutSeconds']),
        schedules: {
          replenish: minutes(c['volsd:replenishRateMinutes']),
          snapshot: minutes(c['volsd:snapshotRateMinutes']),
          reconcile: minutes(c['volsd:reconcileRateMinutes']),
        },
        snapshotRetention: c['volsd:snapshotRetention'],
        directCreate: c['volsd:directCreate'],
        initialization: {
          method: c['volsd:initialization'],
          rateMiBps: c['volsd:initializationRateMiBps'],
        },
        coldDirectVolume: c['volsd:coldDirectVolume'],
        fanOut: { maxConcurrency: c['volsd:fanOutMaxConcurrency'], maxErrors: c['volsd:fanOutMaxErrors'] },
        push: { writerArns: c['volsd:pushWriterArns'], maxObjectBytes: c['volsd:maxPushObjectBytes'] },
        workerInstanceType: c['volsd:workerInstanceType']
          ? new InstanceType(c['volsd:workerInstanceType'])
          : undefined,
        removalPolicy: retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      },
    },
  };
}
