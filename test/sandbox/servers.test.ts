import { PutCommand, QueryCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { requireAsDynalite } from '../../sandbox/dynalite-iterators.js';
import { type LocalDynamo, startDynamo } from '../../sandbox/servers.js';

interface LevelIterator {
  next(): Promise<unknown>;
}

// The iterators dynalite opens on its memory-level store, recorded as they are created.
const opened: LevelIterator[] = [];
const { MemoryLevel } = requireAsDynalite('memory-level') as {
  MemoryLevel: { prototype: Record<string, (...args: unknown[]) => LevelIterator> };
};
for (const method of ['_iterator', '_keys', '_values']) {
  const original = MemoryLevel.prototype[method];
  if (!original) throw new Error(`memory-level has no ${method}: the test must follow its internals`);
  MemoryLevel.prototype[method] = function (this: unknown, ...args: unknown[]) {
    const iterator = original.apply(this, args);
    opened.push(iterator);
    return iterator;
  };
}

/** True when the iterator was closed (abstract-level rejects a read after close with LEVEL_ITERATOR_NOT_OPEN). */
async function isClosed(iterator: LevelIterator): Promise<boolean> {
  try {
    await iterator.next();
    return false;
  } catch (err) {
    return (err as { code?: string }).code === 'LEVEL_ITERATOR_NOT_OPEN';
  }
}

let dynamo: LocalDynamo;
const table = 'volumes';

beforeAll(async () => {
  dynamo = await startDynamo();
  await dynamo.createVolumeTable(table);
  for (let i = 0; i < 5; i++) {
    await dynamo.doc.send(
      new PutCommand({
        TableName: table,
        Item: { pk: 'POOL#web', sk: `VOL#vol-${i}`, gsi1pk: 'web', gsi1sk: `IDLE#${i}`, n: i },
      }),
    );
  }
});
afterAll(async () => {
  await dynamo.stop();
});

describe('startDynamo (dynalite)', () => {
  // An open iterator pins the store's tree version it was opened on: left open, every value ever
  // written stays in memory, and a long sandbox run's heap grows without bound.
  it.each([
    ['a Scan read to its end', new ScanCommand({ TableName: table })],
    ['a Scan stopped by its Limit', new ScanCommand({ TableName: table, Limit: 2 })],
    [
      'a Query stopped by its Limit',
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': 'POOL#web' },
        Limit: 1,
      }),
    ],
    [
      'a Query on the byPool index',
      new QueryCommand({
        TableName: table,
        IndexName: 'byPool',
        KeyConditionExpression: 'gsi1pk = :p',
        ExpressionAttributeValues: { ':p': 'web' },
      }),
    ],
  ])('closes the store iterators of %s', async (_name, command) => {
    const before = opened.length;
    const out = await dynamo.doc.send(command as ScanCommand);
    expect(out.Items?.length).toBeGreaterThan(0);
    const mine = opened.slice(before);
    expect(mine.length).toBeGreaterThan(0);
    await vi.waitFor(async () => {
      const closed = await Promise.all(mine.map(isClosed));
      expect(closed.every(Boolean)).toBe(true);
    });
  });
});
