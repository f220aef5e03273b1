import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  maxKeysRecorded,
  maxRejectedRecorded,
  type PushOutcome,
  PushRecords,
  PushStatus,
} from '../../lambdas/shared/push-records.js';
import { type LocalDynamo, startDynamo } from '../../sandbox/servers.js';

let dynamo: LocalDynamo;
let table = 0;
let records: PushRecords;
const now = new Date('2030-01-02T03:04:05.000Z');

beforeAll(async () => {
  dynamo = await startDynamo();
});

afterAll(async () => {
  await dynamo.stop();
});

beforeEach(async () => {
  // A fresh table per test: the records of one test never show in another's listing.
  table++;
  await dynamo.createVolumeTable(`pushes-${table}`);
  records = new PushRecords(dynamo.doc, { tableName: `pushes-${table}`, now: () => now });
});

const push = (generation: number, extra: Partial<Parameters<PushRecords['recordPush']>[0]> = {}) => ({
  pool: 'web',
  generation,
  status: PushStatus.InProgress,
  commandId: `cmd-${generation}`,
  messages: 2,
  keys: ['live/a.html', 'live/b.html'],
  rejected: [{ key: 'live/../x', reason: 'parent-segment' }],
  ...extra,
});

const outcome: PushOutcome = {
  status: PushStatus.Partial,
  instances: {
    'i-0123456789abcdef0': {
      status: 'Success',
      volumes: [{ volumeId: 'vol-0123456789abcdef0', status: 'ok', generation: 7 }],
    },
    'i-0123456789abcdef1': { status: 'Failed', error: 'Failed (exit 1): boom', volumes: [] },
  },
  summary: {
    targets: 2,
    succeeded: 1,
    failed: 1,
    undeliverable: 0,
    volumesCurrent: 1,
    volumesFailed: 0,
    instancesOmitted: 0,
  },
};

describe('PushRecords', () => {
  it('writes a push and reads it back by generation', async () => {
    // Act
    await records.recordPush(push(7));
    const read = await records.getPush('web', 7);

    // Assess
    expect(read).toEqual({
      pool: 'web',
      generation: 7,
      status: 'InProgress',
      requestedAt: now.toISOString(),
      commandId: 'cmd-7',
      messages: 2,
      keyCount: 2,
      keys: ['live/a.html', 'live/b.html'],
      rejectedCount: 1,
      rejected: [{ key: 'live/../x', reason: 'parent-segment' }],
      instances: {},
    });
  });

  it('returns undefined for a generation without a push', async () => {
    // Act
    const read = await records.getPush('web', 3);

    // Assess
    expect(read).toBeUndefined();
  });

  it('keeps the first record when a push is written twice', async () => {
    // Prepare
    await records.recordPush(push(4));

    // Act
    const second = await records.recordPush(push(4, { commandId: 'cmd-other' }));

    // Assess
    expect(second.commandId).toBe('cmd-4');
  });

  it('counts every key but keeps only the first ones, and dedupes them', async () => {
    // Prepare
    const keys = Array.from({ length: 300 }, (_, i) => `live/f${i}.html`);
    const rejected = Array.from({ length: 250 }, (_, i) => ({
      key: `live/../${i}`,
      reason: 'parent-segment',
    }));

    // Act
    const written = await records.recordPush(push(5, { keys: [...keys, ...keys], rejected }));

    // Assess
    expect({
      keyCount: written.keyCount,
      keys: written.keys.length,
      rejectedCount: written.rejectedCount,
      rejected: written.rejected.length,
    }).toEqual({ keyCount: 300, keys: maxKeysRecorded, rejectedCount: 250, rejected: maxRejectedRecorded });
  });

  it('lists pushes newest first, bounded by the limit', async () => {
    // Prepare
    for (const g of [1, 2, 10, 11]) await records.recordPush(push(g));

    // Act
    const listed = await records.listPushes('web', 3);

    // Assess
    expect(listed.map((p) => p.generation)).toEqual([11, 10, 2]);
  });

  it('files a refused batch after the push of the same generation', async () => {
    // Prepare
    await records.recordPush(push(3));
    await records.recordPush(push(4));

    // Act
    await records.recordRejection({
      pool: 'web',
      generation: 3,
      id: 'msg-1',
      messages: 1,
      rejected: [{ key: 'live/\u0001', reason: 'control-character' }],
    });
    const listed = await records.listPushes('web');

    // Assess
    expect(listed.map((p) => [p.generation, p.status])).toEqual([
      [4, 'InProgress'],
      [3, 'Rejected'],
      [3, 'InProgress'],
    ]);
  });

  it('records a refused batch only once when it is delivered again', async () => {
    // Prepare
    const rejection = {
      pool: 'web',
      generation: 0,
      id: 'msg-9',
      messages: 1,
      rejected: [{ key: 'live/a//b', reason: 'empty-segment' }],
    };

    // Act
    await records.recordRejection(rejection);
    await records.recordRejection(rejection);

    // Assess
    expect(await records.listPushes('web')).toHaveLength(1);
  });

  it('finds a push by its command id', async () => {
    // Prepare
    for (const g of [1, 2, 3]) await records.recordPush(push(g));

    // Act
    const found = await records.findByCommand('web', 'cmd-2');

    // Assess
    expect(found?.generation).toBe(2);
  });

  it('completes a push with the outcome per instance', async () => {
    // Prepare
    await records.recordPush(push(7));

    // Act
    await records.completePush('web', 7, 'cmd-7', outcome);
    const read = await records.getPush('web', 7);

    // Assess
    expect(read).toMatchObject({
      status: 'Partial',
      completedAt: now.toISOString(),
      instances: outcome.instances,
      summary: outcome.summary,
    });
  });

  it('does not complete a push whose command is another', async () => {
    // Prepare
    await records.recordPush(push(7));

    // Act
    const result = await records.completePush('web', 7, 'cmd-stranger', outcome);

    // Assess
    expect({ result, status: (await records.getPush('web', 7))?.status }).toEqual({
      result: undefined,
      status: 'InProgress',
    });
  });

  it('keeps only the failed instances of a very large push, and counts the others', async () => {
    // Prepare
    await records.recordPush(push(8));
    const instances: PushOutcome['instances'] = {};
    for (let i = 0; i < 1200; i++) {
      instances[`i-${i.toString(16).padStart(17, '0')}`] = { status: 'Success', volumes: [] };
    }
    instances['i-fffffffffffffffff'] = { status: 'Failed', error: 'exit 8', volumes: [] };

    // Act
    const completed = await records.completePush('web', 8, 'cmd-8', {
      status: PushStatus.Partial,
      instances,
      summary: { ...outcome.summary, targets: 1201, succeeded: 1200, failed: 1 },
    });

    // Assess
    expect({
      kept: Object.keys(completed?.instances ?? {}),
      omitted: completed?.summary?.instancesOmitted,
    }).toEqual({ kept: ['i-fffffffffffffffff'], omitted: 1200 });
  });

  it('refuses a malformed pool name', async () => {
    // Act
    const read = records.getPush('Web Pool', 1);

    // Assess
    await expect(read).rejects.toThrow(/invalid pool/);
  });
});
