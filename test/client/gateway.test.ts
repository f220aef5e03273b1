import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DescribeExecutionCommand,
  ExecutionDoesNotExist,
  GetExecutionHistoryCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import {
  GetParameterCommand,
  GetParametersByPathCommand,
  ParameterNotFound,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configParameterNames } from '../../client/pool-config.js';
import { keys } from '../../lambdas/shared/table-schema.js';
import { poolTag, Role, roleTag } from '../../lambdas/shared/tags.js';
import { type Gateway, startGateway } from '../../sandbox/gateway/gateway.js';
import { publishConfig } from '../../sandbox/gateway/publish-config.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { localCredentials } from '../../sandbox/servers.js';

let sandbox: Sandbox;
let gateway: Gateway;
let sfn: SFNClient;
let ssm: SSMClient;
let doc: DynamoDBDocumentClient;
let host: string;
let published: Record<string, string>;

beforeAll(async () => {
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: 0, timeScale: 0.01, seed: 5 });
  gateway = await startGateway(sandbox);
  published = await publishConfig(sandbox);
  const common = {
    endpoint: gateway.url,
    region: 'us-east-1',
    credentials: localCredentials,
    maxAttempts: 1,
  };
  sfn = new SFNClient(common);
  ssm = new SSMClient(common);
  doc = DynamoDBDocumentClient.from(new DynamoDBClient(common));
  host = sandbox.cloud.launchInstance({
    az: 'us-east-1a',
    tags: { [poolTag]: 'web', [roleTag]: Role.Client },
  });
}, 60_000);

afterAll(async () => {
  for (const client of [sfn, ssm, doc]) client?.destroy();
  await gateway?.stop();
  await sandbox?.settle().catch(() => undefined);
  await sandbox?.stop();
});

describe('Step Functions through the gateway', () => {
  it('raises the SDK exception class the JSON error names', async () => {
    const missing = 'arn:aws:states:us-east-1:123456789012:execution:acquire:nope';

    const call = sfn.send(new DescribeExecutionCommand({ executionArn: missing }));

    await expect(call).rejects.toBeInstanceOf(ExecutionDoesNotExist);
    await expect(call).rejects.toThrow(`Execution Does Not Exist: '${missing}'`);
  });

  it('starts an execution of the local state machine and describes it with real dates', async () => {
    const started = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn: sandbox.wiring.stateMachines.replenish,
        name: 'gateway-describe',
        input: JSON.stringify({ pool: 'web', az: 'us-east-1a', reason: 'admin' }),
      }),
    );
    await sandbox.sfn.executions.get(started.executionArn ?? '')?.done;

    const described = await sfn.send(new DescribeExecutionCommand({ executionArn: started.executionArn }));

    expect(described.status).toBe('SUCCEEDED');
    expect(described.startDate).toBeInstanceOf(Date);
    expect(described.startDate?.getTime()).toBe(started.startDate?.getTime());
    expect(described.name).toBe('gateway-describe');
  });

  it('rebuilds GetExecutionHistory from the states entered, with the state types of the ASL', async () => {
    const execution = sandbox.sfn.executions.get(
      `arn:aws:states:us-east-1:123456789012:execution:replenish:gateway-describe`,
    );

    const history = await sfn.send(
      new GetExecutionHistoryCommand({ executionArn: execution?.executionArn, maxResults: 1000 }),
    );

    const events = history.events ?? [];
    expect(events[0]?.type).toBe('ExecutionStarted');
    expect(events.at(-1)?.type).toBe('ExecutionSucceeded');
    expect(events.slice(1, -1).map((e) => e.stateEnteredEventDetails?.name)).toEqual(
      execution?.path.map((p) => p.state),
    );
    expect(events.find((e) => e.stateEnteredEventDetails?.name === 'Init')?.type).toBe('PassStateEntered');
    expect(events.find((e) => e.stateEnteredEventDetails?.name === 'Plan')?.type).toBe('TaskStateEntered');
  });

  it('pages GetExecutionHistory newest first with reverseOrder', async () => {
    const executionArn = 'arn:aws:states:us-east-1:123456789012:execution:replenish:gateway-describe';

    const first = await sfn.send(
      new GetExecutionHistoryCommand({ executionArn, reverseOrder: true, maxResults: 2 }),
    );
    const second = await sfn.send(
      new GetExecutionHistoryCommand({
        executionArn,
        reverseOrder: true,
        maxResults: 2,
        nextToken: first.nextToken,
      }),
    );

    expect(first.events?.map((e) => e.type)[0]).toBe('ExecutionSucceeded');
    expect(first.nextToken).toBeDefined();
    expect(second.events?.[0]?.id).toBe((first.events?.[1]?.id ?? 0) - 1);
  });
});

describe('SSM and DynamoDB through the gateway', () => {
  it('serves the published pool configuration under /volsd/<pool>', async () => {
    const out = await ssm.send(new GetParametersByPathCommand({ Path: '/volsd/web' }));

    const byName = Object.fromEntries((out.Parameters ?? []).map((p) => [p.Name, p.Value]));
    expect(byName).toEqual(published);
    expect(byName).toMatchObject({
      [`/volsd/web/${configParameterNames.tableName}`]: sandbox.wiring.tableName,
      [`/volsd/web/${configParameterNames.pushBucketName}`]: sandbox.wiring.bucket,
      [`/volsd/web/${configParameterNames.mountPath}`]: '/srv/www',
      [`/volsd/web/${configParameterNames.acquireStateMachineArn}`]: sandbox.wiring.stateMachines.acquire,
      [`/volsd/web/${configParameterNames.releaseStateMachineArn}`]: sandbox.wiring.stateMachines.release,
      [`/volsd/web/${configParameterNames.replenishStateMachineArn}`]: sandbox.wiring.stateMachines.replenish,
    });
  });

  it('raises ParameterNotFound for a parameter that does not exist', async () => {
    const call = ssm.send(new GetParameterCommand({ Name: '/volsd/web/nothing' }));

    await expect(call).rejects.toBeInstanceOf(ParameterNotFound);
  });

  it('denies a switched-off action with AccessDeniedException naming it, and allows it again', async () => {
    gateway.deny('ssm:GetParameter');
    const denied = await ssm.send(new GetParameterCommand({ Name: '/volsd/web/table-name' })).catch((e) => e);
    gateway.allow('ssm:GetParameter');
    const allowed = await ssm.send(new GetParameterCommand({ Name: '/volsd/web/table-name' }));

    expect(denied).toMatchObject({ name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } });
    expect(String(denied.message)).toContain(
      'is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:us-east-1:123456789012:parameter/volsd/web/table-name',
    );
    expect(allowed.Parameter?.Value).toBe(sandbox.wiring.tableName);
  });

  it('forwards DynamoDB calls to the sandbox table and records every action called', async () => {
    const out = await doc.send(
      new GetCommand({ TableName: sandbox.wiring.tableName, Key: keys.pool('web') }),
    );

    expect(out.Item).toMatchObject({ pool: 'web', azs: ['us-east-1a'] });
    expect(gateway.calls.at(-1)).toBe('dynamodb:GetItem');
    expect(gateway.calls).toContain('ssm:GetParametersByPath');
  });

  it('answers an unknown target with UnknownOperationException in the JSON protocol shape', async () => {
    const response = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'x-amz-target': 'AWSLambda.Invoke', 'content-type': 'application/x-amz-json-1.0' },
      body: '{}',
    });

    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      __type: 'UnknownOperationException',
      message: "unknown target 'AWSLambda.Invoke'",
    });
  });
});

describe('IMDSv2', () => {
  const token = async (base: string, headers: Record<string, string> = {}) =>
    fetch(`${base}/latest/api/token`, {
      method: 'PUT',
      headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60', ...headers },
    });

  it('refuses a GET without a session token with 401', async () => {
    const imds = await gateway.imdsFor(host);

    const response = await fetch(`${imds}/latest/meta-data/instance-id`);

    expect(response.status).toBe(401);
  });

  it('refuses a token request without a TTL (400) or with X-Forwarded-For (403)', async () => {
    const imds = await gateway.imdsFor(host);

    const noTtl = await fetch(`${imds}/latest/api/token`, { method: 'PUT' });
    const forwarded = await token(imds, { 'x-forwarded-for': '10.0.0.1' });

    expect(noTtl.status).toBe(400);
    expect(forwarded.status).toBe(403);
  });

  it("serves the instance's id, AZ, identity document and tags with a token", async () => {
    const imds = await gateway.imdsFor(host);
    const session = await (await token(imds)).text();
    const get = async (path: string) =>
      (await fetch(`${imds}${path}`, { headers: { 'x-aws-ec2-metadata-token': session } })).text();

    const id = await get('/latest/meta-data/instance-id');
    const az = await get('/latest/meta-data/placement/availability-zone');
    const document = JSON.parse(await get('/latest/dynamic/instance-identity/document'));
    const tag = await get(`/latest/meta-data/tags/instance/${encodeURIComponent(poolTag)}`);

    expect(id).toBe(host);
    expect(az).toBe('us-east-1a');
    expect(document).toMatchObject({
      instanceId: host,
      availabilityZone: 'us-east-1a',
      region: 'us-east-1',
      accountId: '123456789012',
    });
    expect(tag).toBe('web');
  });

  it('accepts a token only on the metadata service that issued it', async () => {
    const imds = await gateway.imdsFor(host);
    const session = await (await token(gateway.url)).text();

    const response = await fetch(`${imds}/latest/meta-data/instance-id`, {
      headers: { 'x-aws-ec2-metadata-token': session },
    });

    expect(response.status).toBe(401);
  });

  it("answers 404 on the gateway's own paths until it is told which instance to serve", async () => {
    const session = await (await token(gateway.url)).text();
    const get = () =>
      fetch(`${gateway.url}/latest/meta-data/instance-id`, {
        headers: { 'x-aws-ec2-metadata-token': session },
      });

    const before = await get();
    gateway.serveInstance(host);
    const after = await get();
    gateway.serveInstance(undefined);

    expect(before.status).toBe(404);
    expect(await after.text()).toBe(host);
  });
});
