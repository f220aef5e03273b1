import { execFileSync } from 'node:child_process';
import { lstatSync, readFileSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandParameters, DocumentName, getDocument } from '../../lambdas/shared/documents.js';
import { volumeId } from '../helpers/ids.js';
import { createHost, type RunOutcome, type TestHost, walk } from './host.js';
import { type ScriptS3, startScriptS3 } from './s3.js';

/*
 * A volume back from an instance (release policy `recycle`) holds whatever that instance left: a file
 * rewritten with its size and time kept, a setuid bit, a device node, a FIFO, foreign owners, a forged
 * generation marker. Volsd-Sync with `Untrusted` rebuilds it from the bucket.
 */
const bucket = 'volsd-push';
const prefix = 'trust/';
const vol = volumeId(0x18);
const mountPath = '/srv/www';

let s3: ScriptS3;
let endpoint: string;
let host: TestHost;

const sync = (generation: number, extra: Record<string, string> = {}) =>
  host.run(
    DocumentName.Sync,
    { Bucket: bucket, Prefix: prefix, Generation: String(generation), ...extra },
    { s3Endpoint: endpoint },
  );
const on = (path: string) => join(host.volumeDir(vol), path);
const mode = (path: string) => statSync(on(path)).mode & 0o7777;

/** What the instance does to the volume before giving it back. */
async function tamper(): Promise<void> {
  const { atime, mtime } = statSync(on('index.html'));
  await writeFile(on('index.html'), 'evil'); // same size as 'good'
  await utimes(on('index.html'), atime, mtime); // and the same time: size+time comparisons see nothing
  await chown(on('bin/tool'), 1000, 1000); // before chmod: chown clears a setuid bit
  await chmod(on('bin/tool'), 0o4755);
  execFileSync('mkfifo', [on('bin/pipe')]);
  execFileSync('mknod', [on('bin/null'), 'c', '1', '3']);
  await mkdir(on('.volsd-extra'), { recursive: true });
  await writeFile(on('.volsd-extra/authorized_keys'), 'ssh-ed25519 AAAA attacker');
  await writeFile(on('.volsd/generation'), '999\n');
  await chmod(host.volumeDir(vol), 0o777);
}

beforeAll(async () => {
  s3 = await startScriptS3(bucket, { [`${prefix}index.html`]: 'good', [`${prefix}bin/tool`]: 'tool' });
  endpoint = s3.endpoint;
  host = await createHost();
  await host.createVolume(vol, { formatted: true });
  await host.attach(vol, 1);
  await host.run(DocumentName.Mount, { VolumeId: vol, MountPath: mountPath });
  const first = await sync(3);
  if (first.exitCode !== 0) throw new Error(first.stderr);
});

afterAll(async () => {
  await host?.cleanup();
  await s3?.stop();
});

describe('Volsd-Sync of an untrusted volume', () => {
  let plain: RunOutcome;
  let afterPlain: { index: string; toolMode: number };
  let rebuilt: RunOutcome;

  beforeAll(async () => {
    await tamper();
    plain = await sync(4);
    afterPlain = { index: readFileSync(on('index.html'), 'utf8'), toolMode: mode('bin/tool') };
    rebuilt = await sync(4, { Untrusted: vol });
  });

  it('a plain sync keeps what the instance left (the threat this guards against)', () => {
    // The AWS CLI skips the special files (exit 2) and the same-size, same-time rewrite.
    expect(plain.exitCode).toBe(8);
    expect(afterPlain).toEqual({ index: 'evil', toolMode: 0o4755 });
  });

  it('rebuilds the content from the bucket: the rewritten file has the bucket bytes again', () => {
    expect(rebuilt.exitCode, rebuilt.stderr).toBe(0);
    expect(readFileSync(on('index.html'), 'utf8')).toBe('good');
    expect(readFileSync(on('bin/tool'), 'utf8')).toBe('tool');
  });

  it('leaves no setuid bit, foreign owner, device node, FIFO or stray Volsd-namespace file', () => {
    expect(mode('bin/tool')).toBe(0o644);
    expect(statSync(on('bin/tool')).uid).toBe(0);
    const entries = walk(host.volumeDir(vol));
    expect(entries.filter((p) => !lstatSync(on(p)).isDirectory()).sort()).toEqual([
      // The sync's own record of the ETags it listed (same-size versions in one second).
      '.volsd/etags',
      '.volsd/generation',
      'bin/tool',
      'index.html',
    ]);
    for (const path of entries) {
      const entry = lstatSync(on(path));
      expect(entry.isFile() || entry.isDirectory(), path).toBe(true);
    }
    expect(statSync(host.volumeDir(vol)).mode & 0o7777).toBe(0o755);
  });

  it('records the generation synced, not the forged one', () => {
    expect(readFileSync(on('.volsd/generation'), 'utf8').trim()).toBe('4');
    expect(rebuilt.results.find((r) => r.op === 'sync')).toMatchObject({ status: 'ok', generation: 4 });
  });

  it('declares a list that is not volume ids invalid, as SSM would refuse it', () => {
    const send = (value: string) => () =>
      commandParameters(getDocument(DocumentName.Sync), { Bucket: bucket, Generation: 3, Untrusted: value });

    expect(send('vol-1; rm -rf /')).toThrow(/Untrusted/);
    expect(send(`${vol} ${vol}`)()).toMatchObject({ Untrusted: [`${vol} ${vol}`] });
  });
});
