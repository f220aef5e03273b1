/**
 * The push pipeline end to end in the sandbox: the real AWS CLI against s3rver, object events through
 * the push queue to the real fan-out, Volsd-Sync run for real on every pool host, the status collected
 * from SSM. Every assertion on content reads the volumes' data directories (ground truth).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VolumeState } from '../../lambdas/shared/model.js';
import { type PushPipeline, wirePushPipeline } from '../../sandbox/push-wiring.js';
import { Sandbox } from '../../sandbox/runtime.js';
import {
  awsCli,
  findContent,
  findWritesOutsideRoots,
  sandboxS3,
  uploadHostileBatch,
  volumeTruth,
  webMountPath,
  workerMountRoot,
} from '../../sandbox/scenarios/push.js';

let sandbox: Sandbox;
let push: PushPipeline;
let scratch: string;

beforeAll(async () => {
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: 2, timeScale: 0.1, seed: 61 });
  push = await wirePushPipeline(sandbox);
  scratch = await mkdtemp(join(tmpdir(), 'volsd-push-test-'));
  await sandbox.replenishAll();
  sandbox.scaleTo(2);
  await sandbox.settle();
}, 300_000);

afterAll(async () => {
  push?.close();
  await sandbox?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

const s3url = (key: string) => `s3://${sandbox.wiring.bucket}/${key}`;

/** The file at `rel` on every IDLE and IN_USE volume, read through each holder's mount point. */
async function readEverywhere(rel: string): Promise<{ where: string; content: string | undefined }[]> {
  const volumes = await volumeTruth(sandbox);
  return Promise.all(
    volumes.map(async (v) => {
      const mount = v.state === VolumeState.InUse ? webMountPath : `${workerMountRoot}/${v.volumeId}`;
      const where = join(sandbox.cloud.hostRoot(v.holder ?? ''), mount, rel);
      return { where, content: await readFile(where, 'utf8').catch(() => undefined) };
    }),
  );
}

// Each test pushes and waits for the push to land: modelled minutes, wall seconds (more on a busy machine).
const slow = 300_000;

describe('push pipeline (sandbox)', { timeout: slow }, () => {
  it('has two web instances and two idle volumes to push to', async () => {
    // Act
    const volumes = await volumeTruth(sandbox);

    // Assess
    expect(volumes.map((v) => v.state).sort()).toEqual(['IDLE', 'IDLE', 'IN_USE', 'IN_USE']);
  });

  it('aws s3 cp: the file appears on every attached and every idle volume', async () => {
    // Prepare
    const file = join(scratch, 'hello.html');
    await writeFile(file, '<h1>hello from volsd</h1>\n');

    // Act
    await awsCli(sandbox, ['s3', 'cp', file, s3url('live/greetings/hello world.html'), '--only-show-errors']);
    await push.drained();

    // Assess
    const found = await readEverywhere('greetings/hello world.html');
    expect(found.map((f) => f.content)).toEqual(Array(4).fill('<h1>hello from volsd</h1>\n'));
  });

  it('records the push as Success with every instance and volume current', async () => {
    // Act
    const last = (await push.pushes()).at(-1);

    // Assess
    expect({
      status: last?.status,
      keys: last?.keys,
      targets: last?.summary?.targets,
      volumesCurrent: last?.summary?.volumesCurrent,
    }).toEqual({
      status: 'Success',
      keys: ['live/greetings/hello world.html'],
      targets: 3,
      volumesCurrent: 4,
    });
  });

  it('brings every volume marker and the table to the pushed generation', async () => {
    // Prepare
    const pool = await sandbox.repo.getPool(sandbox.options.pool);

    // Act
    const volumes = await volumeTruth(sandbox);
    const records = await sandbox.repo.listVolumes({ pool: sandbox.options.pool });

    // Assess
    expect({
      markers: volumes.map((v) => v.marker),
      table: records.filter((r) => r.state === 'IDLE' || r.state === 'IN_USE').map((r) => r.generation),
    }).toEqual({ markers: Array(4).fill(pool.generation), table: Array(4).fill(pool.generation) });
  });

  it('aws s3 rm: the file is removed from every volume', async () => {
    // Act
    await awsCli(sandbox, ['s3', 'rm', s3url('live/greetings/hello world.html'), '--only-show-errors']);
    await push.drained();

    // Assess
    const found = await readEverywhere('greetings/hello world.html');
    expect(found.map((f) => f.content)).toEqual(Array(4).fill(undefined));
  });

  it('refuses ../, absolute and control-character keys, reports them, and the valid keys of the batch arrive', async () => {
    // Prepare
    const before = (await push.pushes()).length;

    // Act
    const hostile = await uploadHostileBatch(sandbox, {
      token: 'pipeline',
      payload: 'ESCAPE-PAYLOAD-pipeline',
      valid: { 'live/ok/one.html': 'one\n', 'live/two.html': 'two\n' },
    });
    await push.drained();

    // Assess
    const made = (await push.pushes()).slice(before);
    expect(made.map((p) => ({ status: p.status, keys: [...p.keys].sort(), rejected: p.rejected }))).toEqual([
      {
        status: 'Success',
        keys: ['live/ok/one.html', 'live/two.html'],
        rejected: expect.arrayContaining([
          { key: hostile.parent, reason: 'parent-segment' },
          { key: hostile.absolute, reason: 'absolute' },
          { key: hostile.control, reason: 'control-character' },
        ]),
      },
    ]);
    expect((await readEverywhere('ok/one.html')).map((f) => f.content)).toEqual(Array(4).fill('one\n'));
  });

  it('writes nothing outside any mount root: the whole sandbox tree and the absolute target are clean', async () => {
    // Act
    const outside = await findWritesOutsideRoots(sandbox);
    const payloads = await findContent(sandbox, 'ESCAPE-PAYLOAD-pipeline');

    // Assess
    expect({
      outside,
      payloads,
      absoluteTarget: existsSync(join(tmpdir(), 'volsd-escape-pipeline.txt')),
    }).toEqual({ outside: [], payloads: [], absoluteTarget: false });
  });

  it('DeleteObjects (multi-object delete, which s3rver does not announce) removes the files everywhere', async () => {
    // Prepare
    const s3 = sandboxS3(sandbox);

    // Act
    await s3.send(
      new DeleteObjectsCommand({
        Bucket: sandbox.wiring.bucket,
        Delete: { Objects: [{ Key: 'live/ok/one.html' }, { Key: 'live/two.html' }] },
      }),
    );
    s3.destroy();
    await push.drained();

    // Assess
    const found = [...(await readEverywhere('ok/one.html')), ...(await readEverywhere('two.html'))];
    expect(found.map((f) => f.content)).toEqual(Array(8).fill(undefined));
  });
});
