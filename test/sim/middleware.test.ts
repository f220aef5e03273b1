import {
  AutoScalingClient,
  AutoScalingServiceException,
  DescribeAutoScalingGroupsCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  CreateVolumeCommand,
  DescribeVolumesCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand, ParameterNotFound, SSMServiceException } from '@aws-sdk/client-ssm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { attachSimulator, simulatorMiddlewareName } from '../../sandbox/sim/middleware.js';
import { clientConfig, type Harness, harness, rejection } from './harness.js';

let h: Harness;

beforeEach(async () => {
  h = await harness();
});

afterEach(async () => {
  await h.dispose();
});

describe('attachSimulator', () => {
  it('sits inside the retry middleware and outside the deserializer', () => {
    const stack = h.ec2.middlewareStack.identify();

    const at = (prefix: string) => stack.findIndex((entry) => entry.startsWith(prefix));

    expect(at('retryMiddleware')).toBeGreaterThanOrEqual(0);
    expect(at(simulatorMiddlewareName)).toBeGreaterThan(at('retryMiddleware'));
    expect(at('deserializerMiddleware')).toBeGreaterThan(at(simulatorMiddlewareName));
  });

  it('answers with the SDK output shape and $metadata', async () => {
    const out = await h.ec2.send(new DescribeVolumesCommand({}));

    expect(Array.isArray(out.Volumes)).toBe(true);
    expect(out.$metadata).toMatchObject({ httpStatusCode: 200, attempts: 1, totalRetryDelay: 0 });
    expect(out.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('throws EC2 errors as EC2ServiceException with the AWS code, fault, status and Error body', async () => {
    const error = await rejection(
      h.ec2.send(new DescribeVolumesCommand({ VolumeIds: ['vol-0123456789abcdef0'] })),
    );

    expect(error).toBeInstanceOf(EC2ServiceException);
    expect(error).toMatchObject({
      name: 'InvalidVolume.NotFound',
      message: "The volume 'vol-0123456789abcdef0' does not exist.",
      $fault: 'client',
      $metadata: { httpStatusCode: 400, attempts: 1 },
      Code: 'InvalidVolume.NotFound',
      Error: {
        Code: 'InvalidVolume.NotFound',
        Message: "The volume 'vol-0123456789abcdef0' does not exist.",
      },
    });
  });

  it('throws SSM errors as the modelled exception class', async () => {
    const error = await rejection(h.ssm.send(new GetParameterCommand({ Name: '/nope' })));

    expect(error).toBeInstanceOf(ParameterNotFound);
    expect(error).toBeInstanceOf(SSMServiceException);
    expect(error.name).toBe('ParameterNotFound');
  });

  it('throws Auto Scaling errors as AutoScalingServiceException with Type Sender', async () => {
    h.cloud.faults.once('internalError', { action: 'DescribeAutoScalingGroups' });
    const client = new AutoScalingClient({ ...clientConfig, maxAttempts: 1 });
    attachSimulator(client, h.cloud);

    const error = await rejection(client.send(new DescribeAutoScalingGroupsCommand({})));

    expect(error).toBeInstanceOf(AutoScalingServiceException);
    expect(error).toMatchObject({ name: 'InternalError', $fault: 'server', Type: 'Receiver' });
    client.destroy();
  });

  it('names a command the simulator does not implement', async () => {
    const error = await rejection(h.ec2.send(new RunInstancesCommand({ MinCount: 1, MaxCount: 1 })));

    expect(error.name).toBe('UnsupportedCommandError');
    expect(error.message).toContain('ec2:RunInstances');
  });

  it('refuses clients of other services', () => {
    expect(() => attachSimulator({ middlewareStack: { add() {} } }, h.cloud)).toThrow(TypeError);
  });

  it('answers DryRun with DryRunOperation', async () => {
    const error = await rejection(
      h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 1, DryRun: true })),
    );

    expect(error.name).toBe('DryRunOperation');
  });

  it('counts every attempt as an awsCall attributed to the current operation', async () => {
    h.cloud.faults.once('throttle', { action: 'DescribeVolumes' });

    await h.accounting.withOperation('acquire-1', () => h.ec2.send(new DescribeVolumesCommand({})));
    await h.ec2.send(new DescribeVolumesCommand({}));

    expect(h.accounting.forOperation('acquire-1').byDetail.awsCall).toEqual({ 'ec2:DescribeVolumes': 2 });
    expect(h.accounting.totals().awsCall).toBe(3);
  });
});

describe('throttling', () => {
  it('RequestLimitExceeded is retried by the SDK retry strategy', async () => {
    h.cloud.faults.once('throttle', { action: 'DescribeVolumes' });

    const out = await h.ec2.send(new DescribeVolumesCommand({}));

    expect(out.$metadata.attempts).toBe(2);
    expect(h.cloud.faults.counts().throttle).toBe(1);
  });

  it('RequestLimitExceeded reaches the caller as a 503 server fault when retries run out', async () => {
    const client = new EC2Client({ ...clientConfig, maxAttempts: 2 });
    attachSimulator(client, h.cloud);
    h.cloud.faults.once('throttle', { action: 'DescribeVolumes' });
    h.cloud.faults.once('throttle', { action: 'DescribeVolumes' });

    const error = await rejection(client.send(new DescribeVolumesCommand({})));

    expect(error).toMatchObject({
      name: 'RequestLimitExceeded',
      message: 'Request limit exceeded.',
      $fault: 'server',
      $metadata: { httpStatusCode: 503, attempts: 2 },
    });
    client.destroy();
  });

  it('the token bucket throttles a burst beyond its capacity (unfiltered Describe: 50)', async () => {
    await h.dispose();
    // Real time: the bucket refills 10 tokens per modelled second, so a burst must be quick in modelled time.
    h = await harness({ timeScale: 1, latency: { api: [0.01, 0.01] } }, 1);

    const results = await Promise.allSettled(
      Array.from({ length: 60 }, () => h.ec2.send(new DescribeVolumesCommand({}))),
    );

    const throttled = results.filter(
      (r) => r.status === 'rejected' && (r.reason as Error).name === 'RequestLimitExceeded',
    );
    expect(throttled.length).toBeGreaterThan(0);
    expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(50);
  });

  it('a filtered Describe draws from its own bucket', async () => {
    await h.dispose();
    h = await harness({ timeScale: 1, latency: { api: [0.01, 0.01] } }, 1);
    await Promise.allSettled(Array.from({ length: 55 }, () => h.ec2.send(new DescribeVolumesCommand({}))));

    const filtered = await h.ec2.send(
      new DescribeVolumesCommand({ Filters: [{ Name: 'status', Values: ['available'] }] }),
    );

    expect(filtered.$metadata.httpStatusCode).toBe(200);
  });

  it('throttling can be turned off', async () => {
    await h.dispose();
    h = await harness({ timeScale: 1, latency: { api: [0.001, 0.001] }, throttling: false }, 1);

    const results = await Promise.allSettled(
      Array.from({ length: 60 }, () => h.ec2.send(new DescribeVolumesCommand({}))),
    );

    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
  });
});
