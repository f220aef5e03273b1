import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AutoScalingClient,
  AutoScalingServiceException,
  CompleteLifecycleActionCommand,
  DescribeAutoScalingGroupsCommand,
} from '@aws-sdk/client-auto-scaling';
import { DescribeVolumesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { DescribeInstanceInformationCommand } from '@aws-sdk/client-ssm';
import { isThrottlingError } from '@smithy/service-error-classification';
import { afterEach, describe, expect, it } from 'vitest';
import { awsErrorNames } from '../../lambdas/shared/errors.js';
import { Cloud, type CloudOptions } from '../../sandbox/sim/cloud.js';
import { attachSimulator } from '../../sandbox/sim/middleware.js';
import { ec2Bucket, ec2Categories } from '../../sandbox/sim/throttle.js';
import { clientConfig, type Harness, harness, rejection } from './harness.js';

let h: Harness | undefined;
const clients: { destroy(): void }[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await h?.dispose();
  h = undefined;
});

/** Clients that never retry: every throttle reaches the test. */
async function cloudWithBareClients(options: Partial<CloudOptions>) {
  h = await harness(options);
  const asg = new AutoScalingClient({ ...clientConfig, maxAttempts: 1 });
  const ec2 = new EC2Client({ ...clientConfig, maxAttempts: 1 });
  attachSimulator(asg, h.cloud);
  attachSimulator(ec2, h.cloud);
  clients.push(asg, ec2);
  return { h, asg, ec2 };
}

/** A clock that barely moves (1 modelled second = 1000 wall seconds) and no API latency: no refill. */
const frozen: Partial<CloudOptions> = { timeScale: 1000, latency: { api: [0, 0] } };

async function settle(calls: number, send: () => Promise<unknown>) {
  const results: PromiseSettledResult<unknown>[] = [];
  for (let n = 0; n < calls; n++) results.push(...(await Promise.allSettled([send()])));
  return results;
}

const reason = (r: PromiseSettledResult<unknown> | undefined) =>
  r?.status === 'rejected' ? (r.reason as Error & Record<string, unknown>) : undefined;

describe('autoScalingThrottling', () => {
  it('answers Throttling "Rate exceeded" (400, Sender) past the 50 tokens of a Describe bucket', async () => {
    const { asg } = await cloudWithBareClients(frozen);

    const results = await settle(51, () => asg.send(new DescribeAutoScalingGroupsCommand({})));

    expect(results.slice(0, 50).every((r) => r.status === 'fulfilled')).toBe(true);
    const error = reason(results[50]);
    expect(error).toBeInstanceOf(AutoScalingServiceException);
    expect(error).toMatchObject({
      name: 'Throttling',
      message: 'Rate exceeded',
      $fault: 'client',
      $metadata: { httpStatusCode: 400, attempts: 1 },
      Type: 'Sender',
      Code: 'Throttling',
      Error: { Type: 'Sender', Code: 'Throttling', Message: 'Rate exceeded' },
    });
  });

  it('is an error the SDK retry strategy classifies as throttling', async () => {
    const { asg } = await cloudWithBareClients(frozen);
    await settle(50, () => asg.send(new DescribeAutoScalingGroupsCommand({})));

    const error = await rejection(asg.send(new DescribeAutoScalingGroupsCommand({})));

    expect(isThrottlingError(error as never)).toBe(true);
  });

  it('throttles CompleteLifecycleAction before it looks at the action', async () => {
    const { asg } = await cloudWithBareClients(frozen);
    const complete = () =>
      asg.send(
        new CompleteLifecycleActionCommand({
          AutoScalingGroupName: 'none',
          LifecycleHookName: 'none',
          InstanceId: 'i-0123456789abcdef0',
          LifecycleActionResult: 'CONTINUE',
        }),
      );

    const results = await settle(51, complete);

    expect(results.slice(0, 50).map((r) => reason(r)?.name)).toEqual(Array(50).fill('ValidationError'));
    expect(reason(results[50])?.name).toBe('Throttling');
  });

  it('leaves Auto Scaling unthrottled when the rule is off', async () => {
    const { asg } = await cloudWithBareClients({ ...frozen, rules: { autoScalingThrottling: false } });

    const results = await settle(60, () => asg.send(new DescribeAutoScalingGroupsCommand({})));

    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
  });

  it('lets the state machines retry what the handlers see: every throttling retrier also names Throttling', () => {
    const dir = join(import.meta.dirname, '../../statemachines');
    const retriers: string[][] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (node && typeof node === 'object') {
        for (const [key, value] of Object.entries(node)) {
          if (key === 'Retry' && Array.isArray(value))
            for (const r of value) retriers.push((r as { ErrorEquals: string[] }).ErrorEquals);
          walk(value);
        }
      }
    };
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.asl.json')))
      walk(JSON.parse(readFileSync(join(dir, file), 'utf8')));

    const throttling = retriers.filter((names) => names.includes('ThrottlingException'));
    expect(throttling.length).toBeGreaterThan(0);
    expect(throttling.filter((names) => !names.includes('Throttling'))).toEqual([]);
    expect(awsErrorNames).toContain('Throttling');
  });
});

describe('EC2 Describe by id', () => {
  it('draws on the unfiltered bucket (50, 10 per s) when it has no filter and no paging', () => {
    expect(ec2Bucket('DescribeVolumes', { VolumeIds: ['vol-1'] })).toEqual({
      key: 'DescribeVolumes(unfiltered)',
      spec: ec2Categories.unfilteredNonMutating,
    });
    expect(ec2Bucket('DescribeInstances', { InstanceIds: ['i-1'] }).spec).toBe(
      ec2Categories.unfilteredNonMutating,
    );
  });

  it('draws on the filtered bucket with a filter or paging, ids or not', () => {
    const filters = [{ Name: 'status', Values: ['available'] }];

    expect(ec2Bucket('DescribeVolumes', { VolumeIds: ['vol-1'], Filters: filters }).spec).toBe(
      ec2Categories.nonMutating,
    );
    expect(ec2Bucket('DescribeSnapshots', { MaxResults: 5 }).spec).toBe(ec2Categories.nonMutating);
  });

  it('is throttled after 50 calls by id, while a filtered Describe still answers', async () => {
    const { ec2 } = await cloudWithBareClients(frozen);
    const byId = () => ec2.send(new DescribeVolumesCommand({ VolumeIds: ['vol-0123456789abcdef0'] }));

    const results = await settle(51, byId);
    const filtered = await ec2.send(
      new DescribeVolumesCommand({ Filters: [{ Name: 'status', Values: ['available'] }] }),
    );

    expect(results.slice(0, 50).map((r) => reason(r)?.name)).toEqual(
      Array(50).fill('InvalidVolume.NotFound'),
    );
    expect(reason(results[50])?.name).toBe('RequestLimitExceeded');
    expect(filtered.$metadata.httpStatusCode).toBe(200);
  });
});

describe('backgroundLoad', () => {
  it('keeps a bucket empty when other tenants take its whole refill', async () => {
    const { h: c, asg } = await cloudWithBareClients({ backgroundLoad: { autoScalingPerSecond: 10 } });
    await settle(50, () => asg.send(new DescribeAutoScalingGroupsCommand({})));

    await c.cloud.clock.sleep(60);
    const error = await rejection(asg.send(new DescribeAutoScalingGroupsCommand({})));

    expect(error.name).toBe('Throttling');
  });

  it('without it the same bucket refills in the same modelled minute', async () => {
    const { h: c, asg } = await cloudWithBareClients({});
    await settle(50, () => asg.send(new DescribeAutoScalingGroupsCommand({})));

    await c.cloud.clock.sleep(60);
    const out = await asg.send(new DescribeAutoScalingGroupsCommand({}));

    expect(out.$metadata.httpStatusCode).toBe(200);
  });

  it('draws on the EC2 buckets too', async () => {
    const { h: c, ec2 } = await cloudWithBareClients({ backgroundLoad: { ec2PerSecond: 10 } });
    await settle(50, () => ec2.send(new DescribeVolumesCommand({})));

    await c.cloud.clock.sleep(60);
    const error = await rejection(ec2.send(new DescribeVolumesCommand({})));

    expect(error.name).toBe('RequestLimitExceeded');
  });

  it('draws on the SSM buckets too, past the SDK retries', async () => {
    const { h: c } = await cloudWithBareClients({ backgroundLoad: { ssmPerSecond: 10 } });
    await settle(50, () => c.ssm.send(new DescribeInstanceInformationCommand({})));

    await c.cloud.clock.sleep(60);
    const error = await rejection(c.ssm.send(new DescribeInstanceInformationCommand({})));

    expect(error).toMatchObject({ name: 'ThrottlingException', $metadata: { attempts: 3 } });
  });

  it('refuses a negative rate', () => {
    expect(() => new Cloud({ rootDir: '/tmp/volsd-unused', backgroundLoad: { ssmPerSecond: -1 } })).toThrow(
      RangeError,
    );
  });
});
