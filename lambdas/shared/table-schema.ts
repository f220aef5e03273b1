/**
 * The volume table's keys and index, defined once. The CDK construct (`lib/volume-table.ts`) and the
 * local DynamoDB (`sandbox/servers.ts`, tests) both build the table from this definition.
 *
 * Single-table layout:
 * | item       | pk                   | sk            | gsi1pk | gsi1sk                  |
 * | volume     | VOL#<volumeId>       | VOLUME        | <pool> | <az>#<state>#<volumeId> |
 * | assignment | INSTANCE#<instance>  | ASSIGNMENT    |        |                         |
 * | pool       | POOL#<pool>          | POOL          |        |                         |
 * | push       | POOL#<pool>          | PUSH#<gen>    |        |                         |
 * | lease      | LEASE#<name>         | LEASE         |        |                         |
 * The one GSI answers "volumes of a pool", "... in an AZ" and "... in an AZ and state" with a key
 * condition (`begins_with`), so finding an idle volume is a Query, never a Scan.
 */
export const tableSchema = {
  partitionKey: 'pk',
  sortKey: 'sk',
  byPoolIndex: { name: 'byPool', partitionKey: 'gsi1pk', sortKey: 'gsi1sk' },
} as const;

/** The CreateTable input for the local DynamoDB, derived from `tableSchema`. */
export function createTableInput(tableName: string) {
  const { partitionKey, sortKey, byPoolIndex } = tableSchema;
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST' as const,
    AttributeDefinitions: [partitionKey, sortKey, byPoolIndex.partitionKey, byPoolIndex.sortKey].map(
      (name) => ({
        AttributeName: name,
        AttributeType: 'S' as const,
      }),
    ),
    KeySchema: [
      { AttributeName: partitionKey, KeyType: 'HASH' as const },
      { AttributeName: sortKey, KeyType: 'RANGE' as const },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: byPoolIndex.name,
        KeySchema: [
          { AttributeName: byPoolIndex.partitionKey, KeyType: 'HASH' as const },
          { AttributeName: byPoolIndex.sortKey, KeyType: 'RANGE' as const },
        ],
        Projection: { ProjectionType: 'ALL' as const },
      },
    ],
  };
}

export const keys = {
  volume: (volumeId: string) => ({ pk: `VOL#${volumeId}`, sk: 'VOLUME' }),
  assignment: (instanceId: string) => ({ pk: `INSTANCE#${instanceId}`, sk: 'ASSIGNMENT' }),
  /** Device names a forced detach left unusable on an instance (a sync worker) until it reboots. */
  unusableDevices: (instanceId: string) => ({ pk: `INSTANCE#${instanceId}`, sk: 'UNUSABLE_DEVICES' }),
  pool: (pool: string) => ({ pk: `POOL#${pool}`, sk: 'POOL' }),
  push: (pool: string, generation: number) => ({
    pk: `POOL#${pool}`,
    sk: `PUSH#${String(generation).padStart(12, '0')}`,
  }),
  lease: (name: string) => ({ pk: `LEASE#${name}`, sk: 'LEASE' }),
  byPool: (pool: string, az: string, state: string, volumeId: string) => ({
    gsi1pk: pool,
    gsi1sk: `${az}#${state}#${volumeId}`,
  }),
};
