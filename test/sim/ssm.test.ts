import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AttachVolumeCommand, CreateVolumeCommand } from '@aws-sdk/client-ec2';
import {
  DeleteParameterCommand,
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  GetParameterCommand,
  GetParametersByPathCommand,
  InvalidInstanceId,
  InvocationDoesNotExist,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  PutParameterCommand,
  SendCommandCommand,
} from '@aws-sdk/client-ssm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RunnerContext } from '../../sandbox/sim/ssm.js';
import { type Harness, harness, rejection, runningInstance } from './harness.js';

let h: Harness;

beforeEach(async () => {
  h = await harness();
  h.cloud.ssm.registerDocument('Echo', async (ctx) => ({
    exitCode: 0,
    stdout: `hello from ${ctx.instanceId} ${JSON.stringify(ctx.parameters)}`,
    stderr: '',
  }));
  h.cloud.ssm.registerDocument('Fail', async () => ({ exitCode: 3, stdout: 'partial', stderr: 'boom' }));
});

afterEach(async () => {
  await h.dispose();
});

function command(commandId: string) {
  return h.cloud.snapshotState().commands.find((c) => c.commandId === commandId);
}

async function finished(commandId: string): Promise<void> {
  const done = new Set(['Success', 'Failed', 'TimedOut', 'Cancelled']);
  await h.cloud.waitFor(() => done.has(command(commandId)?.status ?? ''), 20_000, `command ${commandId}`);
}

async function send(input: ConstructorParameters<typeof SendCommandCommand>[0]): Promise<string> {
  const out = await h.ssm.send(new SendCommandCommand(input));
  return out.Command?.CommandId ?? '';
}

describe('SendCommand by instance ids', () => {
  it('runs the document and reports Success with its output', async () => {
    const instanceId = await runningInstance(h.cloud);

    const commandId = await send({
      DocumentName: 'Echo',
      InstanceIds: [instanceId],
      Parameters: { x: ['1'] },
    });
    await finished(commandId);
    const out = await h.ssm.send(
      new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
    );

    expect(out).toMatchObject({
      CommandId: commandId,
      InstanceId: instanceId,
      DocumentName: 'Echo',
      Status: 'Success',
      StatusDetails: 'Success',
      ResponseCode: 0,
      StandardOutputContent: `hello from ${instanceId} {"x":["1"]}`,
      StandardErrorContent: '',
    });
    expect(Date.parse(out.ExecutionStartDateTime ?? '')).not.toBeNaN();
    expect(out.ExecutionElapsedTime).toMatch(/^PT[\d.]+S$/);
  });

  it('answers the SendCommand with the command in Pending and its rate controls', async () => {
    const instanceId = await runningInstance(h.cloud);

    const out = await h.ssm.send(
      new SendCommandCommand({ DocumentName: 'Echo', InstanceIds: [instanceId], Comment: 'hi' }),
    );

    expect(out.Command).toMatchObject({
      Status: 'Pending',
      DocumentName: 'Echo',
      Comment: 'hi',
      InstanceIds: [instanceId],
      MaxConcurrency: '50',
      MaxErrors: '0',
      TargetCount: 1,
    });
    expect(out.Command?.CommandId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers InvocationDoesNotExist before the invocation exists', async () => {
    await h.dispose();
    h = await harness({ latency: { ssmInvocationVisible: [100, 100] } });
    h.cloud.ssm.registerDocument('Echo', async () => ({ exitCode: 0, stdout: '', stderr: '' }));
    const instanceId = await runningInstance(h.cloud);
    const commandId = await send({ DocumentName: 'Echo', InstanceIds: [instanceId] });

    const error = await rejection(
      h.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId })),
    );

    expect(error).toBeInstanceOf(InvocationDoesNotExist);
  });

  it('reports Failed with the exit code and stderr of a failing document', async () => {
    const instanceId = await runningInstance(h.cloud);

    const commandId = await send({ DocumentName: 'Fail', InstanceIds: [instanceId] });
    await finished(commandId);
    const out = await h.ssm.send(
      new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
    );

    expect(out).toMatchObject({
      Status: 'Failed',
      ResponseCode: 3,
      StandardOutputContent: 'partial',
      StandardErrorContent: 'boom',
    });
    expect(command(commandId)?.status).toBe('Failed');
  });

  it('truncates stdout to 24000 and stderr to 8000 characters', async () => {
    h.cloud.ssm.registerDocument('Loud', async () => ({
      exitCode: 0,
      stdout: 'o'.repeat(30_000),
      stderr: 'e'.repeat(10_000),
    }));
    const instanceId = await runningInstance(h.cloud);

    const commandId = await send({ DocumentName: 'Loud', InstanceIds: [instanceId] });
    await finished(commandId);
    const out = await h.ssm.send(
      new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
    );

    expect(out.StandardOutputContent).toHaveLength(24_000);
    expect(out.StandardErrorContent).toHaveLength(8_000);
  });

  it('refuses more than 50 instance ids with ValidationException', async () => {
    const ids = Array.from({ length: 51 }, (_, n) => `i-${n.toString(16).padStart(17, '0')}`);

    const error = await rejection(
      h.ssm.send(new SendCommandCommand({ DocumentName: 'Echo', InstanceIds: ids })),
    );

    expect(error.name).toBe('ValidationException');
  });

  it('refuses an instance whose agent is not registered yet, or a terminated one, with InvalidInstanceId', async () => {
    const booting = h.cloud.launchInstance({ az: 'us-east-1a', bootSeconds: 100_000 });
    const gone = await runningInstance(h.cloud);
    h.cloud.terminateInstance(gone);

    const first = await rejection(
      h.ssm.send(new SendCommandCommand({ DocumentName: 'Echo', InstanceIds: [booting] })),
    );
    const second = await rejection(
      h.ssm.send(new SendCommandCommand({ DocumentName: 'Echo', InstanceIds: [gone] })),
    );

    expect(first).toBeInstanceOf(InvalidInstanceId);
    expect(second).toBeInstanceOf(InvalidInstanceId);
  });

  it('refuses an unknown document with InvalidDocument', async () => {
    const instanceId = await runningInstance(h.cloud);

    const error = await rejection(
      h.ssm.send(new SendCommandCommand({ DocumentName: 'Nope', InstanceIds: [instanceId] })),
    );

    expect(error.name).toBe('InvalidDocument');
  });
});

describe('SendCommand by tag targets', () => {
  it('reaches the tagged running instances only', async () => {
    const a = await runningInstance(h.cloud, 'us-east-1a', { 'volsd:pool': 'web' });
    const b = await runningInstance(h.cloud, 'us-east-1b', { 'volsd:pool': 'web' });
    await runningInstance(h.cloud, 'us-east-1a', { 'volsd:pool': 'other' });
    h.cloud.launchInstance({ az: 'us-east-1a', tags: { 'volsd:pool': 'web' }, bootSeconds: 100_000 });

    const commandId = await send({
      DocumentName: 'Echo',
      Targets: [{ Key: 'tag:volsd:pool', Values: ['web'] }],
    });
    await finished(commandId);

    expect(
      command(commandId)
        ?.invocations.map((i) => i.instanceId)
        .sort(),
    ).toEqual([a, b].sort());
    expect(command(commandId)?.status).toBe('Success');
  });

  it('succeeds with NoInstancesInTag when nothing matches', async () => {
    // Tag targets are resolved at delivery (rule ssmDelivery): the answer to SendCommand is Pending.
    const commandId = await send({ DocumentName: 'Echo', Targets: [{ Key: 'tag:none', Values: ['x'] }] });
    await finished(commandId);
    const out = await h.ssm.send(new ListCommandsCommand({ CommandId: commandId }));

    expect(out.Commands?.[0]).toMatchObject({
      Status: 'Success',
      StatusDetails: 'NoInstancesInTag',
      TargetCount: 0,
    });
  });
});

describe('rate control', () => {
  it('stops the remaining invocations once MaxErrors is exceeded', async () => {
    for (let n = 0; n < 3; n++) await runningInstance(h.cloud, 'us-east-1a', { fleet: 'f' });

    const commandId = await send({
      DocumentName: 'Fail',
      Targets: [{ Key: 'tag:fleet', Values: ['f'] }],
      MaxConcurrency: '1',
      MaxErrors: '0',
    });
    await finished(commandId);
    const out = await h.ssm.send(new ListCommandInvocationsCommand({ CommandId: commandId }));

    const details = out.CommandInvocations?.map((i) => i.StatusDetails).sort();
    expect(details).toEqual(['Failed', 'Terminated', 'Terminated']);
    expect(command(commandId)).toMatchObject({ status: 'Failed', statusDetails: 'Failed' });
  });

  it('never runs more invocations at once than MaxConcurrency', async () => {
    let running = 0;
    let peak = 0;
    h.cloud.ssm.registerDocument('Slow', async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return { exitCode: 0, stdout: '', stderr: '' };
    });
    for (let n = 0; n < 4; n++) await runningInstance(h.cloud, 'us-east-1b', { fleet: 'g' });

    const commandId = await send({
      DocumentName: 'Slow',
      Targets: [{ Key: 'tag:fleet', Values: ['g'] }],
      MaxConcurrency: '2',
    });
    await finished(commandId);

    expect(peak).toBe(2);
    expect(command(commandId)?.status).toBe('Success');
  });
});

describe('execution', () => {
  it('times out a hanging document at executionTimeout and aborts it', async () => {
    let aborted = false;
    h.cloud.ssm.registerDocument('Hang', (ctx: RunnerContext) => {
      return new Promise((resolve) => {
        ctx.signal.addEventListener('abort', () => {
          aborted = true;
          resolve({ exitCode: 143, stdout: '', stderr: 'killed' });
        });
      });
    });
    const instanceId = await runningInstance(h.cloud);

    const commandId = await send({
      DocumentName: 'Hang',
      InstanceIds: [instanceId],
      Parameters: { executionTimeout: ['60'] },
    });
    await finished(commandId);
    const out = await h.ssm.send(
      new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
    );

    expect(out).toMatchObject({ Status: 'TimedOut', StatusDetails: 'ExecutionTimedOut' });
    expect(aborted).toBe(true);
  });

  it('gives the runner the attached devices, materialised under the host root', async () => {
    const instanceId = await runningInstance(h.cloud);
    const created = await h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 1 }));
    const volumeId = created.VolumeId ?? '';
    await h.cloud.waitFor(
      () => h.cloud.snapshotState().volumes.some((v) => v.volumeId === volumeId && v.state === 'available'),
      60,
    );
    await h.ec2.send(
      new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' }),
    );
    await h.cloud.waitFor(() => h.cloud.ec2.devicesOf(instanceId).length === 1, 60);
    let seen: RunnerContext | undefined;
    let deviceFile = '';
    h.cloud.ssm.registerDocument('Look', async (ctx) => {
      seen = ctx;
      deviceFile = readFileSync(join(ctx.hostRoot, 'dev', 'nvme1n1'), 'utf8');
      return { exitCode: 0, stdout: '', stderr: '' };
    });

    await finished(await send({ DocumentName: 'Look', InstanceIds: [instanceId] }));

    expect(seen?.devices).toEqual([
      {
        device: '/dev/nvme1n1',
        serial: volumeId.replace('-', ''),
        volumeId,
        attachDevice: '/dev/sdf',
        sizeBytes: 1024 ** 3,
      },
    ]);
    expect(seen?.hostRoot).toBe(h.cloud.hostRoot(instanceId));
    expect(deviceFile).toBe(h.cloud.volumeDataDir(volumeId));
  });

  it('fails the invocation on an ssmFailure fault for that instance only', async () => {
    const a = await runningInstance(h.cloud, 'us-east-1a', { fleet: 'h' });
    const b = await runningInstance(h.cloud, 'us-east-1a', { fleet: 'h' });
    h.cloud.faults.once('ssmFailure', { instanceId: a });

    const commandId = await send({ DocumentName: 'Echo', InstanceIds: [a, b], MaxErrors: '1' });
    await finished(commandId);

    const byInstance = Object.fromEntries(
      command(commandId)?.invocations.map((i) => [i.instanceId, i.status]) ?? [],
    );
    expect(byInstance).toEqual({ [a]: 'Failed', [b]: 'Success' });
    expect(h.cloud.faults.counts().ssmFailure).toBe(1);
  });

  it('marks an invocation Undeliverable on an ssmUndeliverable fault, which MaxErrors does not count', async () => {
    const a = await runningInstance(h.cloud);
    const b = await runningInstance(h.cloud);
    h.cloud.faults.once('ssmUndeliverable', { instanceId: a });

    const commandId = await send({ DocumentName: 'Echo', InstanceIds: [a, b] });
    await finished(commandId);

    expect(command(commandId)?.invocations.find((i) => i.instanceId === a)?.statusDetails).toBe(
      'Undeliverable',
    );
    expect(command(commandId)).toMatchObject({ status: 'Success', statusDetails: 'Success' });
  });

  it('fails an invocation whose instance terminates during the run', async () => {
    h.cloud.ssm.registerDocument(
      'Wait',
      (ctx) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => resolve({ exitCode: 143, stdout: '', stderr: '' }));
        }),
    );
    const instanceId = await runningInstance(h.cloud);
    const commandId = await send({ DocumentName: 'Wait', InstanceIds: [instanceId] });
    await h.cloud.waitFor(() => command(commandId)?.invocations[0]?.statusDetails === 'InProgress', 60);

    h.cloud.terminateInstance(instanceId);
    await finished(commandId);

    expect(command(commandId)?.invocations[0]).toMatchObject({ status: 'Failed', responseCode: -1 });
  });

  it('sends the aws.ssm status-change events', async () => {
    const seen: { 'detail-type': string; detail: { status: string } }[] = [];
    h.cloud.events.on('event', (e) => seen.push(e));
    const instanceId = await runningInstance(h.cloud);

    await finished(await send({ DocumentName: 'Echo', InstanceIds: [instanceId] }));

    const invocationStatuses = seen
      .filter((e) => e['detail-type'] === 'EC2 Command Invocation Status-change Notification')
      .map((e) => e.detail.status);
    expect(invocationStatuses).toEqual(['InProgress', 'Success']);
    expect(
      seen.some(
        (e) => e['detail-type'] === 'EC2 Command Status-change Notification' && e.detail.status === 'Success',
      ),
    ).toBe(true);
  });
});

describe('listing', () => {
  it('ListCommands reports counts and ListCommandInvocations details', async () => {
    const instanceId = await runningInstance(h.cloud);
    const commandId = await send({ DocumentName: 'Fail', InstanceIds: [instanceId] });
    await finished(commandId);

    const commands = await h.ssm.send(new ListCommandsCommand({ CommandId: commandId }));
    const invocations = await h.ssm.send(
      new ListCommandInvocationsCommand({ CommandId: commandId, Details: true }),
    );

    expect(commands.Commands?.[0]).toMatchObject({
      Status: 'Failed',
      TargetCount: 1,
      CompletedCount: 1,
      ErrorCount: 1,
    });
    expect(invocations.CommandInvocations?.[0]?.CommandPlugins?.[0]).toMatchObject({
      ResponseCode: 3,
      Status: 'Failed',
    });
  });

  it('DescribeInstanceInformation lists instances whose agent is online', async () => {
    const online = await runningInstance(h.cloud);
    h.cloud.launchInstance({ az: 'us-east-1a', bootSeconds: 100_000 });

    const out = await h.ssm.send(new DescribeInstanceInformationCommand({}));

    expect(out.InstanceInformationList?.map((i) => [i.InstanceId, i.PingStatus])).toEqual([
      [online, 'Online'],
    ]);
  });
});

describe('Parameter Store', () => {
  it('stores, versions and returns parameters', async () => {
    await h.ssm.send(new PutParameterCommand({ Name: '/volsd/web/generation', Value: '1', Type: 'String' }));

    const put = await h.ssm.send(
      new PutParameterCommand({ Name: '/volsd/web/generation', Value: '2', Overwrite: true }),
    );
    const got = await h.ssm.send(new GetParameterCommand({ Name: '/volsd/web/generation' }));

    expect(put.Version).toBe(2);
    expect(got.Parameter).toMatchObject({
      Name: '/volsd/web/generation',
      Value: '2',
      Version: 2,
      Type: 'String',
    });
    expect(got.Parameter?.ARN).toBe('arn:aws:ssm:us-east-1:123456789012:parameter/volsd/web/generation');
  });

  it('refuses to overwrite without Overwrite', async () => {
    await h.ssm.send(new PutParameterCommand({ Name: '/p', Value: '1', Type: 'String' }));

    const error = await rejection(h.ssm.send(new PutParameterCommand({ Name: '/p', Value: '2' })));

    expect(error.name).toBe('ParameterAlreadyExists');
  });

  it('answers ParameterNotFound for a missing or deleted parameter', async () => {
    await h.ssm.send(new PutParameterCommand({ Name: '/gone', Value: '1', Type: 'String' }));
    await h.ssm.send(new DeleteParameterCommand({ Name: '/gone' }));

    const error = await rejection(h.ssm.send(new GetParameterCommand({ Name: '/gone' })));

    expect(error.name).toBe('ParameterNotFound');
  });

  it('lists by path, one level or recursively', async () => {
    for (const name of ['/volsd/a', '/volsd/b', '/volsd/deep/c', '/other/d']) {
      await h.ssm.send(new PutParameterCommand({ Name: name, Value: 'v', Type: 'String' }));
    }

    const flat = await h.ssm.send(new GetParametersByPathCommand({ Path: '/volsd' }));
    const deep = await h.ssm.send(new GetParametersByPathCommand({ Path: '/volsd/', Recursive: true }));

    expect(flat.Parameters?.map((p) => p.Name)).toEqual(['/volsd/a', '/volsd/b']);
    expect(deep.Parameters?.map((p) => p.Name)).toEqual(['/volsd/a', '/volsd/b', '/volsd/deep/c']);
  });
});

describe('host trees', () => {
  it('each instance has its own root with dev/ and proc/mounts', async () => {
    const instanceId = await runningInstance(h.cloud);

    const root = h.cloud.hostRoot(instanceId);

    expect(existsSync(join(root, 'dev', 'disk', 'by-id'))).toBe(true);
    expect(readFileSync(join(root, 'proc', 'mounts'), 'utf8')).toBe('');
  });
});
