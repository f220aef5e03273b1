/**
 * The sandbox's S3 makes a PUT visible whole, as S3 does: s3rver's own putObject truncated the object in
 * place and answered before a Buffer's bytes were written, so a read right after (or during) a PUT could
 * see an empty or partial object under the new metadata.
 */
import { readFileSync, statSync } from 'node:fs';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ScriptS3, startScriptS3 } from '../scripts/s3.js';

const bucket = 'atomic';
const key = 'live/big.bin';
let s3: ScriptS3;

beforeAll(async () => {
  s3 = await startScriptS3(bucket);
});

afterAll(async () => {
  await s3?.stop();
});

const objectFile = () => `${s3.directory}/${bucket}/live/big.bin._S3rver_object`;

describe('a PUT in the sandbox S3', () => {
  it('has every byte in the store when it answers', async () => {
    const body = Buffer.alloc(64 * 1024 * 1024, 7);

    await s3.put(key, body);

    expect(statSync(objectFile()).size).toBe(body.length);
    const got = await s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    expect((await got.Body?.transformToByteArray())?.length).toBe(body.length);
  });

  it('leaves the previous version whole until the new one replaces it', async () => {
    await s3.put(key, Buffer.alloc(8 * 1024 * 1024, 1));
    const sizes: number[] = [];

    const putting = s3.put(key, Buffer.alloc(8 * 1024 * 1024, 2));
    // Read the store while the PUT runs: never a truncated object.
    for (let i = 0; i < 20; i++) {
      sizes.push(readFileSync(objectFile()).length);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await putting;

    expect(new Set(sizes)).toEqual(new Set([8 * 1024 * 1024]));
    expect(readFileSync(objectFile())[0]).toBe(2);
  });
});
