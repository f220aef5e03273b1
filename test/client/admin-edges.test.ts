import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { GetParametersByPathCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runMain } from './in-process.js';

/**
 * Admin commands on a table and endpoints that misbehave: an item this client cannot read, a stale
 * adaptive-sizing decision, an endpoint that accepts a connection and never answers.
 */

const saved = { ...process.env };
beforeAll(() => {
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'secret',
    AWS_REGION: 'us-east-1',
  });
});
afterAll(() => {
  process.env = saved;
});

const run = (argv: string[]) => runMain(argv, process.env, () => Date.parse('2026-12-04T00:00:00Z'));

const parameters = { Parameters: [{ Name: '/volsd/web/table-name', Value: 'volsd-web' }] };
const volume = (id: string, state: string) => ({
  pk: `VOL#${id}`,
  sk: 'VOLUME',
  volumeId: id,
  pool: 'web',
  az: 'us-east-1a',
  state,
  version: 1,
  generation: 3,
  createdAt: '2026-12-03T00:00:00Z',
  updatedAt: '2026-12-03T00:00:00Z',
});
const poolRecord = {
  pk: 'POOL#web',
  sk: 'POOL',
  pool: 'web',
  azs: ['us-east-1a'],
  targetIdlePerAz: 2,
  generation: 3,
};
const decision = (target: number) => ({
  pk: 'POOL#web',
  sk: 'TARGET_DECISION',
  target,
  demand: target,
  demandPerDay: [target, 1],
  atRestDollarsPerMonth: 10,
  budgetDollarsPerMonth: 100,
  decidedAt: '2026-12-01T00:00:00Z',
});

describe('with the table mocked', () => {
  const ssm = mockClient(SSMClient);
  const doc = mockClient(DynamoDBDocumentClient);
  const sfn = mockClient(SFNClient);
  afterEach(() => {
    ssm.reset();
    doc.reset();
    sfn.reset();
  });
  afterAll(() => {
    ssm.restore();
    doc.restore();
    sfn.restore();
  });

  it('replenish that fails in one AZ names the executions it started before, which go on', async () => {
    const arn = 'arn:aws:states:us-east-1:123456789012:stateMachine:volsd-web-replenish';
    ssm.on(GetParametersByPathCommand).resolves({
      Parameters: [...parameters.Parameters, { Name: '/volsd/web/replenish-state-machine-arn', Value: arn }],
    });
    doc.on(GetCommand).resolves({ Item: { ...poolRecord, azs: ['us-east-1a', 'us-east-1b'] } });
    const started = 'arn:aws:states:us-east-1:123456789012:execution:volsd-web-replenish:a';
    sfn
      .on(StartExecutionCommand)
      .resolvesOnce({ executionArn: started, startDate: new Date() })
      .rejectsOnce(
        Object.assign(new Error('User is not authorized to perform: states:StartExecution on resource'), {
          name: 'AccessDeniedException',
        }),
      );

    const result = await run(['replenish', '--pool', 'web', '--output', 'json']);

    expect(result.code).toBe(4);
    const { error } = JSON.parse(result.stdout) as { error: Record<string, unknown> };
    expect(error).toMatchObject({ az: 'us-east-1b', started: [{ az: 'us-east-1a', executionArn: started }] });
    expect(result.stderr).toContain(`started before it: us-east-1a ${started}`);
  });

  it('an item this client cannot read is named as such, not as a failed Query', async () => {
    ssm.on(GetParametersByPathCommand).resolves(parameters);
    doc.on(QueryCommand).resolves({
      Items: [volume('vol-0000000000000000a', 'IDLE'), volume('vol-0000000000000000b', 'QUARANTINED')],
    });
    doc.on(GetCommand).resolves({});

    const result = await run(['volumes', '--pool', 'web', '--output', 'json']);

    expect(result.code).toBe(1);
    const { error } = JSON.parse(result.stdout) as { error: Record<string, unknown> };
    expect(error.code).toBe('UnreadableItem');
    expect(error.message).toContain("received 'QUARANTINED'");
    expect(result.stderr).toContain('a newer Volsd may have written it');
  });

  it.for([
    [2, true],
    [7, false],
  ] as [number, boolean][])(
    'pool explains the target with the adaptive decision only while it is that decision (decided %i, target 2)',
    async ([decided, shown]) => {
      ssm.on(GetParametersByPathCommand).resolves(parameters);
      doc.on(GetCommand, { Key: { pk: 'POOL#web', sk: 'POOL' } }).resolves({ Item: poolRecord });
      doc
        .on(GetCommand, { Key: { pk: 'POOL#web', sk: 'TARGET_DECISION' } })
        .resolves({ Item: decision(decided) });
      doc.on(QueryCommand).resolves({ Items: [] });

      const table = await run(['pool', '--pool', 'web']);
      const json = await run(['pool', '--pool', 'web', '--output', 'json']);

      expect(table.code).toBe(0);
      expect(table.stdout.includes('target set by adaptive sizing')).toBe(shown);
      expect((JSON.parse(json.stdout) as { targetDecision: unknown }).targetDecision).toEqual(
        shown ? expect.objectContaining({ target: decided }) : null,
      );
    },
  );
});

describe('an AWS endpoint that accepts a connection and never answers', () => {
  let server: Server;
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    server = createServer(() => undefined);
    server.on('connection', (socket) => sockets.add(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    process.env.AWS_ENDPOINT_URL_SSM = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    delete process.env.AWS_ENDPOINT_URL_SSM;
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('ends after its tries with --cli-read-timeout, exit 1, naming the call and the option', async () => {
    const result = await run(['volumes', '--pool', 'web', '--cli-read-timeout', '0.3', '--output', 'json']);

    expect(result.code).toBe(1);
    const { error } = JSON.parse(result.stdout) as { error: Record<string, unknown> };
    expect(error).toMatchObject({ code: 'EndpointTimeout', action: 'ssm:GetParametersByPath' });
    expect(result.stderr).toContain('--cli-read-timeout');
    expect(sockets.size).toBeGreaterThanOrEqual(2);
  }, 60_000);
});
