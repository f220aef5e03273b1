import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostApiClient } from '../../client/host-api.js';
import { signRequest } from '../../client/sigv4.js';
import { keys } from '../../lambdas/shared/table-schema.js';
import { executionName, WorkflowAction } from '../../lambdas/shared/workflow-input.js';
import { localCredentials } from '../../sandbox/servers.js';
import { readMounts } from '../../sandbox/sim/devices.js';
import { type ClientWorld, startWorld } from './harness.js';

let world: ClientWorld;
/** The victim: holds a pool volume, acquired through the host API with its own credentials. */
let victim: string;
/** The attacker: another host of the pool, with its own instance-profile credentials. */
let attacker: string;
let victimVolume: string;
let acquireArn: string;

const region = 'us-east-1';
const hostApiOf = (instanceId: string) =>
  new HostApiClient(world.gateway.hostApiUrl, region, async () => world.gateway.hostCredentials(instanceId));

/** EC2's truth: the pool volumes attached to `instanceId`. */
function attachedTo(instanceId: string): string[] {
  return world.sandbox.cloud.ec2
    .view()
    .volumes.filter(
      (v) => !v.root && v.attachment?.instanceId === instanceId && v.attachment.state === 'attached',
    )
    .map((v) => v.volumeId);
}

/** The victim's volume is still attached and mounted on the victim, as EC2 and its host tree say. */
function victimUntouched(): void {
  expect(attachedTo(victim)).toEqual([victimVolume]);
  expect(readMounts(world.sandbox.cloud.hostRoot(victim)).map((m) => m.mountPoint)).toEqual(['/srv/www']);
}

beforeAll(async () => {
  // The modelled scripts: this file is about who may act, not about the scripts' wall-clock time.
  world = await startWorld({ azs: 1, idlePerAz: 2, timeScale: 0.02, seed: 18, agent: 'model' });
  const [hosts] = await Promise.all([
    Promise.all([world.launchHost(), world.launchHost()]),
    world.fillPool(),
  ]);
  [victim = '', attacker = ''] = hosts;
  const started = await hostApiOf(victim).acquire({ pool: 'web', requestId: 'victim-1' });
  acquireArn = started.executionArn;
  await world.sandbox.settle();
  [victimVolume = ''] = attachedTo(victim);
  if (!victimVolume) {
    const e = world.sandbox.sfn.executions.get(acquireArn);
    throw new Error(`the victim's acquire attached nothing: ${e?.status} ${e?.error} ${e?.cause}`);
  }
}, 180_000);

afterAll(async () => {
  await world?.stop();
});

describe("a host's own credentials act only for that host", () => {
  it("the host API started the acquire for the instance that signed it, under that instance's name", () => {
    expect(world.sandbox.sfn.executions.get(acquireArn)?.name).toBe(
      executionName({
        pool: 'web',
        instanceId: victim,
        action: WorkflowAction.ManualAcquire,
        requestId: 'victim-1',
      }),
    );
    victimUntouched();
  });

  it('refuses StartExecution of the release workflow naming another instance (AccessDenied), and nothing is detached', async () => {
    const sfn = new SFNClient({
      endpoint: world.gateway.url,
      region,
      credentials: world.gateway.hostCredentials(attacker),
      maxAttempts: 1,
    });
    try {
      const input = {
        pool: 'web',
        instanceId: victim,
        action: WorkflowAction.ManualRelease,
        requestId: 'attack-1',
      };
      await expect(
        sfn.send(
          new StartExecutionCommand({
            stateMachineArn: world.sandbox.wiring.stateMachines.release,
            name: executionName(input),
            input: JSON.stringify(input),
          }),
        ),
      ).rejects.toMatchObject({
        name: 'AccessDeniedException',
        message: expect.stringContaining(`assumed-role/volsd-sandbox-host/${attacker} is not authorized`),
      });
    } finally {
      sfn.destroy();
    }
    await world.sandbox.settle();
    victimUntouched();
  });

  it("refuses reading another instance's assignment from the table", async () => {
    const doc = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        endpoint: world.gateway.url,
        region,
        credentials: world.gateway.hostCredentials(attacker),
        maxAttempts: 1,
      }),
    );
    try {
      await expect(
        doc.send(new GetCommand({ TableName: world.sandbox.wiring.tableName, Key: keys.assignment(victim) })),
      ).rejects.toMatchObject({ name: 'AccessDeniedException' });
    } finally {
      doc.destroy();
    }
  });

  it('refuses a host API release whose body names another instance, and nothing is detached', async () => {
    const answer = hostApiOf(attacker).release({
      pool: 'web',
      requestId: 'attack-2',
      instanceId: victim,
    } as never);

    await expect(answer).rejects.toMatchObject({ code: 'InvalidInput' });
    await world.sandbox.settle();
    victimUntouched();
  });

  it('a host API release releases the caller only: the attacker holds nothing, the victim keeps its volume', async () => {
    const started = await hostApiOf(attacker).release({ pool: 'web', requestId: 'attack-3' });
    await world.sandbox.settle();

    expect(started.instanceId).toBe(attacker);
    const execution = world.sandbox.sfn.executions.get(started.executionArn);
    expect(execution?.status).toBe('SUCCEEDED');
    expect(JSON.parse(execution?.input ?? '{}')).toMatchObject({ instanceId: attacker });
    victimUntouched();
  });

  it("answers another instance's execution as not found", async () => {
    await expect(hostApiOf(attacker).execution({ executionArn: acquireArn })).rejects.toMatchObject({
      code: 'ExecutionNotFound',
    });
  });

  it("refuses a request signed under the victim's key id without its secret (403), and nothing is detached", async () => {
    const { accessKeyId, sessionToken } = world.gateway.hostCredentials(victim);
    const forged = {
      accessKeyId,
      sessionToken,
      secretAccessKey: world.gateway.hostCredentials(attacker).secretAccessKey,
    };
    const url = new URL('release', world.gateway.hostApiUrl);
    const body = JSON.stringify({ pool: 'web', requestId: 'attack-4' });
    const { host: _host, ...headers } = await signRequest(
      { method: 'POST', url, headers: { 'content-type': 'application/json' }, body },
      forged,
      region,
      'lambda',
    );
    const response = await fetch(url, { method: 'POST', headers, body });

    expect(response.status).toBe(403);
    await world.sandbox.settle();
    victimUntouched();
  });

  it('refuses credentials of another instance than the one a request names (403 NotThisHost), before anything starts', async () => {
    // What volsd-client on the attacker sends when it signs, by mistake, with the victim's credentials.
    const mixedUp = hostApiOf(victim).release({
      pool: 'web',
      requestId: 'mixup-1',
      expectedInstanceId: attacker,
    });

    await expect(mixedUp).rejects.toMatchObject({ code: 'NotThisHost', exitCode: 4 });
    await world.sandbox.settle();
    const startedForIt = [...world.sandbox.sfn.executions.values()].filter((e) =>
      e.input.includes('mixup-1'),
    );
    expect(startedForIt).toEqual([]);
    victimUntouched();
  });

  it("answers one of the host's own execution names that does not exist as not found, as another's", async () => {
    const missing = acquireArn.replace(/:[^:]+$/, `:${WorkflowAction.ManualAcquire}-${attacker}-none`);

    await expect(hostApiOf(attacker).execution({ executionArn: missing })).rejects.toMatchObject({
      code: 'ExecutionNotFound',
      details: expect.objectContaining({ status: 404 }),
    });
  });

  it('answers an acquire repeated with its request id (a lost answer) with the execution it started', async () => {
    const again = await hostApiOf(victim).acquire({ pool: 'web', requestId: 'victim-1' });
    expect(again.executionArn).toBe(acquireArn);

    // A new request of a host that holds its volume is still refused.
    await expect(hostApiOf(victim).acquire({ pool: 'web', requestId: 'victim-2' })).rejects.toMatchObject({
      code: 'VolumeAlreadyHeld',
    });
    await world.sandbox.settle();
    victimUntouched();
  });

  it('answers a release repeated with its request id after that release ended with the same execution', async () => {
    const first = await hostApiOf(attacker).release({ pool: 'web', requestId: 'repeat-1' });
    await world.sandbox.settle();
    expect(world.sandbox.sfn.executions.get(first.executionArn)?.status).toBe('SUCCEEDED');

    const again = await hostApiOf(attacker).release({ pool: 'web', requestId: 'repeat-1' });

    expect(again.executionArn).toBe(first.executionArn);
    const runs = [...world.sandbox.sfn.executions.values()].filter((e) => e.input.includes('repeat-1'));
    expect(runs).toHaveLength(1);
  });

  it("refuses the operator's keys at the host API: only an instance's role session is a host", async () => {
    const operatorApi = new HostApiClient(world.gateway.hostApiUrl, region, async () => localCredentials);

    await expect(operatorApi.release({ pool: 'web', requestId: 'operator-1' })).rejects.toMatchObject({
      details: expect.objectContaining({ error: 'NotAnInstanceSession' }),
    });
    victimUntouched();
  });

  it("lets the operator release another instance's volume with the release workflow", async () => {
    const sfn = new SFNClient({
      endpoint: world.gateway.url,
      region,
      credentials: localCredentials,
      maxAttempts: 1,
    });
    try {
      const input = {
        pool: 'web',
        instanceId: victim,
        action: WorkflowAction.ManualRelease,
        requestId: 'operator-2',
      };
      await sfn.send(
        new StartExecutionCommand({
          stateMachineArn: world.sandbox.wiring.stateMachines.release,
          name: executionName(input),
          input: JSON.stringify(input),
        }),
      );
    } finally {
      sfn.destroy();
    }
    await world.sandbox.settle();

    expect(attachedTo(victim)).toEqual([]);
    expect(readMounts(world.sandbox.cloud.hostRoot(victim))).toEqual([]);
  });
});
