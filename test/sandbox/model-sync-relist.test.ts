import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Host, Output } from '../../sandbox/agent/model/host.js';
import { mountOp } from '../../sandbox/agent/model/ops.js';
import { type SyncEnvironment, syncOp } from '../../sandbox/agent/model/sync.js';
import { type LocalS3, localCredentials, localRegion, startS3 } from '../../sandbox/servers.js';
import { materializeDevices, nvmeSerial } from '../../sandbox/sim/devices.js';
import { volumeId } from '../helpers/ids.js';

const bucket = 'volsd-push';
const volume = volumeId(0xa);
const mnt = '/srv/www';

/**
 * The real `aws s3 sync` lists the prefix itself once the volume's lock is held: keys put or deleted
 * while a sync waited for that lock are what it transfers, not what the script's first listing saw.
 */
describe('the modelled Volsd-Sync after waiting for the volume lock', () => {
  let s3: LocalS3;
  let client: S3Client;
  let rootDir: string;

  const put = (key: string, body: string) =>
    client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from(body) }));
  const remove = (key: string) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));

  /** A host with the volume formatted and mounted at {@link mnt}. */
  async function mountedHost(): Promise<Host> {
    rootDir = mkdtempSync(join(tmpdir(), 'volsd-sync-relist-'));
    const hostRoot = join(rootDir, 'hosts', 'i-0123456789abcdef0');
    const dataDir = join(rootDir, 'volumes', volume);
    mkdirSync(join(hostRoot, 'proc'), { recursive: true });
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, '.volsd-fs'), 'TYPE=xfs\n');
    materializeDevices(hostRoot, [
      {
        device: '/dev/nvme1n1',
        serial: nvmeSerial(volume),
        volumeId: volume,
        attachDevice: '/dev/sdf',
        dataDir,
      },
    ]);
    const host = new Host(hostRoot);
    await mountOp(host, { VOLSD_VOLUME_ID: volume, VOLSD_MOUNT_PATH: mnt }, new Output('mount'));
    return host;
  }

  /** Syncs `prefix` to the volume; `whileWaiting` changes the bucket before the lock is granted. */
  async function syncAfterWait(host: Host, prefix: string, whileWaiting: () => Promise<void>) {
    const out = new Output('sync');
    const deps: SyncEnvironment = {
      s3: () => client,
      withLock: async (_volume, fn) => {
        await whileWaiting();
        return fn();
      },
    };
    const env = {
      VOLSD_BUCKET: bucket,
      VOLSD_PREFIX: prefix,
      VOLSD_GENERATION: '7',
      VOLSD_S3_ENDPOINT: s3.endpoint,
    };
    const { exitCode } = await syncOp(host, env, out, deps);
    const results = out.stdout
      .split('\n')
      .filter((l) => l.startsWith('VOLSD_RESULT '))
      .map((l) => JSON.parse(l.slice('VOLSD_RESULT '.length)) as Record<string, unknown>);
    return { exitCode, volumeResult: results[0], stderr: out.stderr };
  }

  beforeAll(async () => {
    s3 = await startS3([bucket]);
    client = new S3Client({
      endpoint: s3.endpoint,
      region: localRegion,
      forcePathStyle: true,
      credentials: localCredentials,
    });
  });

  afterEach(() => {
    rmSync(rootDir, { recursive: true, force: true });
  });

  afterAll(async () => {
    client.destroy();
    await s3.stop();
  });

  it('transfers the keys put and deleted while it waited, as the bucket holds them then', async () => {
    // Prepare
    await put('live/kept.txt', 'kept');
    await put('live/deleted.txt', 'deleted while waiting');
    const host = await mountedHost();

    // Act
    const synced = await syncAfterWait(host, 'live/', async () => {
      await put('live/added.txt', 'added while waiting');
      await remove('live/deleted.txt');
    });

    // Assess
    expect(synced.exitCode, synced.stderr).toBe(0);
    expect(synced.volumeResult).toMatchObject({ volumeId: volume, status: 'ok', generation: 7 });
    expect(readFileSync(host.p(`${mnt}/added.txt`), 'utf8')).toBe('added while waiting');
    expect(readFileSync(host.p(`${mnt}/kept.txt`), 'utf8')).toBe('kept');
    expect(existsSync(host.p(`${mnt}/deleted.txt`))).toBe(false);
  });

  it('skips with a warning a refused key put while it waited, writing nothing for it', async () => {
    // Prepare
    await put('refused/kept.txt', 'kept');
    const host = await mountedHost();

    // Act
    const synced = await syncAfterWait(host, 'refused/', async () => {
      await put('refused/evil\u0001.txt', 'a control character, never classified');
    });

    // Assess: the CLI's exit 2 for a skipped file fails the volume; the next sync classifies the key.
    expect(synced.volumeResult).toMatchObject({ status: 'failed', code: 'sync-failed' });
    expect(synced.stderr).toContain('warning: Skipping file s3://volsd-push/refused/evil\\u0001.txt');
    expect(readdirSync(host.p(mnt)).filter((name) => name.startsWith('evil'))).toEqual([]);
    expect(readFileSync(host.p(`${mnt}/kept.txt`), 'utf8')).toBe('kept');
  });
});
