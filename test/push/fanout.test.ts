import { SendCommandCommand, SSMClient, SSMServiceException } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { allCustomMatcher } from 'aws-sdk-client-mock-vitest';
import 'aws-sdk-client-mock-vitest/extend';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fanOutConfigFromEnv } from '../../lambdas/fanout/config.js';
import { type FanOutDeps, type FanOutMetric, fanOutBatch } from '../../lambdas/fanout/fanout.js';
import { createHandler } from '../../lambdas/fanout/handler.js';
import { encodeEventKey } from '../../lambdas/shared/push-keys.js';
import {
  FakePools,
  FakePushes,
  fixture,
  lambdaContext,
  MemoryLog,
  s3Notification,
  sqsEvent,
  sqsRecord,
  testConfig,
} from './fakes.js';

expect.extend(allCustomMatcher);

const ssmMock = mockClient(SSMClient);

let calls: string[];
let pools: FakePools;
let pushes: FakePushes;
let log: MemoryLog;
let counted: Partial<Record<FanOutMetric, number>>;
let deps: FanOutDeps;

beforeEach(() => {
  calls = [];
  pools = new FakePools(calls);
  pushes = new FakePushes(calls);
  log = new MemoryLog();
  counted = {};
  deps = {
    config: testConfig,
    ssm: new SSMClient({ region: 'us-east-1' }),
    pools,
    pushes,
    log,
    count: (metric, n) => {
      counted[metric] = (counted[metric] ?? 0) + n;
    },
  };
  ssmMock.on(SendCommandCommand).callsFake(async () => {
    calls.push('SendCommand');
    return { Command: { CommandId: 'cmd-1' } };
  });
});

afterEach(() => {
  ssmMock.reset();
});

const message = (id: string, keys: string[], o?: Parameters<typeof s3Notification>[1]) =>
  sqsRecord(id, s3Notification(keys.map(encodeEventKey), o));

describe('fanOutBatch: one push per batch', () => {
  it('sends Volsd-Sync once, by pool tag, with the rate control and parameters of the config', async () => {
    // Prepare
    const batch = [message('m1', ['live/a.html']), message('m2', ['live/b.html', 'live/c d.html'])];

    // Act
    await fanOutBatch(batch, deps);

    // Assess
    expect(ssmMock).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(ssmMock).toHaveReceivedCommandWith(SendCommandCommand, {
      DocumentName: 'Volsd-Sync-web',
      Targets: [{ Key: 'tag:volsd:pool', Values: ['web'] }],
      Parameters: {
        Bucket: ['volsd-web-push'],
        Prefix: ['live/'],
        Generation: ['5'],
        MaxObjectBytes: ['1073741824'],
      },
      MaxConcurrency: '25%',
      MaxErrors: '5',
      TimeoutSeconds: 600,
    });
  });

  it('names the document version the last deploy wrote ($LATEST), not the default', async () => {
    // Prepare
    const batch = [message('m1', ['live/a.html'])];

    // Act
    await fanOutBatch(batch, deps);

    // Assess
    expect(ssmMock).toHaveReceivedCommandWith(SendCommandCommand, { DocumentVersion: '$LATEST' });
  });

  it('bumps the generation once, before sending the command, and records the push after', async () => {
    // Prepare
    const batch = [message('m1', ['live/a.html']), message('m2', ['live/b.html'])];

    // Act
    await fanOutBatch(batch, deps);

    // Assess
    expect(calls).toEqual(['bumpGeneration', 'SendCommand', 'recordPush:InProgress']);
  });

  it('records the generation, command, distinct decoded keys and message count', async () => {
    // Prepare
    const batch = [message('m1', ['live/a b.html', 'live/x.css']), message('m2', ['live/a b.html'])];

    // Act
    const result = await fanOutBatch(batch, deps);

    // Assess
    expect(result.push).toMatchObject({
      generation: 5,
      status: 'InProgress',
      commandId: 'cmd-1',
      messages: 2,
      keyCount: 2,
      keys: ['live/a b.html', 'live/x.css'],
    });
  });

  it('pushes deletions like creations', async () => {
    // Prepare
    const batch = [sqsRecord('m1', fixture('s3-notification-object-removed-delete'))];
    const body = JSON.parse(batch[0]?.body ?? '{}');
    body.Records[0].s3.bucket.name = testConfig.bucket;
    body.Records[0].s3.object.key = 'live/old.html';

    // Act
    const result = await fanOutBatch([sqsRecord('m1', body)], deps);

    // Assess
    expect(result.push?.keys).toEqual(['live/old.html']);
  });

  it('reads the documented ObjectCreated:Put notification', async () => {
    // Prepare
    const body = fixture('s3-notification-object-created-put') as {
      Records: { s3: { bucket: { name: string }; object: { key: string } } }[];
    };
    const record = body.Records[0];
    if (record) {
      record.s3.bucket.name = testConfig.bucket;
      record.s3.object.key = `live/${record.s3.object.key}`;
    }

    // Act
    const result = await fanOutBatch([sqsRecord('m1', body)], deps);

    // Assess
    expect(result.push?.keys).toEqual(['live/HappyFace.jpg']);
  });
});

describe('fanOutBatch: refused and ignored keys', () => {
  it('refuses escaping keys, reports them in the push, and pushes the valid ones of the same batch', async () => {
    // Prepare
    const batch = [
      message('m1', ['live/../etc/passwd', 'live/ok.html']),
      message('m2', ['live//etc/cron.d/x', 'live/bad\u0001name']),
    ];

    // Act
    const result = await fanOutBatch(batch, deps);

    // Assess
    expect({
      keys: result.push?.keys,
      rejected: result.push?.rejected,
      failed: result.failedMessageIds,
    }).toEqual({
      keys: ['live/ok.html'],
      rejected: [
        { key: 'live/../etc/passwd', reason: 'parent-segment' },
        { key: 'live//etc/cron.d/x', reason: 'absolute' },
        { key: 'live/bad\u0001name', reason: 'control-character' },
      ],
      failed: [],
    });
  });

  it('refuses a key whose object is larger than maxObjectBytes and pushes the others', async () => {
    // Prepare
    const body = s3Notification(['live/big.iso', 'live/small.html']);
    const records = body.Records as Array<{ s3: { object: { size?: number } } }>;
    const [big] = records;
    if (big) big.s3.object.size = testConfig.maxObjectBytes + 1;

    // Act
    const result = await fanOutBatch([sqsRecord('m1', body)], deps);

    // Assess
    expect({ keys: result.push?.keys, rejected: result.push?.rejected }).toEqual({
      keys: ['live/small.html'],
      rejected: [{ key: 'live/big.iso', reason: 'too-large' }],
    });
  });

  it('accepts an object of exactly maxObjectBytes', async () => {
    // Prepare
    const body = s3Notification(['live/edge.bin']);
    const [edge] = body.Records as Array<{ s3: { object: { size?: number } } }>;
    if (edge) edge.s3.object.size = testConfig.maxObjectBytes;

    // Act
    const result = await fanOutBatch([sqsRecord('m1', body)], deps);

    // Assess
    expect({ keys: result.push?.keys, rejected: result.rejected }).toEqual({
      keys: ['live/edge.bin'],
      rejected: [],
    });
  });

  it('records a batch of only too-large objects as refused, with no push', async () => {
    // Prepare
    const body = s3Notification(['live/huge.bin']);
    const [huge] = body.Records as Array<{ s3: { object: { size?: number } } }>;
    if (huge) huge.s3.object.size = 2 * testConfig.maxObjectBytes;

    // Act
    const result = await fanOutBatch([sqsRecord('m1', body)], deps);

    // Assess
    expect({ calls, status: result.push?.status, rejected: result.push?.rejected }).toEqual({
      calls: ['recordRejection'],
      status: 'Rejected',
      rejected: [{ key: 'live/huge.bin', reason: 'too-large' }],
    });
  });

  it('sends Volsd-Sync the limit it refuses by, so the sync skips the refused objects left in the bucket', async () => {
    // Prepare
    const batch = [message('m1', ['live/a.html'])];
    const limited = { ...deps, config: { ...testConfig, maxObjectBytes: 5000 } };

    // Act
    await fanOutBatch(batch, limited);

    // Assess
    const sent = ssmMock.commandCalls(SendCommandCommand)[0]?.args[0].input;
    expect(sent?.Parameters?.MaxObjectBytes).toEqual(['5000']);
  });

  it('lets the removal of a key through whatever size its record states', async () => {
    // Prepare
    const batch = [message('m1', ['live/big.iso'], { eventName: 'ObjectRemoved:Delete' })];
    const tiny = { ...deps, config: { ...testConfig, maxObjectBytes: 1 } };

    // Act
    const result = await fanOutBatch(batch, tiny);

    // Assess
    expect({ keys: result.push?.keys, rejected: result.rejected }).toEqual({
      keys: ['live/big.iso'],
      rejected: [],
    });
  });

  it('counts refused keys as a metric', async () => {
    // Prepare
    const batch = [message('m1', ['live/../a', 'live/..\\b', 'live/ok'])];

    // Act
    await fanOutBatch(batch, deps);

    // Assess
    expect(counted.PushKeysRejected).toBe(2);
  });

  it('makes no push when every key is refused, but records the refusal under the current generation', async () => {
    // Prepare
    const batch = [message('m1', ['live/../a']), message('m2', ['live/a//b'])];

    // Act
    const result = await fanOutBatch(batch, deps);

    // Assess
    expect({ calls, push: result.push?.status, generation: result.push?.generation }).toEqual({
      calls: ['recordRejection'],
      push: 'Rejected',
      generation: 4,
    });
  });

  it.each([
    ['keys outside the prefix', [message('m1', ['staging/a.html', 'index.html'])]],
    ['directory markers', [message('m1', ['live/images/'])]],
    ['another bucket', [message('m1', ['live/a.html'], { bucket: 'someone-else' })]],
    ['a test event', [sqsRecord('m1', fixture('s3-notification-test-event'))]],
    ['a replication event', [message('m1', ['live/a.html'], { eventName: 'Replication:OperationFailed' })]],
    ['a restore event', [message('m1', ['live/a.html'], { eventName: 'ObjectRestore:Completed' })]],
  ])('does nothing for %s', async (_what, batch) => {
    // Act
    const result = await fanOutBatch(batch, deps);

    // Assess
    expect({ calls, failed: result.failedMessageIds, ignored: result.ignored > 0 }).toEqual({
      calls: [],
      failed: [],
      ignored: true,
    });
  });
});

describe('fanOutBatch: failures', () => {
  it('returns a malformed message alone and pushes the rest', async () => {
    // Prepare
    const batch = [
      sqsRecord('bad-json', '{"Records": ['),
      sqsRecord('bad-shape', { Records: [{ eventName: 'ObjectCreated:Put' }] }),
      message('ok', ['live/a.html']),
    ];

    // Act
    const result = await fanOutBatch(batch, deps);

    // Assess
    expect({ failed: result.failedMessageIds, keys: result.push?.keys }).toEqual({
      failed: ['bad-json', 'bad-shape'],
      keys: ['live/a.html'],
    });
  });

  it('returns every message with keys when SendCommand is throttled, and records the failed push', async () => {
    // Prepare
    ssmMock.on(SendCommandCommand).rejects(
      new SSMServiceException({
        name: 'ThrottlingException',
        $fault: 'client',
        $metadata: {},
        message: 'Rate exceeded',
      }),
    );
    const batch = [
      message('m1', ['live/a.html']),
      sqsRecord('test', fixture('s3-notification-test-event')),
      message('m2', ['live/../b']),
    ];

    // Act
    const result = await fanOutBatch(batch, deps);

    // Assess
    expect({
      failed: result.failedMessageIds,
      status: pushes.records.get('5')?.status,
      error: pushes.records.get('5')?.error,
    }).toEqual({
      failed: ['m1', 'm2'],
      status: 'Failed',
      error: expect.stringContaining('ThrottlingException'),
    });
  });

  it('sends nothing and returns the messages when the generation cannot be bumped', async () => {
    // Prepare
    pools.failBump = new Error('table unavailable');

    // Act
    const result = await fanOutBatch([message('m1', ['live/a.html'])], deps);

    // Assess
    expect({
      failed: result.failedMessageIds,
      sent: ssmMock.commandCalls(SendCommandCommand).length,
    }).toEqual({
      failed: ['m1'],
      sent: 0,
    });
  });

  it('returns the messages when the push cannot be recorded, so the retry makes a recorded push', async () => {
    // Prepare
    pushes.failRecord = new Error('table unavailable');

    // Act
    const result = await fanOutBatch([message('m1', ['live/a.html'])], deps);

    // Assess
    expect(result.failedMessageIds).toEqual(['m1']);
  });
});

describe('fan-out handler', () => {
  it('answers with partial batch failures naming only the malformed messages', async () => {
    // Prepare
    const handler = createHandler(() => deps);
    const event = sqsEvent(message('ok', ['live/a.html']), sqsRecord('bad', 'not json'));

    // Act
    const response = await handler(event, lambdaContext);

    // Assess
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'bad' }] });
  });
});

describe('fan-out configuration', () => {
  const base = { TABLE_NAME: 'volsd-web', POOL_NAME: 'web', PUSH_BUCKET: 'volsd-web-push' };

  it('defaults to MaxConcurrency 50, MaxErrors 10%, prefix live/, the Volsd-Sync document, 1 GiB objects, growth at 80% and no space check', () => {
    // Act
    const config = fanOutConfigFromEnv(base);

    // Assess
    expect(config).toEqual({
      tableName: 'volsd-web',
      pool: 'web',
      bucket: 'volsd-web-push',
      prefix: 'live/',
      syncDocument: 'Volsd-Sync',
      maxConcurrency: '50',
      maxErrors: '10%',
      deliveryTimeoutSeconds: 600,
      maxObjectBytes: 1024 ** 3,
      growThresholdPercent: 80,
      gibBytes: 2 ** 30,
    });
  });

  it('reads the object size limit from PUSH_MAX_OBJECT_BYTES', () => {
    // Act
    const config = fanOutConfigFromEnv({ ...base, PUSH_MAX_OBJECT_BYTES: '1048576' });

    // Assess
    expect(config.maxObjectBytes).toBe(1048576);
  });

  it.each([
    ['FANOUT_MAX_CONCURRENCY', '0'],
    ['FANOUT_MAX_CONCURRENCY', '150%'],
    ['FANOUT_MAX_ERRORS', 'ten'],
    ['PUSH_PREFIX', '/live'],
    ['PUSH_BUCKET', 'Not_A_Bucket'],
    ['PUSH_MAX_OBJECT_BYTES', '0'],
    ['PUSH_MAX_OBJECT_BYTES', 'lots'],
  ])('refuses %s=%s', (name, value) => {
    // Act
    const load = () => fanOutConfigFromEnv({ ...base, [name]: value });

    // Assess
    expect(load).toThrow(name);
  });
});
