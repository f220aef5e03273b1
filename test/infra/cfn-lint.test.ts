import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readAppConfig } from '../../lib/config.js';
import { VolsdStack } from '../../lib/volsd-stack.js';
import { nagFindings, testApp } from './helpers.js';

/**
 * cfn-lint findings accepted, each with why. Anything else, error or warning, fails the test.
 */
const explained: Record<string, string> = {
  W3005:
    "A DependsOn that a GetAtt already implies. CDK's own constructs add these (a function on its role and " +
    'its default policy, the bucket notifications on the queue they target) so the order holds even if the ' +
    'reference were removed; the redundancy changes nothing in the deployment.',
};

/**
 * The documented configurations (README "Configure", lib/config.ts): cdk.json as shipped; served groups
 * with an alarm mail and named push writers; an existing VPC, topic and volume key in a pinned account
 * and Region, with the recycle release policy and nothing retained; the account's customer managed
 * default EBS key with the other optional settings (lib/config.ts) off their defaults.
 */
const configurations: Record<string, Record<string, unknown>> = {
  'cdk-json': {},
  'served-groups': {
    'volsd:autoScalingGroupNames': ['web-asg', 'api-asg'],
    'volsd:alarmEmail': 'ops@example.com',
    'volsd:pushWriterArns': ['arn:aws:iam::123456789012:role/ci-publisher'],
    'volsd:maxPushObjectBytes': 104857600,
  },
  'existing-vpc': {
    'volsd:account': '123456789012',
    'volsd:region': 'eu-west-1',
    'volsd:vpcId': 'vpc-0123456789abcdef0',
    'volsd:availabilityZones': ['eu-west-1a', 'eu-west-1b'],
    'volsd:subnetIds': ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
    'volsd:alarmTopicArn': 'arn:aws:sns:eu-west-1:123456789012:ops',
    'volsd:volumeKmsKeyArn': 'arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555',
    'volsd:releasePolicy': 'recycle',
    'volsd:retainData': false,
  },
  // The account's customer managed default EBS key, two AZs, no direct creation, the default
  // initialization rate and the launch going InService at once, other schedules and gp3 figures.
  // Environment-agnostic: a pinned environment with the stack's own VPC would take its AZs from a
  // context lookup, which an offline synth answers with placeholders.
  'default-key': {
    'volsd:accountDefaultEbsKeyArn':
      'arn:aws:kms:us-east-2:123456789012:key/66666666-7777-8888-9999-000000000000',
    'volsd:maxAzs': 2,
    'volsd:directCreate': false,
    'volsd:initialization': 'default-rate',
    'volsd:coldDirectVolume': 'continue',
    'volsd:acquireFailureResult': 'CONTINUE',
    'volsd:replenishRateMinutes': 10,
    'volsd:snapshotRateMinutes': 720,
    'volsd:snapshotRetention': 5,
    'volsd:volumeSizeGiB': 100,
    'volsd:volumeIops': 6000,
    'volsd:volumeThroughputMiBps': 250,
  },
};

const cfnLint = process.env.CFN_LINT ?? 'cfn-lint';
const probe = spawnSync(cfnLint, ['--version'], { encoding: 'utf8' });
const available = probe.status === 0;
if (!available) {
  // Printed, so a run without cfn-lint says what it did not check (PyPI is not reachable everywhere).
  console.warn(
    `cfn-lint tests skipped: "${cfnLint} --version" failed (${probe.error?.message ?? probe.stderr}). Install it with "pip install cfn-lint" or set CFN_LINT.`,
  );
}

interface Finding {
  Rule: { Id: string };
  Level: string;
  Message: string;
  Filename: string;
  Location?: { Path?: unknown[] };
}

const dir = mkdtempSync(join(tmpdir(), 'volsd-cfn-lint-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function synthTemplate(name: string, context: Record<string, unknown>): string {
  const app = testApp(context);
  const { stackName, stackProps } = readAppConfig(app.node);
  const stack = new VolsdStack(app, stackName, stackProps);
  const template = app.synth().getStackArtifact(stack.artifactId).template;
  const file = join(dir, `${name}.template.json`);
  writeFileSync(file, JSON.stringify(template, null, 1));
  return file;
}

describe('cdk-nag', () => {
  it.each(Object.entries(configurations))(
    'reports nothing unacknowledged in the %s configuration',
    (_name, context) => {
      const app = testApp(context);
      const { stackName, stackProps } = readAppConfig(app.node);
      const stack = new VolsdStack(app, stackName, stackProps);

      expect(nagFindings(stack).map((f) => `${f.rule} ${f.path}`)).toEqual([]);
    },
    180_000,
  );
});

describe.skipIf(!available)('cfn-lint', () => {
  it.each(Object.entries(configurations))(
    'finds no error and no unexplained warning in the %s configuration',
    (name, context) => {
      // Prepare
      const file = synthTemplate(name, context);

      // Act
      const run = spawnSync(cfnLint, ['--format', 'json', file], { encoding: 'utf8', timeout: 120_000 });

      // Assess: exit 0 (nothing), 4 (warnings), 2/6 (errors), 8/12 (informational) all print JSON.
      const findings = JSON.parse(run.stdout || '[]') as Finding[];
      const unexplained = findings
        .filter((f) => f.Level !== 'Informational' && !(f.Rule.Id in explained))
        .map((f) => `${f.Rule.Id} ${f.Level} ${JSON.stringify(f.Location?.Path ?? [])}: ${f.Message}`);
      expect(run.error).toBeUndefined();
      expect(unexplained).toEqual([]);
    },
    180_000,
  );
});
