import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTableCommand, DynamoDBClient, waitUntilTableExists } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import dynalite from 'dynalite';
import S3rver from 's3rver';
import { createTableInput } from '../lambdas/shared/table-schema.js';
import { makeS3rverFaithful } from './agent/s3-fidelity.js';
import { closeDynaliteIteratorsOnDestroy } from './dynalite-iterators.js';

/** Fake credentials for the local servers: never real ones, and never read from the environment. */
export const localCredentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
export const localRegion = 'us-east-1';

/** A local DynamoDB (dynalite, in memory) on 127.0.0.1 at a random port. */
export interface LocalDynamo {
  endpoint: string;
  client: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  /** Creates a table from the project's one table definition. */
  createVolumeTable(tableName: string): Promise<void>;
  stop(): Promise<void>;
}

/** Starts dynalite on 127.0.0.1:0 and returns clients bound to it. */
export async function startDynamo(): Promise<LocalDynamo> {
  // Without it every Query and Scan leaks a store iterator and, with it, every value ever written.
  closeDynaliteIteratorsOnDestroy();
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: localRegion,
    credentials: localCredentials,
    maxAttempts: 5,
  });
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  return {
    endpoint,
    client,
    doc,
    async createVolumeTable(tableName) {
      await client.send(new CreateTableCommand(createTableInput(tableName)));
      // A new table is CREATING first and answers ResourceNotFoundException until ACTIVE (dynalite
      // flips it on a timer, even at 0 ms, so a loaded machine can see it): wait as on AWS.
      await waitUntilTableExists(
        { client, maxWaitTime: 60, minDelay: 0.05, maxDelay: 0.5 },
        { TableName: tableName },
      );
    },
    async stop() {
      client.destroy();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A local S3 (s3rver) on 127.0.0.1 at a random port, storing objects in a temp directory. */
export interface LocalS3 {
  endpoint: string;
  server: S3rver;
  directory: string;
  stop(): Promise<void>;
}

/** Starts s3rver with the given buckets; its object events are `server.on('event', ...)`. */
export async function startS3(buckets: string[]): Promise<LocalS3> {
  const directory = await mkdtemp(join(tmpdir(), 'volsd-s3-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  // Keys stored and listed as S3 does (control characters, `..` segments): the push guard is tested against them.
  makeS3rverFaithful(server);
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    server,
    directory,
    async stop() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
