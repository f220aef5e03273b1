import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { VolumeRepository } from '../../lambdas/shared/repository.js';
import { tableSchema } from '../../lambdas/shared/table-schema.js';
import { IndexLag } from '../../sandbox/index-lag.js';
import { type LocalDynamo, localCredentials, localRegion } from '../../sandbox/servers.js';

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
