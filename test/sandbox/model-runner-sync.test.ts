import { mkdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DocumentName, ExitCode } from '../../lambdas/shared/documents.js';
import { modelRunner } from '../../sandbox/agent/model-runner.js';
import { putObjectVerbatim } from '../../sandbox/agent/s3-fidelity.js';
import { type LocalS3, localCredentials, localRegion, startS3 } from '../../sandbox/servers.js';
import { volumeId } from '../helpers/ids.js';
import { missingTools, type Outcome, Pair } from './model-runner-pair.js';

const bucket = 'volsd-push';
const volA = volumeId(0xa);
const volB = volumeId(0xb);
const worker = `/var/lib/volsd/${volA}`;
const web = '/srv/www';

const validKeys: Record<string, string> = {
  'live/index.html': '<h1>hello</h1>',
  'live/css/site.css': 'body { color: black }',
  'live/change.txt': 'version 1',
  'live/old.txt': 'to be deleted',
  'live/odd name [1] *x*.txt': 'glob characters are plain names',
  // One character away from the refused keys below: their exclusion patterns must not hide them.
  'live/escapeXcontrol.txt': 'next to a refused key',
  'live/docs/index.html': 'docs',
  'live/nul/file.txt': 'next to a NUL',
  'live/star?x.txt': 'next to a refused key with a glob character',
};

const hostileKeys: Record<string, string> = {
  'live/../escape-parent.txt': 'parent-segment',
  'live/a/../../../escape-deep.txt': 'parent-segment',
  'live//etc/escape-absolute.txt': 'absolute',
  'live/a//b.txt': 'empty-segment',
  'live/./dot.txt': 'dot-segment',
  'live/escape\u0001control.txt': 'control-character',
  'live/escape\nnewline.txt': 'control-character',
  'live/escape\\backslash.txt': 'backslash',
  'live/.volsd/generation': 'reserved',
  'live/docs\u0007index.html': 'control-character',
  'live/nul\u0000file.txt': 'control-character',
  'live/star?x\u007f.txt': 'control-character',
  [`live/${`${'x'.repeat(220)}/`.repeat(5)}too-long.txt`]: 'too-long',
};

const missing = missingTools(true);
if (missing) console.warn(`${missing} is not installed: the model-vs-script Volsd-Sync cases are skipped`);

let s3: LocalS3;
let client: S3Client;

const put = (key: string, body: string) =>
  client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from(body) }));

/** Asserts that both runs ended alike and left the same trees; returns the model's outcome. */
function expectSame(pair: Pair, out: { script: Outcome; model: Outcome }): Outcome {
  expect(out.model.exitCode, out.script.raw.stderr).toBe(out.script.exitCode);
  expect(out.model.results).toEqual(out.script.results);
  expect(out.model.rejected).toEqual(out.script.rejected);
  const trees = pair.trees();
  expect(trees.model).toEqual(trees.script);
  return out.model;
}

const sync = (pair: Pair, generation: number, extra: Record<string, string> = {}) =>
  pair.run(DocumentName.Sync, { Bucket: bucket, Generation: String(generation), ...extra });

async function mountedPair(volumes: [string, string][]): Promise<Pair> {
  const pair = new Pair({ s3Endpoint: s3.endpoint });
  let n = 1;
  for (const [volume, path] of volumes) {
    pair.createVolume(volume, {
      formatted: true,
      // index.html: the object's size but an older mtime, so --exact-timestamps fetches it again.
      files: { 'stale.txt': 'not in the bucket', 'change.txt': 'v0', 'index.html': '<h1>HELLO</h1>' },
    });
    pair.attach(volume, n++);
    await pair.run(DocumentName.Mount, { VolumeId: volume, MountPath: path });
  }
  return pair;
}

describe.runIf(!missing)('modelled Volsd-Sync vs the script', () => {
  beforeAll(async () => {
    s3 = await startS3([bucket]);
    client = new S3Client({
      endpoint: s3.endpoint,
      region: localRegion,
      forcePathStyle: true,
      credentials: localCredentials,
    });
    for (const [key, body] of Object.entries(validKeys)) await put(key, body);
    for (const key of Object.keys(hostileKeys)) {
      if (key.includes('//')) await putObjectVerbatim(s3.server, bucket, key, 'pwned');
      else await put(key, 'pwned');
    }
    await put('live/dir/', '');
  });

  afterAll(async () => {
    client.destroy();
    await s3.stop();
  });

  describe('on a host with two volumes', () => {
    let pair: Pair;
    let first: { script: Outcome; model: Outcome };

    beforeAll(async () => {
      pair = await mountedPair([
        [volA, worker],
        [volB, web],
      ]);
      first = await sync(pair, 5);
    });

    afterAll(() => {
      pair.cleanup();
    });

    it('syncs every volume, refuses the hostile keys and deletes alike', () => {
      // Assess
      const model = expectSame(pair, first);
      expect(model.results.at(-1)).toMatchObject({ op: 'sync-summary', ok: 2, rejectedKeys: 13 });
    });

    it('syncs alike the good keys one character away from a refused key', () => {
      // Assess: the exclusion of `live/docs<BEL>index.html` matches that key only.
      const trees = pair.trees();
      for (const tree of [trees.script, trees.model])
        for (const volume of [volA, volB])
          for (const path of ['docs/index.html', 'nul/file.txt', 'star?x.txt', 'escapeXcontrol.txt'])
            expect(tree[`volumes/${volume}/${path}`], `${volume}/${path}`).toMatch(/^file/);
    });

    it('moves only what changed on the next sync, alike', async () => {
      // Prepare
      await put('live/change.txt', 'version 2, longer');
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'live/old.txt' }));
      await put('live/new/deep/file.txt', 'new');

      // Act
      const out = await sync(pair, 6);

      // Assess
      expect(expectSame(pair, out).results[0]).toMatchObject({
        status: 'ok',
        filesChanged: 2,
        generation: 6,
      });
    });

    it('skips volumes already at the generation with OnlyBehind, alike', async () => {
      // Act
      const out = await sync(pair, 6, { OnlyBehind: 'true' });

      // Assess
      expect(expectSame(pair, out).results[0]).toMatchObject({ status: 'current' });
    });

    it('syncs only the named volume and never lowers its generation, alike', async () => {
      // Act
      const out = await sync(pair, 3, { VolumeId: volB });

      // Assess
      expect(expectSame(pair, out).results[0]).toMatchObject({ volumeId: volB, generation: 6 });
    });
  });

  describe('with a size limit (MaxObjectBytes)', () => {
    let pair: Pair;

    beforeAll(async () => {
      await put('size/big.bin', 'b'.repeat(2000));
      await put('size/edge.txt', 'e'.repeat(1024));
      await put('size/small.txt', 'small');
      pair = await mountedPair([[volA, web]]);
    });

    afterAll(() => {
      pair.cleanup();
    });

    it('refuses alike an object over the limit and copies the others, the one at the limit included', async () => {
      // Act
      const out = await sync(pair, 3, { Prefix: 'size/', MaxObjectBytes: '1024' });

      // Assess
      const model = expectSame(pair, out);
      expect(model.exitCode).toBe(0);
      expect(model.rejected).toEqual([{ key: 'size/big.bin', reason: 'too-large' }]);
      const tree = pair.trees().script;
      const paths = [...Object.keys(tree)].filter((p) => p.includes('.txt') || p.includes('.bin'));
      expect(paths.some((p) => p.endsWith('/big.bin'))).toBe(false);
      expect(paths.some((p) => p.endsWith('/edge.txt'))).toBe(true);
      expect(paths.some((p) => p.endsWith('/small.txt'))).toBe(true);
    });
  });

  describe('on a host with one volume', () => {
    let pair: Pair;

    beforeAll(async () => {
      pair = await mountedPair([[volA, web]]);
    });

    afterAll(() => {
      pair.cleanup();
    });

    it('fetches alike a same-size version written in the same second as the one synced', async () => {
      // Prepare: the first version synced by both, the second given the first's LastModified (s3rver
      // takes it from its object file's mtime, to the second as S3 keeps it).
      await put('live/same.html', 'op 101');
      expect(expectSame(pair, await sync(pair, 7)).exitCode).toBe(0);
      const objectFile = join(s3.directory, bucket, 'live/same.html._S3rver_object');
      const { mtime } = statSync(objectFile);
      await put('live/same.html', 'op 102');
      utimesSync(objectFile, mtime, mtime);

      // Act
      const out = await sync(pair, 8);

      // Assess
      expect(expectSame(pair, out).exitCode).toBe(0);
      expect(readFileSync(join(pair.model.volumeDir(volA), 'same.html'), 'utf8')).toBe('op 102');
    });

    it('fails alike with not-mounted for a volume not mounted here', async () => {
      // Act
      const out = await sync(pair, 7, { VolumeId: volB });

      // Assess
      expect(expectSame(pair, out).exitCode).toBe(ExitCode.NotMounted);
    });

    it('deletes alike a symlink to a file of the volume that is not in the bucket', async () => {
      // Prepare
      pair.symlinkInVolume(volA, 'link.txt', 'index.html');

      // Act
      const out = await sync(pair, 7);

      // Assess
      expect(expectSame(pair, out).exitCode).toBe(0);
    });

    it('fails the sync alike on a dangling symlink (the AWS CLI warns and exits 2)', async () => {
      // Prepare
      pair.symlinkInVolume(volA, 'dangling.txt', 'nothing-here');

      // Act
      const out = await sync(pair, 7);

      // Assess
      expect(expectSame(pair, out).results[0]).toMatchObject({ code: 'sync-failed' });
      pair.prepare((side) => rmSync(join(side.volumeDir(volA), 'dangling.txt')));
    });

    it('fails every volume alike when the listing fails', async () => {
      // Act
      const out = await sync(pair, 7, { S3Endpoint: 'http://127.0.0.1:9' });

      // Assess
      expect(expectSame(pair, out).exitCode).toBe(ExitCode.SyncFailed);
    });

    it('refuses alike a volume holding a symlink that leads outside it', async () => {
      // Prepare
      pair.symlinkInVolume(volA, 'sub/etc', '/etc');

      // Act
      const out = await sync(pair, 7);

      // Assess
      expect(expectSame(pair, out).exitCode).toBe(ExitCode.PathEscape);
      pair.prepare((side) => rmSync(join(side.volumeDir(volA), 'sub'), { recursive: true }));
    });

    it('rebuilds alike an untrusted volume: an escaping symlink and a forged marker are emptied first', async () => {
      // Prepare
      pair.symlinkInVolume(volA, 'sub/etc', '/etc');
      pair.prepare((side) => writeFileSync(join(side.volumeDir(volA), '.volsd/generation'), '999\n'));

      // Act
      const out = await sync(pair, 8, { Untrusted: volA });

      // Assess
      const model = expectSame(pair, out);
      expect(model.exitCode).toBe(0);
      expect(model.results.find((r) => r.op === 'sync' && r.volumeId === volA)).toMatchObject({
        status: 'ok',
        generation: 8,
      });
    });

    it('prints at most 20 refused keys and counts them all, alike', async () => {
      // Prepare
      for (let i = 0; i < 25; i++) await put(`many/../refused-${String(i).padStart(2, '0')}.txt`, 'pwned');
      await put('many/ok.txt', 'fine');

      // Act
      const out = await sync(pair, 8, { Prefix: 'many/', Concurrency: '1' });

      // Assess
      const model = expectSame(pair, out);
      expect(model.rejected).toHaveLength(20);
      expect(model.results.at(-1)).toMatchObject({ op: 'sync-summary', rejectedKeys: 25 });
    });

    it('reports stale and malformed records as skipped, alike', async () => {
      // Prepare
      pair.prepare((side) => {
        const records = join(side.hostRoot, 'etc/volsd/mounts.d');
        writeFileSync(join(records, volB), '/srv/elsewhere\n');
        writeFileSync(join(records, 'vol-garbage'), '/srv/x\n');
      });
      pair.createVolume(volB, { formatted: true });
      pair.attach(volB, 2);

      // Act
      const out = await sync(pair, 7);

      // Assess
      expect(expectSame(pair, out).results.at(-1)).toMatchObject({ volumes: 1, skipped: 2 });
    });

    it('reports a volume detached since its mount as skipped, alike', async () => {
      // Prepare
      pair.detach(volA);

      // Act
      const out = await sync(pair, 8);

      // Assess
      expect(expectSame(pair, out).results.at(-1)).toMatchObject({ volumes: 0, skipped: 3, status: 'ok' });
    });
  });

  describe('with a writer beside the mount root during the downloads', () => {
    let pair: Pair;
    let proxy: Server;
    let proxyEndpoint: string;

    beforeAll(async () => {
      // A proxy in front of s3rver that, on every object download, writes a file next to the mount
      // point of both hosts: what the tripwire exists to catch.
      const upstream = new URL(s3.endpoint);
      proxy = createServer((req, res) => {
        if (req.method === 'GET' && req.url?.startsWith(`/${bucket}/`)) {
          pair.prepare((side) => writeFileSync(join(side.hostRoot, 'srv/beside.txt'), 'written by someone'));
        }
        const up = request(
          {
            host: upstream.hostname,
            port: upstream.port,
            method: req.method,
            path: req.url,
            headers: req.headers,
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        req.pipe(up);
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      proxyEndpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      pair = await mountedPair([[volA, web]]);
      pair.prepare((side) => mkdirSync(join(side.hostRoot, 'srv'), { recursive: true }));
    });

    afterAll(async () => {
      pair.cleanup();
      await new Promise((resolve) => proxy.close(resolve));
    });

    it('fails the volume alike with a path escape and writes no generation', async () => {
      // Act
      const out = await sync(pair, 9, { S3Endpoint: proxyEndpoint });

      // Assess
      expect(expectSame(pair, out).exitCode).toBe(ExitCode.PathEscape);
    });
  });

  describe('when the invocation is aborted during the listing', () => {
    let pair: Pair;

    beforeAll(async () => {
      pair = await mountedPair([[volA, web]]);
    });

    afterAll(() => {
      pair.cleanup();
    });

    it('ends the modelled sync with exit 143', async () => {
      // Prepare
      const abort = new AbortController();
      const run = modelRunner(DocumentName.Sync, { s3Endpoint: s3.endpoint })({
        instanceId: 'i-0123456789abcdef0',
        hostRoot: pair.model.hostRoot,
        rootDir: pair.model.rootDir,
        parameters: { Bucket: [bucket], Generation: ['3'] },
        devices: [],
        commandId: 'cmd-1',
        documentName: DocumentName.Sync,
        signal: abort.signal,
      });

      // Act
      abort.abort();

      // Assess
      expect((await run).exitCode).toBe(143);
    });
  });
});
