import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { Accounting } from '../../sandbox/sim/accounting.js';
import { Cloud, type CloudOptions } from '../../sandbox/sim/cloud.js';
import { attachSimulator, modelledRetryStrategy } from '../../sandbox/sim/middleware.js';

/** A simulated cloud in a temp dir with real SDK clients wired to it. */
export interface Harness {
  cloud: Cloud;
  accounting: Accounting;
  ec2: EC2Client;
  asg: AutoScalingClient;
  ssm: SSMClient;
  rootDir: string;
  dispose(): Promise<void>;
}

/** Fake static credentials: the SDK signs requests, nothing leaves the process. */
export const clientConfig = {
  region: 'us-east-1',
  credentials: { accessKeyId: 'AKIDSIMULATOR', secretAccessKey: 'simulator' },
};

/**
 * Builds a cloud compressed 1000x (1 modelled second = 1 ms) unless told otherwise, with clients
 * whose retries back off in modelled time.
 */
export async function harness(options: Partial<CloudOptions> = {}, maxAttempts = 3): Promise<Harness> {
  const rootDir = await mkdtemp(join(tmpdir(), 'volsd-sim-'));
  const accounting = new Accounting();
  const cloud = new Cloud({ rootDir, timeScale: 0.001, seed: 7, accounting, ...options });
  const config = { ...clientConfig, retryStrategy: modelledRetryStrategy(cloud, maxAttempts) };
  const ec2 = new EC2Client(config);
  const asg = new AutoScalingClient(config);
  const ssm = new SSMClient(config);
  for (const client of [ec2, asg, ssm]) attachSimulator(client, cloud);
  return {
    cloud,
    accounting,
    ec2,
    asg,
    ssm,
    rootDir,
    async dispose() {
      for (const client of [ec2, asg, ssm]) client.destroy();
      await cloud.close();
      await rm(rootDir, { recursive: true, force: true });
    },
  };
}

/** Launches an instance and waits until it runs and its SSM agent answers. */
export async function runningInstance(
  cloud: Cloud,
  az = 'us-east-1a',
  tags: Record<string, string> = {},
  attachmentLimit?: number,
): Promise<string> {
  const id = cloud.launchInstance({ az, tags, ...(attachmentLimit ? { attachmentLimit } : {}) });
  await cloud.waitFor(() => cloud.ec2.agentOnline(id), 600, `agent of ${id}`);
  return id;
}

/**
 * Waits until every id created before the call is known to Describe* (rule eventualConsistency: a new
 * id may be unknown for up to `latency.consistency` modelled seconds).
 */
export function untilConsistent(cloud: Cloud): Promise<void> {
  return cloud.clock.sleep(cloud.latency.consistency[1] + 0.001);
}

/** The error a promise rejects with (fails the test if it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await promise;
  } catch (error) {
    return error as Error & Record<string, unknown>;
  }
  throw new Error('expected a rejection, the call succeeded');
}
