import { Duration, Stack } from 'aws-cdk-lib';
import { InstanceType, SubnetType, Vpc } from 'aws-cdk-lib/aws-ec2';
import { describe, expect, it } from 'vitest';
import { readAppConfig } from '../../lib/config.js';
import { type PoolSettingsProps, resolvePoolSettings, VolsdConfigError } from '../../lib/pool-settings.js';
import { VolsdPool } from '../../lib/volsd-pool.js';
import { testApp } from './helpers.js';

const valid: PoolSettingsProps = { poolName: 'web' };

/** The message resolvePoolSettings throws for `props` (fails the test if it does not throw). */
function problemsOf(props: Partial<PoolSettingsProps>): string {
  try {
    resolvePoolSettings({ ...valid, ...props });
  } catch (err) {
    expect(err).toBeInstanceOf(VolsdConfigError);
    return (err as Error).message;
  }
  throw new Error('expected the settings to be refused');
}

describe('pool settings', () => {
  it('accept the defaults and fill them in', () => {
    const settings = resolvePoolSettings(valid);
    expect(settings).toMatchObject({
      idlePerAz: 2,
      volume: { sizeGiB: 20, type: 'gp3', iops: 3000, throughputMiBps: 125 },
      mountPath: '/srv/volsd',
      releasePolicy: 'delete',
      acquireFailureResult: 'ABANDON',
      snapshotRetention: 3,
      fanOut: { maxConcurrency: '25%', maxErrors: '25%' },
    });
  });

  it.each([
    ['Web', 'uppercase'],
    ['9web', 'leading digit'],
    ['web_pool', 'underscore'],
    ['a'.repeat(33), 'too long'],
  ])('refuse pool name %s (%s)', (poolName) => {
    expect(problemsOf({ poolName })).toContain('poolName must match ^[a-z][a-z0-9-]{0,31}$');
  });

  it('refuse idlePerAz beyond the table bound', () => {
    expect(problemsOf({ idlePerAz: 1001 })).toContain('idlePerAz must be an integer in 0..1000');
  });

  it('refuse a negative idlePerAz', () => {
    expect(problemsOf({ idlePerAz: -1 })).toContain('idlePerAz must be an integer in 0..1000');
  });

  it('size the worker groups for idlePerAz: 200 on t4g.small needs 8 workers of 26 volumes', () => {
    expect(resolvePoolSettings({ poolName: 'web', idlePerAz: 200 }).maxWorkersPerAz).toBe(8);
    expect(resolvePoolSettings({ poolName: 'web', idlePerAz: 26 }).maxWorkersPerAz).toBe(1);
    expect(resolvePoolSettings({ poolName: 'web', idlePerAz: 27 }).maxWorkersPerAz).toBe(2);
  });

  it('size by the worker type: m8g.large holds 31 volumes (32 dedicated attachments)', () => {
    const settings = resolvePoolSettings({
      poolName: 'web',
      idlePerAz: 62,
      workerInstanceType: new InstanceType('m8g.large'),
    });
    expect(settings.maxWorkersPerAz).toBe(2);
  });

  it('refuse a maxWorkersPerAz that cannot hold idlePerAz, saying how many it needs', () => {
    expect(problemsOf({ idlePerAz: 60, maxWorkersPerAz: 2 })).toContain(
      'idlePerAz 60 needs 3 t4g.small sync workers per AZ (26 volumes each besides the root volume), but maxWorkersPerAz is 2',
    );
  });

  it('size the worker groups for the adaptive maximum, not the starting target', () => {
    const settings = resolvePoolSettings({
      poolName: 'web',
      idlePerAz: 2,
      adaptive: { minPerAz: 2, maxPerAz: 60, budgetDollarsPerMonth: 500 },
    });
    expect(settings.maxWorkersPerAz).toBe(3);
    expect(settings.adaptive).toMatchObject({ lookbackDays: 7, workerDollarsPerMonth: 13.54 });
  });

  it('refuse adaptive bounds out of order and a budget that cannot hold the minimum', () => {
    expect(problemsOf({ adaptive: { minPerAz: 10, maxPerAz: 5, budgetDollarsPerMonth: 500 } })).toContain(
      'adaptive.minPerAz (10) is above adaptive.maxPerAz (5)',
    );
    // 10 volumes of 20 GiB ($16) and one t4g.small worker ($13.54): $29.54 a month in one AZ.
    expect(problemsOf({ adaptive: { minPerAz: 10, maxPerAz: 50, budgetDollarsPerMonth: 20 } })).toContain(
      'adaptive.budgetDollarsPerMonth (20) cannot hold adaptive.minPerAz 10 even in one AZ: that is $29.54 a month at rest',
    );
  });

  it('refuse a worker type whose attachment limit is unknown', () => {
    expect(problemsOf({ workerInstanceType: new InstanceType('x9g.huge') })).toContain(
      'workerInstanceType x9g.huge: its EBS attachment limit is not known',
    );
  });

  it('refuse a volume size of 0 GiB', () => {
    expect(problemsOf({ volume: { sizeGiB: 0 } })).toContain('volume.sizeGiB must be an integer in 1..16384');
  });

  it('refuse a volume larger than 16 TiB', () => {
    expect(problemsOf({ volume: { sizeGiB: 16385 } })).toContain(
      'volume.sizeGiB must be an integer in 1..16384',
    );
  });

  it('refuse gp3 IOPS below the baseline', () => {
    expect(problemsOf({ volume: { iops: 2000 } })).toContain('volume.iops must be an integer in 3000..80000');
  });

  it('refuse more than 500 IOPS per GiB above the baseline', () => {
    expect(problemsOf({ volume: { sizeGiB: 10, iops: 6000 } })).toContain(
      'at most 500 per GiB (5000 for 10 GiB)',
    );
  });

  it('refuse gp3 throughput out of range', () => {
    expect(problemsOf({ volume: { throughputMiBps: 100 } })).toContain(
      'volume.throughputMiBps must be an integer in 125..2000',
    );
  });

  it('refuse more than 0.25 MiB/s per IOPS', () => {
    expect(problemsOf({ volume: { throughputMiBps: 1000 } })).toContain(
      'at most 0.25 per IOPS (750 for 3000 IOPS)',
    );
  });

  it('refuse a volume type other than gp3', () => {
    expect(problemsOf({ volume: { type: 'io2' as 'gp3' } })).toContain("volume.type must be 'gp3'");
  });

  it.each(['srv/www', '/srv/../etc', '/srv/www/', '/srv/w w', '/', '/srv/.hidden', `/${'a'.repeat(200)}`])(
    'refuse mount path %s',
    (mountPath) => {
      expect(problemsOf({ mountPath })).toContain('mountPath must be an absolute path');
    },
  );

  it.each(['/etc', '/usr/share/www', '/var/lib/web', '/proc/x'])(
    'refuse mount path %s in a system directory',
    (mountPath) => {
      expect(problemsOf({ mountPath })).toContain('mountPath must not be in a system directory');
    },
  );

  it('refuse mount options that could reach a shell', () => {
    expect(problemsOf({ mountOptions: 'noatime;reboot' })).toContain(
      'mountOptions must be comma-separated options',
    );
  });

  it('refuse an unknown release policy', () => {
    expect(problemsOf({ releasePolicy: 'keep' as 'delete' })).toContain(
      "releasePolicy must be 'delete' or 'recycle'",
    );
  });

  it('refuse an unknown acquire failure result', () => {
    expect(problemsOf({ acquireFailureResult: 'RETRY' as 'ABANDON' })).toContain(
      "acquireFailureResult must be 'ABANDON' or 'CONTINUE'",
    );
  });

  it('refuse a heartbeat timeout under 30 seconds', () => {
    expect(problemsOf({ heartbeatTimeout: Duration.seconds(29) })).toContain(
      'heartbeatTimeout must be between 30 seconds and',
    );
  });

  it('refuse a heartbeat timeout over 2 hours', () => {
    expect(problemsOf({ heartbeatTimeout: Duration.seconds(7201) })).toContain(
      'heartbeatTimeout must be between',
    );
  });

  it('refuse a replenish rate under a minute', () => {
    expect(problemsOf({ schedules: { replenish: Duration.seconds(30) } })).toContain(
      'schedules.replenish must be between',
    );
  });

  it('refuse a snapshot rate under an hour', () => {
    expect(problemsOf({ schedules: { snapshot: Duration.minutes(30) } })).toContain(
      'schedules.snapshot must be between',
    );
  });

  it('refuse a reconcile rate under 5 minutes', () => {
    expect(problemsOf({ schedules: { reconcile: Duration.minutes(1) } })).toContain(
      'schedules.reconcile must be between',
    );
  });

  it('refuse a schedule that is not whole minutes', () => {
    expect(problemsOf({ schedules: { replenish: Duration.seconds(90) } })).toContain(
      'schedules.replenish must be whole minutes',
    );
  });

  it('refuse a snapshot retention of 0', () => {
    expect(problemsOf({ snapshotRetention: 0 })).toContain('snapshotRetention must be an integer in 1..100');
  });

  it.each(['0', '0%', '101%', 'all', '-1', '05', '01%', '10000000'])(
    'refuse fan-out concurrency %s',
    (maxConcurrency) => {
      expect(problemsOf({ fanOut: { maxConcurrency } })).toContain(
        'fanOut.maxConcurrency must be a count >= 1',
      );
    },
  );

  it.each(['150%', '00', '05%', '000', '12345678'])(
    'refuse fan-out max errors %s (SSM refuses it)',
    (maxErrors) => {
      expect(problemsOf({ fanOut: { maxErrors } })).toContain('fanOut.maxErrors must be a count >= 0');
    },
  );

  it.each([
    ['1', '0'],
    ['9999999', '5%'],
    ['100%', '100%'],
    ['7%', '10'],
  ])('accept fan-out concurrency %s and max errors %s, as SSM does', (maxConcurrency, maxErrors) => {
    expect(resolvePoolSettings({ ...valid, fanOut: { maxConcurrency, maxErrors } }).fanOut).toEqual({
      maxConcurrency,
      maxErrors,
    });
  });

  it('accept fan-out max errors of 0', () => {
    expect(resolvePoolSettings({ ...valid, fanOut: { maxErrors: 0 } }).fanOut.maxErrors).toBe('0');
  });

  it('refuse an x86 worker instance type', () => {
    expect(problemsOf({ workerInstanceType: new InstanceType('t3.small') })).toContain(
      'workerInstanceType must be arm64',
    );
  });

  it('list every problem at once', () => {
    const message = problemsOf({ idlePerAz: 1001, snapshotRetention: 0 });
    expect(message).toMatch(/Invalid Volsd pool "web":\n {2}- idlePerAz.*\n {2}- snapshotRetention/);
  });
});

describe('push settings', () => {
  it('default to no named writer and a 1 GiB object limit', () => {
    expect(resolvePoolSettings(valid).push).toEqual({ writerArns: [], maxObjectBytes: 1024 ** 3 });
  });

  it.each([
    ['*', 'a bare wildcard'],
    ['arn:aws:sts::123456789012:assumed-role/ci/session', 'a session ARN'],
    ['arn:aws:iam::*:role/ci', 'any account'],
    ['arn:aws:s3:::bucket', 'not IAM'],
  ])('refuse writer %s (%s)', (arn) => {
    expect(problemsOf({ push: { writerArns: [arn] } })).toContain(`push.writerArns: "${arn}"`);
  });

  it.each([
    ['arn:aws:iam::123456789012:role/ci-*'],
    ['arn:aws:iam::123456789012:role/path/publisher'],
    ['arn:aws:iam::123456789012:user/deploy'],
  ])('accept writer %s', (arn) => {
    expect(resolvePoolSettings({ ...valid, push: { writerArns: [arn] } }).push.writerArns).toEqual([arn]);
  });

  it('refuse an object limit of 0 bytes', () => {
    expect(problemsOf({ push: { maxObjectBytes: 0 } })).toContain('push.maxObjectBytes must be an integer');
  });

  it('refuse an object limit above S3 largest object (5 TiB)', () => {
    expect(problemsOf({ push: { maxObjectBytes: 5 * 1024 ** 4 + 1 } })).toContain(
      'push.maxObjectBytes must be an integer',
    );
  });

  it('read volsd:pushWriterArns and volsd:maxPushObjectBytes from the context', () => {
    const app = testApp({
      'volsd:pushWriterArns': 'arn:aws:iam::123456789012:role/a,arn:aws:iam::123456789012:role/b',
      'volsd:maxPushObjectBytes': '1048576',
    });
    expect(readAppConfig(app.node).stackProps.pool.push).toEqual({
      writerArns: ['arn:aws:iam::123456789012:role/a', 'arn:aws:iam::123456789012:role/b'],
      maxObjectBytes: 1048576,
    });
  });
});

describe('VolsdPool placement', () => {
  const vpcStack = () => {
    const stack = new Stack(testApp(), 'Placement');
    const vpc = new Vpc(stack, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [
        { name: 'a', subnetType: SubnetType.PRIVATE_ISOLATED },
        { name: 'b', subnetType: SubnetType.PRIVATE_ISOLATED },
      ],
    });
    return { stack, vpc };
  };

  it('refuses invalid settings when constructed', () => {
    const { stack, vpc } = vpcStack();
    expect(
      () => new VolsdPool(stack, 'Pool', { poolName: 'web', vpc, idlePerAz: 40, maxWorkersPerAz: 1 }),
    ).toThrow(/idlePerAz 40 needs 2 t4g\.small sync workers per AZ/);
  });

  it('refuses a wildcard in a served group name', () => {
    const { stack, vpc } = vpcStack();
    expect(
      () => new VolsdPool(stack, 'Pool', { poolName: 'web', vpc, autoScalingGroups: ['web-*'] }),
    ).toThrow(/"web-\*" is not a valid group name/);
  });

  it.each([
    ['web,blue', 'a comma (SERVED_GROUPS is comma-separated)'],
    [' web', 'a leading space (SERVED_GROUPS is trimmed)'],
    ['web ', 'a trailing space'],
  ])('refuses the served group name %j: %s', (name) => {
    const { stack, vpc } = vpcStack();
    expect(() => new VolsdPool(stack, 'Pool', { poolName: 'web', vpc, autoScalingGroups: [name] })).toThrow(
      `"${name}" is not a valid group name`,
    );
  });

  it('refuses a served group listed twice', () => {
    const { stack, vpc } = vpcStack();
    expect(
      () => new VolsdPool(stack, 'Pool', { poolName: 'web', vpc, autoScalingGroups: ['web', 'web'] }),
    ).toThrow(/"web" is listed twice/);
  });

  it('refuses two worker subnets in one AZ', () => {
    const stack = new Stack(testApp(), 'TwoPerAz', { env: { account: '123456789012', region: 'eu-west-1' } });
    const vpc = Vpc.fromVpcAttributes(stack, 'Vpc', {
      vpcId: 'vpc-12345678',
      availabilityZones: ['eu-west-1a', 'eu-west-1a'],
      privateSubnetIds: ['subnet-1', 'subnet-2'],
    });
    expect(
      () => new VolsdPool(stack, 'Pool', { poolName: 'web', vpc, subnets: { subnets: vpc.privateSubnets } }),
    ).toThrow(/one per AZ: eu-west-1a has more than one/);
  });
});

describe('app context', () => {
  it('converts command-line strings to typed props', () => {
    const app = testApp({
      'volsd:idlePerAz': '4',
      'volsd:directCreate': 'false',
      'volsd:autoScalingGroupNames': 'a, b',
    });
    const { stackProps } = readAppConfig(app.node);
    expect(stackProps.pool).toMatchObject({
      idlePerAz: 4,
      directCreate: false,
      autoScalingGroups: ['a', 'b'],
    });
  });

  it('turns on adaptive sizing from its context keys, the construct filling in the defaults', () => {
    const app = testApp({
      'volsd:adaptiveMinPerAz': '2',
      'volsd:adaptiveMaxPerAz': '60',
      'volsd:adaptiveBudgetDollarsPerMonth': '512.5',
    });
    const { stackProps } = readAppConfig(app.node);
    expect(stackProps.pool?.adaptive).toEqual({ minPerAz: 2, maxPerAz: 60, budgetDollarsPerMonth: 512.5 });
    const settings = resolvePoolSettings({ ...stackProps.pool, poolName: 'web' });
    expect(settings.adaptive).toEqual({
      minPerAz: 2,
      maxPerAz: 60,
      budgetDollarsPerMonth: 512.5,
      lookbackDays: 7,
      workerDollarsPerMonth: 13.54,
    });
  });

  it('refuses a partial set of adaptive keys', () => {
    expect(() => readAppConfig(testApp({ 'volsd:adaptiveMaxPerAz': 60 }).node)).toThrow(/go together/);
    expect(() => readAppConfig(testApp({ 'volsd:adaptiveLookbackDays': 3 }).node)).toThrow(/go together/);
  });

  it('names the stack after the pool', () => {
    expect(readAppConfig(testApp().node).stackName).toBe('Volsd-web');
  });

  it('refuses an unknown volsd: key, so a typo never falls back to a default', () => {
    expect(() => readAppConfig(testApp({ 'volsd:idlePerAZ': 3 }).node)).toThrow(
      /unknown context keys: volsd:idlePerAZ/,
    );
  });

  it.each([true, false, 'true'])(
    'refuses the removed volsd:fastSnapshotRestore (%s) with the reason, not as a typo',
    (value) => {
      const read = () => readAppConfig(testApp({ 'volsd:fastSnapshotRestore': value }).node);
      expect(read).toThrow(/volsd:fastSnapshotRestore: removed: fast snapshot restore was never implemented/);
      expect(read).toThrow(/warm-volumes work/);
      expect(read).toThrow(/Delete the key from cdk\.json or -c/);
      expect(read).not.toThrow(/unknown context keys/);
    },
  );

  it('lists the removed key beside the other problems of the context', () => {
    expect(() =>
      readAppConfig(testApp({ 'volsd:fastSnapshotRestore': true, 'volsd:idlePerAz': 'many' }).node),
    ).toThrow(/volsd:fastSnapshotRestore: removed[\s\S]*volsd:idlePerAz/);
  });

  it('refuses a value of the wrong type', () => {
    expect(() => readAppConfig(testApp({ 'volsd:idlePerAz': 'many' }).node)).toThrow(/volsd:idlePerAz/);
  });

  it('refuses a partial existing VPC', () => {
    expect(() => readAppConfig(testApp({ 'volsd:vpcId': 'vpc-1' }).node)).toThrow(/go together/);
  });

  it('refuses a missing pool name', () => {
    expect(() => readAppConfig(testApp({ 'volsd:poolName': undefined }).node)).toThrow(/volsd:poolName/);
  });
});
