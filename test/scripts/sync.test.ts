import { existsSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  commandParameters,
  DocumentName,
  ExitCode,
  getDocument,
  parseRejectedKeys,
  type RejectedKey,
  type ScriptResult,
} from '../../lambdas/shared/documents.js';
import { putObjectVerbatim } from '../../sandbox/agent/s3-fidelity.js';
import { volumeId } from '../helpers/ids.js';
import { createHost, type RunOutcome, snapshot, type TestHost, walk } from './host.js';
import { type ScriptS3, startScriptS3 } from './s3.js';

const bucket = 'volsd-push';
const volA = volumeId(0xa);
const volB = volumeId(0xb);
const workerPath = `/var/lib/volsd/${volA}`;
const webPath = '/srv/www';

const validKeys: Record<string, string> = {
  'live/index.html': '<h1>hello</h1>',
  'live/css/site.css': 'body { color: black }',
  'live/change.txt': 'version 1',
  'live/old.txt': 'to be deleted',
  'live/odd name [1] *x*.txt': 'glob characters are plain names',
  // Good keys one character away from refused ones below: a `?` in the exclusion would hide them.
  'live/docs/index.html': 'docs',
  'live/nul/file.txt': 'next to a NUL',
  'live/tabXsep.txt': 'next to a tab',
};

/** Keys that must never be written where they point, with the reason Volsd-Sync gives. */
const hostileKeys: Record<string, string> = {
  'live/../escape-parent.txt': 'parent-segment',
  'live/a/../../../escape-deep.txt': 'parent-segment',
  'live//etc/escape-absolute.txt': 'absolute',
  'live/escape\u0001control.txt': 'control-character',
  'live/escape\nnewline.txt': 'control-character',
  'live/escape\\backslash.txt': 'backslash',
  'live/.volsd/generation': 'reserved',
  'live/docs\u0007index.html': 'control-character',
  'live/nul\u0000file.txt': 'control-character',
  'live/tab\tsep.txt': 'control-character',
};

let server: S3rver;
let scriptS3: ScriptS3;
let endpoint: string;
let s3: S3Client;
let host: TestHost;

const put = (key: string, body: string) =>
  s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));

const sync = (generation: number, extra: Record<string, string> = {}) =>
  host.run(
    DocumentName.Sync,
    { Bucket: bucket, Generation: String(generation), ...extra },
    { s3Endpoint: endpoint },
  );

const content = (volume: string, path: string) => readFileSync(join(host.volumeDir(volume), path), 'utf8');

const volumeResult = (out: RunOutcome, volume: string) =>
  out.results.find((r: ScriptResult) => r.op === 'sync' && r.volumeId === volume);

beforeAll(async () => {
  scriptS3 = await startScriptS3(bucket);
  ({ server, endpoint, client: s3 } = scriptS3);
  for (const [key, body] of Object.entries(validKeys)) await put(key, body);
  for (const key of Object.keys(hostileKeys)) {
    // s3rver's router cannot address an empty segment; S3 stores such keys all the same.
    if (key.includes('//')) await putObjectVerbatim(server, bucket, key, 'pwned');
    else await put(key, 'pwned');
  }
  await put('live/dir/', '');
});

afterAll(async () => {
  await scriptS3?.stop();
});

describe('Volsd-Sync against S3', () => {
  let first: RunOutcome;
  let before: Map<string, string>;

  beforeAll(async () => {
    host = await createHost();
    await host.createVolume(volA, { formatted: true, files: { 'stale.txt': 'not in the bucket' } });
    await host.createVolume(volB, { formatted: true });
    await host.attach(volA, 1);
    await host.attach(volB, 2);
    await host.run(DocumentName.Mount, { VolumeId: volA, MountPath: workerPath });
    await host.run(DocumentName.Mount, { VolumeId: volB, MountPath: webPath });
    before = snapshot(host.rootDir);
    first = await sync(5);
  });

  afterAll(async () => {
    await host.cleanup();
  });

  it('syncs every Volsd volume mounted on the host and exits 0', () => {
    // Assess
    expect(first.exitCode, first.stderr).toBe(0);
    expect(volumeResult(first, volA)).toMatchObject({ status: 'ok', mountPath: workerPath, generation: 5 });
    expect(volumeResult(first, volB)).toMatchObject({ status: 'ok', mountPath: webPath, generation: 5 });
  });

  it('brings the valid keys to every volume', () => {
    // Assess
    for (const volume of [volA, volB]) {
      expect(content(volume, 'index.html')).toBe(validKeys['live/index.html']);
      expect(content(volume, 'css/site.css')).toBe(validKeys['live/css/site.css']);
      expect(content(volume, 'odd name [1] *x*.txt')).toBe(validKeys['live/odd name [1] *x*.txt']);
    }
  });

  it('excludes exactly the refused keys: a good key one character away is synced', () => {
    // Assess: `live/docs<BEL>index.html` is refused, `live/docs/index.html` is not hidden by it.
    for (const volume of [volA, volB]) {
      expect(content(volume, 'docs/index.html')).toBe(validKeys['live/docs/index.html']);
      expect(content(volume, 'nul/file.txt')).toBe(validKeys['live/nul/file.txt']);
      expect(content(volume, 'tabXsep.txt')).toBe(validKeys['live/tabXsep.txt']);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is looked for
      expect(walk(host.volumeDir(volume)).filter((p) => /[\x00-\x1f]/.test(p))).toEqual([]);
    }
  });

  it('shows the content at the mount path', () => {
    // Assess
    expect(readFileSync(join(host.hostRoot, webPath, 'index.html'), 'utf8')).toBe(
      validKeys['live/index.html'],
    );
  });

  it('writes the generation marker on each volume', () => {
    // Assess
    expect(content(volA, '.volsd/generation')).toBe('5\n');
    expect(content(volB, '.volsd/generation')).toBe('5\n');
  });

  it('deletes files that are not in the bucket', () => {
    // Assess
    expect(existsSync(join(host.volumeDir(volA), 'stale.txt'))).toBe(false);
  });

  it("keeps the Volsd namespace (the shims' filesystem marker) out of the sync", () => {
    // Assess
    expect(existsSync(join(host.volumeDir(volA), '.volsd-fs'))).toBe(true);
  });

  it('refuses and reports every hostile key with its reason', () => {
    // Act
    const rejected = parseRejectedKeys(first.stdout);

    // Assess
    const expected: RejectedKey[] = Object.entries(hostileKeys).map(([key, reason]) => ({ key, reason }));
    expect(rejected).toEqual(expect.arrayContaining(expected));
    expect(rejected).toHaveLength(expected.length);
  });

  it('writes nothing outside the mount roots', () => {
    // Prepare: the volumes' own trees may change, and the scripts' locks and (emptied) work dir.
    const roots = [`volumes/${volA}/`, `volumes/${volB}/`];
    const bookkeeping = /^hosts\/[^/]+\/(run\/volsd(\/.*)?|tmp)$/;

    // Act
    const after = snapshot(host.rootDir);

    // Assess
    const changed = [...new Set([...before.keys(), ...after.keys()])]
      .filter((path) => before.get(path) !== after.get(path))
      .filter((p) => !roots.some((r) => p.startsWith(r)) && !bookkeeping.test(p));
    expect(changed).toEqual([]);
    expect([...after.keys()].filter((p) => p.includes('escape'))).toEqual([]);
  });

  it('skips directory markers without reporting them', () => {
    // Assess
    expect(first.result).toMatchObject({
      op: 'sync-summary',
      directoryMarkers: 1,
      rejectedKeys: 10,
      ok: 2,
      failed: 0,
    });
  });

  describe('after a push', () => {
    let second: RunOutcome;

    beforeAll(async () => {
      await put('live/change.txt', 'version 2');
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'live/old.txt' }));
      second = await sync(6, { VolumeId: volB });
    });

    it('updates a changed file', () => {
      // Assess
      expect(second.exitCode, second.stderr).toBe(0);
      expect(content(volB, 'change.txt')).toBe('version 2');
    });

    it('deletes a deleted key', () => {
      // Assess
      expect(existsSync(join(host.volumeDir(volB), 'old.txt'))).toBe(false);
    });

    it('moves only the changed file', () => {
      // Assess
      expect(volumeResult(second, volB)).toMatchObject({ filesChanged: 1, bytesChanged: 'version 2'.length });
    });

    it('raises the generation marker of the volume it synced', () => {
      // Assess
      expect(content(volB, '.volsd/generation')).toBe('6\n');
    });

    it('leaves the other volumes alone when VolumeId names one', () => {
      // Assess
      expect(content(volA, 'change.txt')).toBe('version 1');
      expect(content(volA, '.volsd/generation')).toBe('5\n');
    });
  });
});

describe('Volsd-Sync size limit (MaxObjectBytes) against S3', () => {
  let sized: TestHost;
  const syncSized = (extra: Record<string, string>) =>
    sized.run(
      DocumentName.Sync,
      { Bucket: bucket, Prefix: 'size/', Generation: '3', ...extra },
      { s3Endpoint: endpoint },
    );
  const has = (path: string) => existsSync(join(sized.volumeDir(volA), path));

  beforeAll(async () => {
    await put('size/big.bin', 'b'.repeat(2000));
    await put('size/edge.txt', 'e'.repeat(1024));
    await put('size/small.txt', 'small');
    sized = await createHost();
    await sized.createVolume(volA, { formatted: true });
    await sized.attach(volA, 1);
    await sized.run(DocumentName.Mount, { VolumeId: volA, MountPath: webPath });
  });

  it('does not copy an object over the limit, reports it too-large, and copies the others', async () => {
    // Act
    const out = await syncSized({ MaxObjectBytes: '1024' });

    // Assess
    expect(out.exitCode, out.stderr).toBe(0);
    expect(has('big.bin')).toBe(false);
    expect(readFileSync(join(sized.volumeDir(volA), 'edge.txt'), 'utf8')).toBe('e'.repeat(1024));
    expect(readFileSync(join(sized.volumeDir(volA), 'small.txt'), 'utf8')).toBe('small');
    expect(parseRejectedKeys(out.stdout)).toEqual([{ key: 'size/big.bin', reason: 'too-large' }]);
    expect(out.results.at(-1)).toMatchObject({ op: 'sync-summary', keys: 3, rejectedKeys: 1 });
  });

  it('copies the same object under the default limit (1 GiB)', async () => {
    // Act
    const out = await syncSized({});

    // Assess
    expect(out.exitCode, out.stderr).toBe(0);
    expect(readFileSync(join(sized.volumeDir(volA), 'big.bin'), 'utf8')).toBe('b'.repeat(2000));
    expect(parseRejectedKeys(out.stdout)).toEqual([]);
  });

  it('declares a limit that is not a positive integer invalid, as SSM would refuse it', () => {
    // Act
    const send = (value: string) => () =>
      commandParameters(getDocument(DocumentName.Sync), {
        Bucket: bucket,
        Generation: 3,
        MaxObjectBytes: value,
      });

    // Assess
    expect(send('0')).toThrow(/MaxObjectBytes/);
    expect(send('1e9')).toThrow(/MaxObjectBytes/);
    expect(send('1024')()).toMatchObject({ MaxObjectBytes: ['1024'] });
  });
});

describe('Volsd-Sync with two same-size versions in one second (same LastModified)', () => {
  let same: TestHost;
  const syncSame = (generation: number) =>
    same.run(
      DocumentName.Sync,
      { Bucket: bucket, Prefix: 'same/', Generation: String(generation) },
      { s3Endpoint: endpoint },
    );
  // s3rver takes LastModified from its object file's mtime, to the second as S3 keeps it.
  const objectFile = () => join(scriptS3.directory, bucket, 'same/page.html._S3rver_object');

  beforeAll(async () => {
    await put('same/page.html', 'op 101');
    await put('same/other.html', 'other');
    same = await createHost();
    await same.createVolume(volA, { formatted: true });
    await same.attach(volA, 1);
    await same.run(DocumentName.Mount, { VolumeId: volA, MountPath: webPath });
  });

  afterAll(async () => {
    await same.cleanup();
  });

  it('brings the second version although size and LastModified match the first', async () => {
    // Arrange: the first version synced, then the second written within the same second.
    const first = await syncSame(1);
    expect(first.exitCode, first.stderr).toBe(0);
    const { mtime } = statSync(objectFile());
    await put('same/page.html', 'op 102');
    utimesSync(objectFile(), mtime, mtime);

    // Act
    const out = await syncSame(2);

    // Assess
    expect(out.exitCode, out.stderr).toBe(0);
    expect(readFileSync(join(same.volumeDir(volA), 'page.html'), 'utf8')).toBe('op 102');
    expect(volumeResult(out, volA)).toMatchObject({ filesChanged: 1 });
  });

  it('moves nothing when nothing changed', async () => {
    // Act
    const out = await syncSame(3);

    // Assess
    expect(out.exitCode, out.stderr).toBe(0);
    expect(volumeResult(out, volA)).toMatchObject({ filesChanged: 0 });
  });
});

describe('Volsd-Sync guards (with a scripted AWS CLI)', () => {
  let fakeDir: string;
  let fakeAws: string;
  let log: string;

  /** An `aws` that lists `listing` and, on `s3 sync`, does what FAKE_SYNC says. */
  const fakeCli = `#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$FAKE_AWS_LOG"
if [[ $1 == --version ]]; then echo "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0 exe/x86_64"; exit 0; fi
while [[ $1 == --* ]]; do shift 2; done
case "$1 $2" in
  "s3api list-objects-v2")
    if [[ -n \${FAKE_LISTING_FAILS:-} ]]; then echo "An error occurred (AccessDenied)" >&2; exit 254; fi
    printf '[\\n    [\\n        6,\\n        "live/index.html"\\n    ]\\n]\\n' ;;
  "s3 sync")
    dst=\${4%/}
    case \${FAKE_SYNC:-} in
      escape) echo pwned >"$dst/../escaped.txt" ;;
      *) echo hello >"$dst/index.html" ;;
    esac ;;
esac
`;

  const run = (env: Record<string, string> = {}, extra: Record<string, string> = {}) =>
    host.run(
      DocumentName.Sync,
      { Bucket: bucket, Generation: '9', ...extra },
      { awsCli: fakeAws, extraEnv: { FAKE_AWS_LOG: log, ...env } },
    );
  const syncCalls = () =>
    (existsSync(log) ? readFileSync(log, 'utf8') : '').split('\n').filter((l) => l.includes(' sync '));

  beforeAll(async () => {
    fakeDir = await mkdtemp(join(tmpdir(), 'volsd-fake-aws-'));
    fakeAws = join(fakeDir, 'aws');
    await writeFile(fakeAws, fakeCli);
    await chmod(fakeAws, 0o755);
  });

  afterAll(async () => {
    await rm(fakeDir, { recursive: true, force: true });
  });

  describe('on a host with one mounted volume', () => {
    beforeAll(async () => {
      host = await createHost();
      log = join(host.rootDir, 'aws.log');
      await host.createVolume(volA, { formatted: true });
      await host.attach(volA, 1);
      await host.run(DocumentName.Mount, { VolumeId: volA, MountPath: webPath });
    });

    afterAll(async () => {
      await host.cleanup();
    });

    it('catches a write beside the mount root, fails with exit 9 and writes no marker', async () => {
      // Act
      const out = await run({ FAKE_SYNC: 'escape' });

      // Assess
      expect(out.exitCode).toBe(ExitCode.PathEscape);
      expect(volumeResult(out, volA)).toMatchObject({ status: 'failed', code: 'path-escape' });
      expect(existsSync(join(host.volumeDir(volA), '.volsd/generation'))).toBe(false);
    });

    it('refuses to sync a volume holding a symlink that leads outside it', async () => {
      // Prepare
      await mkdir(join(host.volumeDir(volA), 'sub'), { recursive: true });
      await symlink('/etc', join(host.volumeDir(volA), 'sub', 'etc'));
      const callsBefore = syncCalls().length;

      // Act
      const out = await run();

      // Assess
      expect(out.exitCode).toBe(ExitCode.PathEscape);
      expect(String(volumeResult(out, volA)?.status)).toBe('failed');
      expect(syncCalls()).toHaveLength(callsBefore);
      await rm(join(host.volumeDir(volA), 'sub'), { recursive: true });
    });

    it('fails every volume with exit 8 when the listing fails', async () => {
      // Act
      const out = await run({ FAKE_LISTING_FAILS: '1' });

      // Assess
      expect(out.exitCode).toBe(ExitCode.SyncFailed);
      expect(volumeResult(out, volA)).toMatchObject({ status: 'failed', code: 'listing-failed' });
    });

    it('passes the endpoint and region to the AWS CLI', async () => {
      // Act
      await run(
        {},
        { S3Endpoint: 'https://bucket.vpce-0a1b2c3d.s3.us-east-1.vpce.amazonaws.com', Region: 'eu-west-1' },
      );

      // Assess
      const last = readFileSync(log, 'utf8').trim().split('\n').at(-1) ?? '';
      expect(last).toMatch(
        /^--endpoint-url https:\/\/bucket\.vpce-0a1b2c3d\.s3\.us-east-1\.vpce\.amazonaws\.com --region eu-west-1 s3 sync /,
      );
    });

    it('fails with not-mounted when VolumeId names a volume not mounted here', async () => {
      // Act
      const out = await run({}, { VolumeId: volB });

      // Assess
      expect(out.exitCode).toBe(ExitCode.NotMounted);
    });
  });

  describe('on a host with a stale mounts.d record', () => {
    beforeAll(async () => {
      host = await createHost();
      log = join(host.rootDir, 'aws.log');
      await mkdir(join(host.hostRoot, 'etc/volsd/mounts.d'), { recursive: true });
      await writeFile(join(host.hostRoot, 'etc/volsd/mounts.d', volA), `${webPath}\n`);
    });

    afterAll(async () => {
      await host.cleanup();
    });

    it('skips the volume that is no longer there and succeeds', async () => {
      // Act
      const out = await run();

      // Assess
      expect(out.exitCode).toBe(0);
      expect(volumeResult(out, volA)).toMatchObject({ status: 'skipped', reason: 'not attached' });
      expect(out.result).toMatchObject({ op: 'sync-summary', volumes: 0, skipped: 1 });
    });

    it('does not list the bucket when no volume is left to sync', async () => {
      // Act
      await run();

      // Assess
      expect(existsSync(log) ? readFileSync(log, 'utf8') : '').not.toContain('list-objects-v2');
    });
  });
});
