import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { VolumeState } from '../../lambdas/shared/model.js';
import { VolumeRepository } from '../../lambdas/shared/repository.js';
import { tableSchema } from '../../lambdas/shared/table-schema.js';
import { IndexLag } from '../../sandbox/index-lag.js';
import { type LocalDynamo, localCredentials, localRegion, startDynamo } from '../../sandbox/servers.js';

/** A new volume table seen two ways: through a lagging index, and as it is. */
export interface LaggingTable {
  /** The repository under test: its byPool index reads answer as the index stood up to a second ago. */
  repo: VolumeRepository;
  /** The same table through a client whose index reads are current (what a test arranges with). */
  truth: VolumeRepository;
  /** Closes the lagging client. */
  destroy(): void;
}

/**
 * Creates `tableName` on `dynamo` and the two repositories over it (sandbox/index-lag.ts, every write
 * lagging half a second on the clock `now`, in modelled seconds, that the test moves).
 */
export async function laggingTable(
  dynamo: LocalDynamo,
  tableName: string,
  now: () => number,
): Promise<LaggingTable> {
  await dynamo.createVolumeTable(tableName);
  const raw = new DynamoDBClient({
    endpoint: dynamo.endpoint,
    region: localRegion,
    credentials: localCredentials,
  });
  const index = tableSchema.byPoolIndex;
  const lag = new IndexLag({
    reader: dynamo.client,
    tables: { [tableName]: { partitionKey: 'pk', sortKey: 'sk', indexes: { [index.name]: index } } },
    now,
    random: () => 0.5,
    maxLagSeconds: 1,
  });
  lag.attach(raw, { lagQueries: true });
  lag.attach(dynamo.client, { lagQueries: false });
  return {
    repo: new VolumeRepository(DynamoDBDocumentClient.from(raw), { tableName }),
    truth: new VolumeRepository(dynamo.doc, { tableName }),
    destroy: () => raw.destroy(),
  };
}

/** The lagging table of the running test (replaced before each test by `useLaggingPool`). */
export interface LaggingPool {
  /** The repository under test: its byPool index reads lag. */
  repo: VolumeRepository;
  /** The same table through a client whose index reads are current (what the test arranges with). */
  truth: VolumeRepository;
  /** The index's clock in modelled seconds, which the test moves; 0 when each test starts. */
  now: number;
}

/**
 * Registers, for the calling test file, a local DynamoDB and, before each test, a new lagging table
 * (named `prefix-N`) holding pool `web` in `az` (target 1) and the idle volume `volumeId`, then runs
 * `arrange` and moves the clock 2 s on so that the index shows what was arranged.
 */
export function useLaggingPool(
  prefix: string,
  az: string,
  volumeId: string,
  arrange: (pool: LaggingPool) => Promise<void> = async () => {},
): LaggingPool {
  let dynamo: LocalDynamo;
  let table: LaggingTable | undefined;
  let counter = 0;
  const pool = { now: 0 } as LaggingPool;
  beforeAll(async () => {
    dynamo = await startDynamo();
  });
  afterAll(async () => {
    table?.destroy();
    await dynamo.stop();
  });
  beforeEach(async () => {
    pool.now = 0;
    table?.destroy();
    table = await laggingTable(dynamo, `${prefix}-${++counter}`, () => pool.now);
    pool.repo = table.repo;
    pool.truth = table.truth;
    await pool.truth.putPool({ pool: 'web', azs: [az], targetIdlePerAz: 1 });
    await pool.truth.registerVolume({ volumeId, pool: 'web', az, state: VolumeState.Idle });
    await arrange(pool);
    pool.now += 2;
  });
  return pool;
}

/** `from`'s claim on `volumeId` goes back to the pool and `to` claims it (written as it is, no lag). */
export async function handOver(
  truth: VolumeRepository,
  volumeId: string,
  az: string,
  from: string,
  to: string,
): Promise<void> {
  await truth.dropAssignment(from, volumeId);
  await truth.transition({
    volumeId,
    from: VolumeState.Claimed,
    to: VolumeState.Idle,
    set: { holder: null },
  });
  await truth.claimVolume({ pool: 'web', az, instanceId: to });
}
