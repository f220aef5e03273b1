import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DocumentName, type DocumentName as Name } from '../../lambdas/shared/documents.js';
import { modelRunner } from '../../sandbox/agent/model-runner.js';
import { type LocalS3, localCredentials, localRegion, startS3 } from '../../sandbox/servers.js';
import { materializeDevices, nvmeSerial } from '../../sandbox/sim/devices.js';
import { volumeId } from '../helpers/ids.js';

const spawned = vi.hoisted(() => [] as string[]);

vi.mock('node:child_process', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:child_process')>();
  const refuse =
    (name: string) =>
    (...args: unknown[]) => {
      spawned.push(`${name} ${String(args[0])}`);
      throw new Error(`${name} called by the modelled runner`);
    };
  return {
    ...actual,
    spawn: refuse('spawn'),
    spawnSync: refuse('spawnSync'),
    exec: refuse('exec'),
    execSync: refuse('execSync'),
    execFile: refuse('execFile'),
    execFileSync: refuse('execFileSync'),
    fork: refuse('fork'),
  };
});

const bucket = 'volsd-push';
const volA = volumeId(0xa);
const volB = volumeId(0xb);

describe('the modelled runner', () => {
  let s3: LocalS3;
  let rootDir: string;
  let hostRoot: string;
  let emptyPath: string;
  let savedPath: string | undefined;
  const exits: Record<string, number> = {};

  const run = async (doc: Name, params: Record<string, string>) => {
    const parameters = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, [v]]));
    const out = await modelRunner(doc, { s3Endpoint: s3.endpoint })({
      instanceId: 'i-0123456789abcdef0',
      hostRoot,
      rootDir,
      parameters,
      devices: [],
      commandId: 'cmd-1',
      documentName: doc,
      signal: new AbortController().signal,
    });
    exits[`${doc} ${params.Mode ?? params.VolumeId ?? ''}`] = out.exitCode;
  };

  beforeAll(async () => {
    s3 = await startS3([bucket]);
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: localRegion,
      forcePathStyle: true,
      credentials: localCredentials,
    });
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'live/index.html', Body: Buffer.from('hi') }),
    );
    client.destroy();
    rootDir = mkdtempSync(join(tmpdir(), 'volsd-model-nochild-'));
    hostRoot = join(rootDir, 'hosts', 'i-0123456789abcdef0');
    mkdirSync(join(hostRoot, 'proc'), { recursive: true });
    const devices = [volA, volB].map((id, i) => {
      const dataDir = join(rootDir, 'volumes', id);
      mkdirSync(dataDir, { recursive: true });
      return {
        device: `/dev/nvme${i + 1}n1`,
        serial: nvmeSerial(id),
        volumeId: id,
        attachDevice: '/dev/sdf',
        dataDir,
      };
    });
    writeFileSync(join(rootDir, 'volumes', volA, '.volsd-fs'), 'TYPE=xfs\n');
    materializeDevices(hostRoot, devices);
    // No command can be found either: a spawn would fail even if the mock let it through.
    emptyPath = mkdtempSync(join(tmpdir(), 'volsd-empty-path-'));
    savedPath = process.env.PATH;
    process.env.PATH = emptyPath;

    await run(DocumentName.Mount, { VolumeId: volA, MountPath: '/srv/www' });
    await run(DocumentName.Format, { VolumeId: volB, MountPath: '/srv/data' });
    await run(DocumentName.Sync, { Bucket: bucket, Generation: '3' });
    await run(DocumentName.Freeze, { VolumeId: volA, Mode: 'freeze' });
    await run(DocumentName.Freeze, { VolumeId: volA, Mode: 'thaw' });
    await run(DocumentName.Unmount, { VolumeId: volB });
  });

  afterAll(async () => {
    process.env.PATH = savedPath;
    rmSync(rootDir, { recursive: true, force: true });
    rmSync(emptyPath, { recursive: true, force: true });
    await s3.stop();
  });

  it('runs every document successfully with nothing on PATH', () => {
    // Assess
    expect(exits).toEqual({
      [`${DocumentName.Mount} ${volA}`]: 0,
      [`${DocumentName.Format} ${volB}`]: 0,
      [`${DocumentName.Sync} `]: 0,
      [`${DocumentName.Freeze} freeze`]: 0,
      [`${DocumentName.Freeze} thaw`]: 0,
      [`${DocumentName.Unmount} ${volB}`]: 0,
    });
  });

  it('starts no child process', () => {
    // Assess
    expect(spawned).toEqual([]);
  });
});
