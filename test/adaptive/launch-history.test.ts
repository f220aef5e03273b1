import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LaunchHistory } from '../../lambdas/shared/adaptive-sizing.js';
import { type LocalDynamo, startDynamo } from '../../sandbox/servers.js';

const hourMs = 3_600_000;
const dayMs = 24 * hourMs;
const now = Date.UTC(2030, 0, 10, 12, 30);
let dynamo: LocalDynamo;
let history: LaunchHistory;

beforeAll(async () => {
  dynamo = await startDynamo();
  await dynamo.createVolumeTable('launches');
  history = new LaunchHistory(dynamo.doc, 'launches');
}, 60_000);

afterAll(async () => {
  await dynamo?.stop();
});

describe('launch history', () => {
  it('counts an instance once however often its launch is recorded (a retried step)', async () => {
    const yesterday = now - dayMs;
    await history.recordLaunch('web', 'us-east-1a', yesterday, 'i-0000000000000000a');
    await history.recordLaunch('web', 'us-east-1a', yesterday + 60_000, 'i-0000000000000000a');
    await history.recordLaunch('web', 'us-east-1a', yesterday + 120_000, 'i-0000000000000000b');
    await history.recordLaunch('web', 'us-east-1b', yesterday, 'i-0000000000000000c');

    expect(await history.demandPerDay('web', ['us-east-1a', 'us-east-1b'], now, 1, 1)).toEqual([2]);
  });

  it('adds the plain counter of items written before the instance set', async () => {
    const twoDaysAgo = now - 2 * dayMs;
    await dynamo.doc.send(
      new PutCommand({
        TableName: 'launches',
        Item: {
          pk: 'LAUNCHES#web#us-east-1a',
          sk: `HOUR#${String(Math.floor(twoDaysAgo / hourMs)).padStart(8, '0')}`,
          launches: 3,
        },
      }),
    );
    await history.recordLaunch('web', 'us-east-1a', twoDaysAgo, 'i-0000000000000000d');

    expect(await history.demandPerDay('web', ['us-east-1a'], now, 2, 1)).toEqual([2, 4]);
  });
});
