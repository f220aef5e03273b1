/**
 * Two places where s3rver 3.7 differs from S3 in ways that matter to Volsd-Sync's path guard, and
 * the patches that close them. Both are needed to test a listing that holds hostile keys:
 *
 * 1. s3rver stores an object at `path.join(dir, bucket, key)`, so `live/../x` is stored (and listed)
 *    as `x`, and `live//x` cannot be stored at all. S3 keeps every key verbatim. The patch encodes
 *    key paths on disk reversibly (`.`/`..`/empty segments, `&`, `\` and control characters become
 *    `&XX` escapes), so s3rver keeps and lists keys verbatim and never writes outside its directory.
 * 2. s3rver ignores `encoding-type=url` and writes control characters raw into the listing XML,
 *    which the AWS CLI (expat) refuses: one such key breaks every listing of the prefix. S3 encodes
 *    the keys of a listing when asked to, and the AWS CLI always asks. The patch adds that encoding.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type S3rver from 's3rver';

const require = createRequire(import.meta.url);

interface StoreStatics {
  encodeKeyPath(key: string): string;
  decodeKeyPath(keyPath: string): string;
}

type KoaMiddleware = (ctx: ListContext, next: () => Promise<void>) => Promise<void>;

interface ListContext {
  query: Record<string, string | string[] | undefined>;
  body: unknown;
}

const hex = (ch: string) => `&${Buffer.from(ch, 'utf8').toString('hex')}`;

/** Encodes a key as an on-disk path that keeps every key distinct and inside the bucket directory. */
export function encodeKeyPath(key: string): string {
  const segments = key.split('/');
  const last = segments.length - 1;
  return segments
    .map((segment, i) => {
      // The last segment may be empty (a "directory" key such as `live/`): s3rver handles that itself.
      if (segment === '') return i === last ? '' : '&e';
      if (segment === '.' || segment === '..') return segment.replace(/\./g, hex);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped
      return segment.replace(/[&\\\x00-\x1f\x7f]/g, hex);
    })
    .join('/');
}

/** Reverses {@link encodeKeyPath}. */
export function decodeKeyPath(keyPath: string): string {
  return keyPath
    .split('/')
    .map((segment) =>
      segment === '&e'
        ? ''
        : segment.replace(/&([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
    )
    .join('/');
}

/** URL-encodes a key the way S3 does for `encoding-type=url` (slashes kept; any decoder accepts it). */
function urlEncodeKey(key: string): string {
  return encodeURIComponent(key).replace(/%2F/g, '/');
}

let storePatched = false;

/**
 * Makes every s3rver in this process keep keys verbatim (see the module comment). Idempotent; call
 * it before the first object is written (objects written before keep s3rver's own layout).
 */
export function patchS3rverKeyStorage(): void {
  if (storePatched) return;
  const store = require('s3rver/lib/stores/filesystem.js') as StoreStatics;
  store.encodeKeyPath = encodeKeyPath;
  store.decodeKeyPath = decodeKeyPath;
  patchAtomicPut(store as unknown as { prototype: AtomicPutStore });
  storePatched = true;
}

interface AtomicPutStore {
  getResourcePath(bucket: string, key: string, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5: string): Promise<void>;
  putObject(object: {
    bucket: string;
    key: string;
    content: Buffer | NodeJS.ReadableStream;
    metadata: Record<string, string>;
  }): Promise<{ size: number; md5: string }>;
}

/**
 * S3 makes a PUT visible whole, once it has succeeded (strong read-after-write consistency). s3rver's
 * putObject truncates the object file in place and answers before a Buffer's write has finished, so a
 * GET or a read of the store in between saw an empty or partial object under the new metadata: a sync
 * could record the new ETag for old or empty bytes. The patch writes a temporary file beside the object,
 * waits for it to be flushed, renames it over the object, then writes the metadata (object first: a
 * listing between the two shows the old ETag for the new bytes, which only costs a fetch again).
 */
function patchAtomicPut(store: { prototype: AtomicPutStore }): void {
  store.prototype.putObject = async function putObject(this: AtomicPutStore, object) {
    const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
    mkdirSync(dirname(objectPath), { recursive: true });
    const tmp = `${objectPath}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    const md5 = createHash('md5');
    let size = 0;
    const out = createWriteStream(tmp);
    const source = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
    await pipeline(
      source,
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          md5.update(chunk);
          size += chunk.length;
          callback(null, chunk);
        },
      }),
      out,
    );
    renameSync(tmp, objectPath);
    const digest = md5.digest('hex');
    await this.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}

/** Adds S3's `encoding-type=url` to the listings of one s3rver instance. Call before `run()`. */
export function addUrlEncodingType(server: S3rver): void {
  const app = server as unknown as { middleware: KoaMiddleware[] };
  const encodeListing: KoaMiddleware = async (ctx, next) => {
    await next();
    if (ctx.query['encoding-type'] !== 'url') return;
    const body = ctx.body as { ListBucketResult?: Record<string, unknown> } | undefined;
    const result = body?.ListBucketResult;
    if (!result) return;
    for (const field of ['Prefix', 'Delimiter', 'StartAfter', 'Marker', 'NextMarker']) {
      const value = result[field];
      if (typeof value === 'string') result[field] = urlEncodeKey(value);
    }
    const contents = result.Contents;
    if (Array.isArray(contents)) {
      for (const item of contents as { Key: string }[]) item.Key = urlEncodeKey(item.Key);
    }
    const prefixes = result.CommonPrefixes;
    if (Array.isArray(prefixes)) {
      for (const item of prefixes as { Prefix: string }[]) item.Prefix = urlEncodeKey(item.Prefix);
    }
    result.EncodingType = 'url';
  };
  // s3rver's own middleware: [logger, XML encoder, mount interop, vhost, router]. Ours must run inside
  // the XML encoder (it edits the body object before it becomes XML), so it goes right after it.
  const xmlEncoderIndex = 1;
  app.middleware.splice(xmlEncoderIndex + 1, 0, encodeListing);
}

/** Applies both patches to a server that has not been started yet. */
export function makeS3rverFaithful(server: S3rver): void {
  patchS3rverKeyStorage();
  addUrlEncodingType(server);
}

interface ObjectStore {
  putObject(object: {
    bucket: string;
    key: string;
    content: Buffer;
    metadata: Record<string, string>;
  }): Promise<{
    size: number;
    md5: string;
  }>;
}

/**
 * Stores an object straight into a (patched) s3rver's store, bypassing HTTP: for keys that s3rver's
 * router cannot address (an empty segment, `live//etc/x`) but S3 stores and lists.
 */
export async function putObjectVerbatim(server: S3rver, bucket: string, key: string, body: string | Buffer) {
  patchS3rverKeyStorage();
  const store = (server as unknown as { store: ObjectStore }).store;
  const content = Buffer.isBuffer(body) ? body : Buffer.from(body);
  await store.putObject({
    bucket,
    key,
    content,
    metadata: { 'content-type': 'binary/octet-stream', 'content-length': String(content.length) },
  });
}
