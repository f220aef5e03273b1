/**
 * Volsd-Sync and the sandbox's full file systems (docs/sandbox.md, "Volume growth"): the real script
 * under bash with the shims, against s3rver. A volume's file system has a size (`.volsd-fs` SIZE=), its
 * device a size (`/sys/block/<dev>/size`, sectors); the script grows the first to the second, refuses a
 * tree that does not fit before moving anything, and the AWS CLI shim fails writes past the size as
 * ENOSPC does.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DocumentName, ExitCode, type ScriptResult } from '../../lambdas/shared/documents.js';
import { defaultAwsEnv, resolveAwsCli, shimsDir } from '../../sandbox/agent/runner.js';
import { volumeId } from '../helpers/ids.js';
import { createHost, type TestHost } from './host.js';
import { type ScriptS3, startScriptS3 } from './s3.js';

const bucket = 'volsd-capacity';
const vol = volumeId(0xc);
const mountPath = '/srv/www';
/** Three objects of 400 bytes: a 1,200-byte tree. */
const objects = {
  'live/a.txt': 'a'.repeat(400),
  'live/b.txt': 'b'.repeat(400),
  'live/c/d.txt': 'd'.repeat(400),
};

let s3: ScriptS3;
let endpoint: string;
let host: TestHost;

beforeAll(async () => {
  s3 = await startScriptS3(bucket, objects);
  endpoint = s3.endpoint;
});

afterAll(async () => {
  await s3?.stop();
});

afterEach(async () => {
  await host?.cleanup();
});

/** A host with the volume formatted at `fsBytes`, on a device of `deviceBytes`, mounted at /srv/www. */
async function mountedVolume(fsBytes: number, deviceBytes: number): Promise<TestHost> {
  host = await createHost();
  const dir = await host.createVolume(vol);
  await writeFile(join(dir, '.volsd-fs'), `TYPE=xfs\nLABEL=volsd\nSIZE=${fsBytes}\n`);
  await host.attach(vol, 1);
  await mkdir(join(host.hostRoot, 'sys', 'block', 'nvme1n1'), { recursive: true });
  await writeFile(join(host.hostRoot, 'sys', 'block', 'nvme1n1', 'size'), `${deviceBytes / 512}\n`);
  const mounted = await host.run(DocumentName.Mount, { VolumeId: vol, MountPath: mountPath });
  expect(mounted.exitCode, mounted.stderr).toBe(0);
  return host;
}

const sync = (generation: number) =>
  host.run(DocumentName.Sync, { Bucket: bucket, Generation: String(generation) }, { s3Endpoint: endpoint });

const fsField = (field: string) =>
  readFileSync(join(host.volumeDir(vol), '.volsd-fs'), 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}=`))
    ?.slice(field.length + 1);

const contentFiles = () =>
  readdirSync(host.volumeDir(vol), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && !e.name.startsWith('.volsd') && !e.parentPath.includes('.volsd'))
    .map((e) => e.name)
    .sort();

const volumeResult = (results: ScriptResult[]) => results.find((r) => r.op === 'sync' && r.volumeId === vol);

describe('Volsd-Sync on a volume whose device grew', () => {
  it('grows the file system to the device, then syncs the tree that now fits', async () => {
    // Prepare: a 1,024-byte file system (the tree does not fit) on a device grown to 8,192 bytes.
    await mountedVolume(1024, 8192);
    // Act
    const out = await sync(3);
    // Assess
    expect(out.exitCode, out.stderr).toBe(0);
    expect(fsField('SIZE')).toBe('8192');
    expect(volumeResult(out.results)).toMatchObject({ status: 'ok', generation: 3 });
    expect(contentFiles()).toEqual(['a.txt', 'b.txt', 'd.txt']);
  });
});

describe('Volsd-Sync on a volume too small for the tree', () => {
  it('refuses the volume before moving anything: no-space, exit 17, tree and generation untouched', async () => {
    // Prepare: 1,200 bytes of content, 1,024 bytes of file system, no larger device.
    await mountedVolume(1024, 1024);
    // Act
    const out = await sync(4);
    // Assess
    expect(out.exitCode).toBe(ExitCode.SyncFailed);
    expect(volumeResult(out.results)).toMatchObject({
      status: 'failed',
      code: 'no-space',
      exitCode: ExitCode.NoSpace,
      generation: 0,
    });
    expect(contentFiles()).toEqual([]);
  });
});

describe('the AWS CLI shim on a full file system', () => {
  it('fails the writes past the size as ENOSPC does, keeping what fitted', async () => {
    // Prepare: room for two of the three objects.
    await mountedVolume(900, 900);
    const cli = resolveAwsCli();
    // Act
    const out = await new Promise<{ code: number; stderr: string }>((resolve, reject) => {
      const child = spawn(
        join(shimsDir, 'aws'),
        [
          '--endpoint-url',
          endpoint,
          's3',
          'sync',
          `s3://${bucket}/live/`,
          `${host.hostRoot}${mountPath}/`,
          '--only-show-errors',
        ],
        {
          env: {
            ...defaultAwsEnv,
            PATH: [shimsDir, dirname(cli), process.env.PATH ?? ''].join(':'),
            VOLSD_ROOT: host.hostRoot,
            HOME: tmpdir(),
          },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? -1, stderr }));
    });
    // Assess
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('[Errno 28] No space left on device');
    const files = contentFiles();
    expect(files.length).toBeGreaterThan(0);
    expect(files.length).toBeLessThan(3);
  });
});
