/**
 * The S3 the script tests sync from: s3rver on 127.0.0.1 at a random port, made faithful where the AWS
 * CLI depends on it (sandbox/agent/s3-fidelity.ts), in a temp directory removed by `stop`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { makeS3rverFaithful } from '../../sandbox/agent/s3-fidelity.js';

export interface ScriptS3 {
  server: S3rver;
  /** s3rver's store (an object's LastModified is its file's mtime). */
  directory: string;
  endpoint: string;
  client: S3Client;
  /** PutObject into the bucket. */
  put(key: string, body: string | Uint8Array): Promise<void>;
  stop(): Promise<void>;
}

/** Starts s3rver with `bucket` and puts `objects` (key to body) in it. */
export async function startScriptS3(bucket: string, objects: Record<string, string> = {}): Promise<ScriptS3> {
  const directory = await mkdtemp(join(tmpdir(), 'volsd-scripts-s3-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  makeS3rverFaithful(server);
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  const put = async (key: string, body: string | Uint8Array) => {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  };
  for (const [key, body] of Object.entries(objects)) await put(key, body);
  return {
    server,
    directory,
    endpoint,
    client,
    put,
    async stop() {
      client.destroy();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
