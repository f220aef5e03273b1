import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { tableSchema } from '../../lambdas/shared/table-schema.js';
import { IndexLag, keyCondition } from '../../sandbox/index-lag.js';
import { type LocalDynamo, localCredentials, localRegion, startDynamo } from '../../sandbox/servers.js';

const index = tableSchema.byPoolIndex;
let dynamo: LocalDynamo;
let tableCounter = 0;
let table: string;
/** Modelled seconds, moved by the tests: no wall time is involved. */
let now = 0;
let lag: IndexLag;
/** A client whose index Queries lag (the handlers' client in the sandbox). */
let lagged: DynamoDBDocumentClient;
let laggedRaw: DynamoDBClient;
/** A client that records its writes but reads the real index (the sandbox's own client). */
let fresh: DynamoDBDocumentClient;
let freshRaw: DynamoDBClient;

const maxLagSeconds = 1;
const pastTheLag = maxLagSeconds + 0.01;

function volume(id: string, state: string, extra: Record<string, unknown> = {}) {
  return { pk: `VOL#${id}`, sk: 'VOLUME', gsi1pk: 'web', gsi1sk: `a#${state}#${id}`, state, ...extra };
}

async function queryState(
  client: DynamoDBDocumentClient,
  state: string,
  extra: Record<string, unknown> = {},
) {
  const out = await client.send(
    new QueryCommand({
      TableName: table,
      IndexName: index.name,
      KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :prefix)',
      ExpressionAttributeNames: { '#pk': index.partitionKey, '#sk': index.sortKey },
      ExpressionAttributeValues: { ':pk': 'web', ':prefix': `a#${state}#` },
      ...extra,
    }),
  );
  return out;
}

async function ids(client: DynamoDBDocumentClient, state: string): Promise<string[]> {
  const out = await queryState(client, state);
  return (out.Items ?? []).map((i) => String(i.pk));
}

beforeAll(async () => {
  dynamo = await startDynamo();
});
afterAll(async () => {
  laggedRaw?.destroy();
  freshRaw?.destroy();
  await dynamo.stop();
});
beforeEach(async () => {
  table = `lag-${++tableCounter}`;
  await dynamo.createVolumeTable(table);
  now = 0;
  laggedRaw?.destroy();
  freshRaw?.destroy();
  const client = () =>
    new DynamoDBClient({ endpoint: dynamo.endpoint, region: localRegion, credentials: localCredentials });
  laggedRaw = client();
  freshRaw = client();
  lag = new IndexLag({
    reader: freshRaw,
    tables: { [table]: { partitionKey: 'pk', sortKey: 'sk', indexes: { [index.name]: index } } },
    now: () => now,
    random: () => 0.5,
    maxLagSeconds,
  });
  lag.attach(laggedRaw, { lagQueries: true });
  lag.attach(freshRaw, { lagQueries: false });
  lagged = DynamoDBDocumentClient.from(laggedRaw);
  fresh = DynamoDBDocumentClient.from(freshRaw);
});

describe('IndexLag', () => {
  it('leaves an item that just entered the partition out of an index Query', async () => {
    // Prepare
    await lagged.send(new PutCommand({ TableName: table, Item: volume('v1', 'IDLE') }));
    // Act
    const seen = await ids(lagged, 'IDLE');
    // Assess
    expect(seen).toEqual([]);
  });

  it('still shows the item itself to a GetItem at once', async () => {
    // Prepare
    await lagged.send(new PutCommand({ TableName: table, Item: volume('v1', 'IDLE') }));
    // Act
    const got = await lagged.send(new GetCommand({ TableName: table, Key: { pk: 'VOL#v1', sk: 'VOLUME' } }));
    // Assess
    expect(got.Item?.state).toBe('IDLE');
  });

  it('shows the item once the lag has passed', async () => {
    // Prepare
    await lagged.send(new PutCommand({ TableName: table, Item: volume('v1', 'IDLE') }));
    now += pastTheLag;
    // Act
    const seen = await ids(lagged, 'IDLE');
    // Assess
    expect(seen).toEqual(['VOL#v1']);
  });

  it('keeps an item that just left the key range in it, with its old attributes', async () => {
    // Prepare
    await lagged.send(new PutCommand({ TableName: table, Item: volume('v1', 'IDLE', { holder: 'w' }) }));
    now += pastTheLag;
    await fresh.send(new PutCommand({ TableName: table, Item: volume('v1', 'CLAIMED', { holder: 'i-1' }) }));
    // Act
    const out = await queryState(lagged, 'IDLE');
    // Assess
    expect(out.Items).toEqual([volume('v1', 'IDLE', { holder: 'w' })]);
  });

  it('answers a client attached without lagQueries from the real index', async () => {
    // Prepare
    await lagged.send(new PutCommand({ TableName: table, Item: volume('v1', 'IDLE') }));
    // Act
    const seen = await ids(fresh, 'IDLE');
    // Assess
    expect(seen).toEqual(['VOL#v1']);
  });

  it('shows the old attributes of an item updated within the key range', async () => {
    // Prepare
    await lagged.send(new PutCommand({ TableName: table, Item: volume('v1', 'IDLE', { generation: 1 }) }));
    now += pastTheLag;
    await lagged.send(
      new UpdateCommand({
        TableName: table,
        Key: { pk: 'VOL#v1', sk: 'VOLUME' },
        UpdateExpression: 'SET generation = :g',
        ExpressionAttributeValues: { ':g': 2 },
      }),
    );
    // Act
    const out = await queryState(lagged, 'IDLE');
    // Assess
    expect(out.Items?.map((i) => i.generation)).toEqual([1]);
  });

  it('still shows an item deleted within the lag', async () => {
    // Prepare
    await lagged.send(new PutCommand({ TableName: table, Item: volume('v1', 'IDLE') }));
    now += pastTheLag;
    await lagged.send(new DeleteCommand({ TableName: table, Key: { pk: 'VOL#v1', sk: 'VOLUME' } }));
    // Act
    const seen = await ids(lagged, 'IDLE');
    // Assess
    expect(seen).toEqual(['VOL#v1']);
  });

  it('records nothing for a write refused by its condition', async () => {
    // Prepare
    await lagged.send(new PutCommand({ TableName: table, Item: volume('v1', 'IDLE') }));
    now += pastTheLag;
    await expect(
      lagged.send(
        new UpdateCommand({
          TableName: table,
          Key: { pk: 'VOL#v1', sk: 'VOLUME' },
          UpdateExpression: 'SET #state = :c',
          ConditionExpression: '#state = :other',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':c': 'CLAIMED', ':other': 'SYNCING' },
        }),
      ),
    ).rejects.toThrow();
    // Act
    const pending = lag.pendingItems();
    // Assess
    expect(pending).toBe(0);
  });

  it('counts the stale view for Select COUNT', async () => {
    // Prepare
    await lagged.send(new PutCommand({ TableName: table, Item: volume('v1', 'IDLE') }));
    now += pastTheLag;
    await lagged.send(new PutCommand({ TableName: table, Item: volume('v2', 'IDLE') }));
    // Act
    const out = await queryState(lagged, 'IDLE', { Select: 'COUNT' });
    // Assess
    expect(out.Count).toBe(1);
  });

  it('pages a Limit-ed Query through the whole stale view', async () => {
    // Prepare
    for (const id of ['v1', 'v2', 'v3']) {
      await lagged.send(new PutCommand({ TableName: table, Item: volume(id, 'IDLE') }));
    }
    now += pastTheLag;
    await fresh.send(new PutCommand({ TableName: table, Item: volume('v2', 'CLAIMED') }));
    await fresh.send(new PutCommand({ TableName: table, Item: volume('v4', 'IDLE') }));
    // Act
    const seen: string[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await queryState(lagged, 'IDLE', { Limit: 1, ExclusiveStartKey: startKey });
      seen.push(...(page.Items ?? []).map((i) => String(i.pk)));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    // Assess
    expect(seen).toEqual(['VOL#v1', 'VOL#v2', 'VOL#v3']);
  });

  it('refuses a consistent read of a global secondary index, as DynamoDB does', async () => {
    // Prepare
    await lagged.send(new PutCommand({ TableName: table, Item: volume('v1', 'IDLE') }));
    // Act
    const read = queryState(lagged, 'IDLE', { ConsistentRead: true });
    // Assess
    await expect(read).rejects.toMatchObject({ name: 'ValidationException' });
  });
});

describe('keyCondition', () => {
  const item = { gsi1pk: { S: 'web' }, gsi1sk: { S: 'a#IDLE#v1' }, n: { N: '5' } };

  it('reads BETWEEN without splitting at its AND', () => {
    // Prepare
    const match = keyCondition(
      'gsi1pk = :p AND n BETWEEN :lo AND :hi',
      {},
      { ':p': { S: 'web' }, ':lo': { N: '4' }, ':hi': { N: '10' } },
    );
    // Act
    const matched = match(item);
    // Assess
    expect(matched).toBe(true);
  });

  it('compares numbers by value, not as text', () => {
    // Prepare
    const match = keyCondition('gsi1pk = :p AND n < :max', {}, { ':p': { S: 'web' }, ':max': { N: '10' } });
    // Act
    const matched = match(item);
    // Assess
    expect(matched).toBe(true);
  });
});
