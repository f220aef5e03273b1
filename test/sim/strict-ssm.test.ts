import { CreateTagsCommand } from '@aws-sdk/client-ec2';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  InvalidInstanceId,
  ListCommandsCommand,
  SendCommandCommand,
  SSMClient,
  SSMServiceException,
  ThrottlingException,
} from '@aws-sdk/client-ssm';
import { isThrottlingError } from '@smithy/service-error-classification';
import { afterEach, describe, expect, it } from 'vitest';
import { commandOutcome, sendDocument } from '../../lambdas/shared/commands.js';
import type { CloudOptions } from '../../sandbox/sim/cloud.js';
import { attachSimulator } from '../../sandbox/sim/middleware.js';
import { Rng } from '../../sandbox/sim/rng.js';
import { tailedDelivery } from '../../sandbox/sim/ssm.js';
import { clientConfig, type Harness, harness, rejection, runningInstance } from './harness.js';

let h: Harness | undefined;
const clients: SSMClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await h?.dispose();
  h = undefined;
});

async function cloud(options: Partial<CloudOptions> = {}): Promise<Harness> {
  h = await harness(options);
  h.cloud.ssm.registerDocument('Echo', async (ctx) => ({ exitCode: 0, stdout: ctx.instanceId, stderr: '' }));
  return h;
}

/**
 * A cloud whose clock barely moves (1 modelled second = 1000 wall seconds, no API latency), so a bucket
 * cannot refill during a test, and a client that never retries: every throttle reaches the test.
 */
async function frozenCloud(options: Partial<CloudOptions> = {}): Promise<{ h: Harness; ssm: SSMClient }> {
  const frozen = await cloud({ timeScale: 1000, latency: { api: [0, 0] }, ...options });
  const ssm = new SSMClient({ ...clientConfig, maxAttempts: 1 });
  attachSimulator(ssm, frozen.cloud);
  clients.push(ssm);
  return { h: frozen, ssm };
}

async function settle(calls: number, send: () => Promise<unknown>) {
  const results: PromiseSettledResult<unknown>[] = [];
  for (let n = 0; n < calls; n++) results.push(...(await Promise.allSettled([send()])));
  return results;
}

function invocationsOf(harnessed: Harness, commandId: string) {
  return harnessed.cloud.snapshotState().commands.find((c) => c.commandId === commandId)?.invocations ?? [];
}

async function commandDone(harnessed: Harness, commandId: string): Promise<void> {
  const done = new Set(['Success', 'Failed', 'TimedOut', 'Cancelled']);
  const status = () =>
    harnessed.cloud.snapshotState().commands.find((c) => c.commandId === commandId)?.status ?? '';
  await harnessed.cloud.waitFor(() => done.has(status()), 20_000, `command ${commandId}`);
}

describe('ssmThrottling', () => {
  it('answers ThrottlingException "Rate exceeded" (400, client) past the 50 tokens of a read bucket', async () => {
    const { ssm } = await frozenCloud();

    const results = await settle(51, () => ssm.send(new DescribeInstanceInformationCommand({})));

    expect(results.slice(0, 50).every((r) => r.status === 'fulfilled')).toBe(true);
    const last = results[50];
    expect(last?.status).toBe('rejected');
    const error = (last as PromiseRejectedResult).reason as Error;
    expect(error).toBeInstanceOf(ThrottlingException);
    expect(error).toBeInstanceOf(SSMServiceException);
    expect(error).toMatchObject({
      name: 'ThrottlingException',
      message: 'Rate exceeded',
      $fault: 'client',
      $metadata: { httpStatusCode: 400, attempts: 1 },
    });
  });

  it('is an error the SDK retry strategy classifies as throttling', async () => {
    const { ssm } = await frozenCloud();
    await settle(50, () => ssm.send(new DescribeInstanceInformationCommand({})));

    const error = await rejection(ssm.send(new DescribeInstanceInformationCommand({})));

    expect(isThrottlingError(error as never)).toBe(true);
  });

  it('gives each action its own bucket: GetCommandInvocation still answers when DescribeInstanceInformation is empty', async () => {
    const { ssm } = await frozenCloud();
    await settle(51, () => ssm.send(new DescribeInstanceInformationCommand({})));

    const error = await rejection(
      ssm.send(new GetCommandInvocationCommand({ CommandId: 'nope', InstanceId: 'i-0123456789abcdef0' })),
    );

    expect(error.name).toBe('InvocationDoesNotExist');
  });

  it('leaves SSM unthrottled when the rule is off', async () => {
    const { ssm } = await frozenCloud({ rules: { ssmThrottling: false } });

    const results = await settle(60, () => ssm.send(new DescribeInstanceInformationCommand({})));

    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
  });
});

describe('ssmDelivery', () => {
  it('answers a tag-targeted SendCommand Pending with no target yet', async () => {
    const c = await cloud();
    await runningInstance(c.cloud, 'us-east-1a', { fleet: 'a' });

    const out = await c.ssm.send(
      new SendCommandCommand({ DocumentName: 'Echo', Targets: [{ Key: 'tag:fleet', Values: ['a'] }] }),
    );

    expect(out.Command).toMatchObject({ Status: 'Pending', TargetCount: 0 });
  });

  it('resolves tag targets at delivery: an instance tagged after the call is reached', async () => {
    const c = await cloud({ latency: { ssmInvocationVisible: [30, 30] } });
    const early = await runningInstance(c.cloud, 'us-east-1a', { fleet: 'b' });
    const late = await runningInstance(c.cloud, 'us-east-1a');
    const out = await c.ssm.send(
      new SendCommandCommand({ DocumentName: 'Echo', Targets: [{ Key: 'tag:fleet', Values: ['b'] }] }),
    );
    const commandId = out.Command?.CommandId ?? '';

    await c.ec2.send(new CreateTagsCommand({ Resources: [late], Tags: [{ Key: 'fleet', Value: 'b' }] }));
    await commandDone(c, commandId);

    expect(
      invocationsOf(c, commandId)
        .map((i) => i.instanceId)
        .sort(),
    ).toEqual([early, late].sort());
  });

  it('resolves tag targets at the call when the rule is off', async () => {
    const c = await cloud({ latency: { ssmInvocationVisible: [30, 30] }, rules: { ssmDelivery: false } });
    const early = await runningInstance(c.cloud, 'us-east-1a', { fleet: 'c' });
    const late = await runningInstance(c.cloud, 'us-east-1a');
    const out = await c.ssm.send(
      new SendCommandCommand({ DocumentName: 'Echo', Targets: [{ Key: 'tag:fleet', Values: ['c'] }] }),
    );
    const commandId = out.Command?.CommandId ?? '';

    await c.ec2.send(new CreateTagsCommand({ Resources: [late], Tags: [{ Key: 'fleet', Value: 'c' }] }));
    await commandDone(c, commandId);

    expect(invocationsOf(c, commandId).map((i) => i.instanceId)).toEqual([early]);
  });

  it('shows Delayed for an instance whose agent lost its connection', async () => {
    const c = await cloud();
    const instanceId = await runningInstance(c.cloud);
    c.cloud.ssm.setAgentConnection(instanceId, false);

    const out = await c.ssm.send(
      new SendCommandCommand({ DocumentName: 'Echo', InstanceIds: [instanceId], TimeoutSeconds: 600 }),
    );
    const commandId = out.Command?.CommandId ?? '';
    await c.cloud.waitFor(
      () => invocationsOf(c, commandId)[0]?.statusDetails === 'Delayed',
      300,
      'a Delayed invocation',
    );
    const invocation = await c.ssm.send(
      new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
    );

    expect(invocation).toMatchObject({ Status: 'Delayed', StatusDetails: 'Delayed', ResponseCode: -1 });
  });

  it('ends DeliveryTimedOut once TimeoutSeconds passed without delivery, never having run', async () => {
    const c = await cloud();
    const instanceId = await runningInstance(c.cloud);
    c.cloud.ssm.setAgentConnection(instanceId, false);
    const statuses: string[] = [];
    c.cloud.events.on('event', (e: { 'detail-type': string; detail: Record<string, unknown> }) => {
      if (e['detail-type'] === 'EC2 Command Invocation Status-change Notification')
        statuses.push(String(e.detail.status));
    });
    let ran = false;
    c.cloud.ssm.registerDocument('Echo', async () => {
      ran = true;
      return { exitCode: 0, stdout: '', stderr: '' };
    });

    const out = await c.ssm.send(
      new SendCommandCommand({ DocumentName: 'Echo', InstanceIds: [instanceId], TimeoutSeconds: 30 }),
    );
    const commandId = out.Command?.CommandId ?? '';
    await commandDone(c, commandId);
    const invocation = await c.ssm.send(
      new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
    );
    const listed = await c.ssm.send(new ListCommandsCommand({ CommandId: commandId }));

    expect(invocation).toMatchObject({
      Status: 'TimedOut',
      StatusDetails: 'DeliveryTimedOut',
      ResponseCode: -1,
    });
    expect(statuses).toEqual(['Delayed', 'TimedOut']);
    expect(listed.Commands?.[0]).toMatchObject({
      DeliveryTimedOutCount: 1,
      StatusDetails: 'DeliveryTimedOut',
    });
    expect(ran).toBe(false);
  });

  it('delivers a Delayed invocation once the agent is back before the timeout', async () => {
    const c = await cloud();
    const instanceId = await runningInstance(c.cloud);
    c.cloud.ssm.setAgentConnection(instanceId, false);
    const out = await c.ssm.send(
      new SendCommandCommand({ DocumentName: 'Echo', InstanceIds: [instanceId], TimeoutSeconds: 600 }),
    );
    const commandId = out.Command?.CommandId ?? '';
    await c.cloud.waitFor(
      () => invocationsOf(c, commandId)[0]?.statusDetails === 'Delayed',
      300,
      'a Delayed invocation',
    );

    c.cloud.ssm.setAgentConnection(instanceId, true);
    await commandDone(c, commandId);

    expect(invocationsOf(c, commandId)[0]).toMatchObject({ status: 'Success', responseCode: 0 });
  });

  it('lists an agent that lost its connection as ConnectionLost', async () => {
    const c = await cloud();
    const instanceId = await runningInstance(c.cloud);

    c.cloud.ssm.setAgentConnection(instanceId, false);
    const out = await c.ssm.send(new DescribeInstanceInformationCommand({}));

    expect(out.InstanceInformationList?.map((i) => [i.InstanceId, i.PingStatus])).toEqual([
      [instanceId, 'ConnectionLost'],
    ]);
  });

  it('refuses an offline agent with InvalidInstanceId when the rule is off', async () => {
    const c = await cloud({ rules: { ssmDelivery: false } });
    const instanceId = await runningInstance(c.cloud);
    c.cloud.ssm.setAgentConnection(instanceId, false);

    const error = await rejection(
      c.ssm.send(new SendCommandCommand({ DocumentName: 'Echo', InstanceIds: [instanceId] })),
    );

    expect(error).toBeInstanceOf(InvalidInstanceId);
  });

  it('still refuses an instance whose agent never registered with InvalidInstanceId', async () => {
    const c = await cloud();
    const instanceId = c.cloud.launchInstance({ az: 'us-east-1a', bootSeconds: 100_000 });

    const error = await rejection(
      c.ssm.send(new SendCommandCommand({ DocumentName: 'Echo', InstanceIds: [instanceId] })),
    );

    expect(error).toBeInstanceOf(InvalidInstanceId);
  });

  it('draws delivery latency with a tail: median near 1 s, p99 over 4x the median, capped at 30x', () => {
    const rng = new Rng(11);

    const draws = Array.from({ length: 4000 }, () => tailedDelivery(rng, [0.5, 1.5])).sort((a, b) => a - b);

    const at = (q: number) => draws[Math.floor(q * (draws.length - 1))] ?? Number.NaN;
    expect(at(0.5)).toBeGreaterThan(0.9);
    expect(at(0.5)).toBeLessThan(1.1);
    expect(at(0.99) / at(0.5)).toBeGreaterThan(4);
    expect(Math.max(...draws)).toBeLessThanOrEqual(30);
  });

  it('replays the same delivery latencies from the same seed', () => {
    const draw = (seed: number) => {
      const rng = new Rng(seed);
      return Array.from({ length: 20 }, () => tailedDelivery(rng, [0.5, 1.5]));
    };

    expect(draw(5)).toEqual(draw(5));
    expect(draw(5)).not.toEqual(draw(6));
  });

  it("keeps the handlers' poller waiting on a Delayed invocation (CommandPending)", async () => {
    const c = await cloud();
    const instanceId = await runningInstance(c.cloud);
    c.cloud.ssm.setAgentConnection(instanceId, false);
    const commandId = await sendDocument(c.ssm, { documentName: 'Echo', instanceId, parameters: {} });
    await c.cloud.waitFor(
      () => invocationsOf(c, commandId)[0]?.statusDetails === 'Delayed',
      300,
      'a Delayed invocation',
    );

    const error = await rejection(commandOutcome(c.ssm, commandId, instanceId));

    expect(error.name).toBe('CommandPending');
  });

  it("ends the handlers' poller with CommandFailed once the invocation is DeliveryTimedOut", async () => {
    const c = await cloud();
    const instanceId = await runningInstance(c.cloud);
    c.cloud.ssm.setAgentConnection(instanceId, false);
    const commandId = await sendDocument(c.ssm, {
      documentName: 'Echo',
      instanceId,
      parameters: {},
      timeoutSeconds: 30,
    });
    await commandDone(c, commandId);

    const error = await rejection(commandOutcome(c.ssm, commandId, instanceId));

    expect(error.name).toBe('CommandFailed');
    expect(error.message).toContain('TimedOut');
  });
});
