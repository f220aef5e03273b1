/**
 * Volsd-Sync (the fan-out, no VolumeId) against a volume taken while its per-volume sync waited for the
 * volume's lock: an acquire's Volsd-Unmount held the lock, unmounted the volume and let go. That volume
 * is no failure of the push (the acquire brings it current on its new host): it is reported skipped and
 * the command succeeds for the others. Real script, real AWS CLI, s3rver; then the script's twin alike.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DocumentName, type ScriptResult } from '../../lambdas/shared/documents.js';
import { modelRunner, withVolumeLock } from '../../sandbox/agent/model-runner.js';
import { volumeId } from '../helpers/ids.js';
import { createHost, eventually, type RunOutcome, serialOf, type TestHost, withResults } from './host.js';
import { type ScriptS3, startScriptS3 } from './s3.js';

const bucket = 'volsd-push';
const volA = volumeId(0xa);
const volB = volumeId(0xb);
const pathA = `/var/lib/volsd/${volA}`;
const pathB = `/var/lib/volsd/${volB}`;

let s3: ScriptS3;
let endpoint: string;
let host: TestHost;
let twinHost: TestHost;

beforeAll(async () => {
  s3 = await startScriptS3(bucket, { 'live/index.html': 'v2' });
  endpoint = s3.endpoint;
  host = await createHost();
  await mountBoth(host);
  twinHost = await createHost();
  await mountBoth(twinHost);
});

/** Removes the volume's line from the host's mount table, as its unmount does. */
function unmountByHand(on: TestHost, path: string) {
  const mounts = join(on.hostRoot, 'proc', 'mounts');
  const kept = readFileSync(mounts, 'utf8')
    .split('\n')
    .filter((line) => line !== '' && !line.includes(` ${path} `));
  writeFileSync(mounts, kept.map((line) => `${line}\n`).join(''));
}

async function mountBoth(on: TestHost) {
  for (const [volume, n, path] of [
    [volA, 1, pathA],
    [volB, 2, pathB],
  ] as const) {
    await on.createVolume(volume, { formatted: true });
    await on.attach(volume, n);
    await on.run(DocumentName.Mount, { VolumeId: volume, MountPath: path });
  }
}

afterAll(async () => {
  await host?.cleanup();
  await twinHost?.cleanup();
  await s3?.stop();
});

describe('Volsd-Sync with a volume taken while it waited for its lock', () => {
  let out: RunOutcome;
  const result = (volume: string) =>
    out.results.find((r: ScriptResult) => r.op === 'sync' && r.volumeId === volume);

  beforeAll(async () => {
    // Held as Volsd-Unmount holds it.
    const lock = await host.holdLock(volA);
    const running = host.run(
      DocumentName.Sync,
      { Bucket: bucket, Generation: '2' },
      { s3Endpoint: endpoint },
    );
    // B synced: the script listed A as mounted and its sync of A now waits for the lock.
    const bSynced = await eventually(() => existsSync(join(host.volumeDir(volB), 'index.html')), 40_000);
    // The lock holder unmounts A (the acquire takes it), then lets go.
    unmountByHand(host, pathA);
    lock.release();
    out = await running;
    expect(bSynced).toBe(true);
  });

  it('reports the taken volume skipped, not failed', () => {
    expect(result(volA)).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/^taken/) });
    expect(existsSync(join(host.volumeDir(volA), 'index.html'))).toBe(false);
  });

  it('syncs the others and succeeds', () => {
    expect(out.exitCode).toBe(0);
    expect(result(volB)).toMatchObject({ status: 'ok', generation: 2 });
    expect(readFileSync(join(host.volumeDir(volB), 'index.html'), 'utf8')).toBe('v2');
    expect(out.result).toMatchObject({ op: 'sync-summary', ok: 1, failed: 0, skipped: 1, status: 'ok' });
  });
});

describe("the script's twin, alike", () => {
  it('reports the taken volume skipped and succeeds for the others', async () => {
    const runner = modelRunner(DocumentName.Sync, { s3Endpoint: endpoint });
    const devices = [volA, volB].map((volume, i) => ({
      device: `/dev/nvme${i + 1}n1`,
      serial: serialOf(volume),
      volumeId: volume,
      attachDevice: `/dev/sd${String.fromCharCode(102 + i)}`,
    }));
    let running: Promise<RunOutcome> | undefined;
    await withVolumeLock(twinHost.hostRoot, volA, async () => {
      running = runner({
        instanceId: 'i-0123456789abcdef0',
        hostRoot: twinHost.hostRoot,
        rootDir: twinHost.rootDir,
        parameters: { Bucket: [bucket], Generation: ['2'] },
        devices,
        commandId: 'taken-twin',
        documentName: DocumentName.Sync,
        signal: new AbortController().signal,
      }).then(withResults);
      await eventually(() => existsSync(join(twinHost.volumeDir(volB), 'index.html')), 40_000);
      unmountByHand(twinHost, pathA);
    });
    const twin = await (running as Promise<RunOutcome>);

    const of = (volume: string) =>
      twin.results.find((r: ScriptResult) => r.op === 'sync' && r.volumeId === volume);
    expect(twin.exitCode).toBe(0);
    expect(of(volA)).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/^taken/) });
    expect(of(volB)).toMatchObject({ status: 'ok', generation: 2 });
    expect(twin.result).toMatchObject({ op: 'sync-summary', ok: 1, failed: 0, skipped: 1, status: 'ok' });
  });
});
