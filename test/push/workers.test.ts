/**
 * A push in an AZ whose idle pool spans two sync workers (m7g.large holds 26 volumes beside its root
 * volume; a target of 30 needs two). The fan-out targets the pool's tag, which every worker carries:
 * each worker's Volsd-Sync must bring every volume it holds to the bucket's tree, and the web
 * instances theirs. Ground truth: each volume's data directory, read through the mount point of the
 * instance EC2 says it is attached to, against the bucket's listing; the push record must agree.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VolumeState } from '../../lambdas/shared/model.js';
import { Role, roleTag } from '../../lambdas/shared/tags.js';
import { type PushPipeline, wirePushPipeline } from '../../sandbox/push-wiring.js';
import { Sandbox } from '../../sandbox/runtime.js';
import {
  bucketTree,
  holdsTree,
  sandboxS3,
  volumeTruth,
  webMountPath,
  workerMountRoot,
} from '../../sandbox/scenarios/push.js';
import { expectInvariants } from '../maintenance/helpers.js';

const target = 30;
let sandbox: Sandbox;
let push: PushPipeline;

async function put(key: string, body: string): Promise<void> {
  const s3 = sandboxS3(sandbox);
  try {
    await s3.send(new PutObjectCommand({ Bucket: sandbox.wiring.bucket, Key: key, Body: body }));
  } finally {
    s3.destroy();
  }
}

async function remove(key: string): Promise<void> {
  const s3 = sandboxS3(sandbox);
  try {
    await s3.send(new DeleteObjectCommand({ Bucket: sandbox.wiring.bucket, Key: key }));
  } finally {
    s3.destroy();
  }
}

beforeAll(async () => {
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: target, timeScale: 0.05, seed: 2202, agent: 'model' });
  push = await wirePushPipeline(sandbox);
  await put('live/index.html', '<h1>first</h1>\n');
  await put('live/old/page.html', 'old\n');
  await push.drained();
  await sandbox.replenishAll();
  sandbox.scaleTo(2);
  await sandbox.settle();
  // The two claims are replaced: the pool is back at its target on the two workers.
  await sandbox.replenishAll();
}, 600_000);

afterAll(async () => {
  push?.close();
  await sandbox?.stop();
});

/** Where each live pool volume is attached, from the simulator (EC2's truth, not the table's). */
function attachedTo(): Map<string, string> {
  return new Map(
    sandbox.cloud
      .snapshotState()
      .volumes.filter((v) => v.attachment?.state === 'attached' && v.tags['volsd:role'] === 'volume')
      .map((v) => [v.volumeId, v.attachment?.instanceId ?? '']),
  );
}

function roleOf(instanceId: string): string | undefined {
  return sandbox.cloud.snapshotState().instances.find((i) => i.instanceId === instanceId)?.tags[roleTag];
}

describe('a push with the idle pool on two sync workers', { timeout: 600_000 }, () => {
  it('has 30 idle volumes spread over two workers and two web instances in service', async () => {
    const volumes = await volumeTruth(sandbox);
    const on = attachedTo();
    const workers = new Set(
      volumes.filter((v) => v.state === VolumeState.Idle).map((v) => on.get(v.volumeId)),
    );

    expect({
      idle: volumes.filter((v) => v.state === VolumeState.Idle).length,
      inUse: volumes.filter((v) => v.state === VolumeState.InUse).length,
      workers: workers.size,
      roles: [...workers].map((w) => roleOf(w ?? '')),
    }).toEqual({ idle: target, inUse: 2, workers: 2, roles: [Role.Worker, Role.Worker] });
  });

  it('brings every idle volume on both workers and every attached volume to the bucket tree', async () => {
    // Act: a change, an addition and a deletion in one push window.
    await put('live/index.html', '<h1>second, longer</h1>\n');
    await put('live/new/added.html', 'added on every volume\n');
    await remove('live/old/page.html');
    await push.drained();

    // Assess: each volume's tree is the bucket's, and its holder sees it at its mount point.
    const tree = await bucketTree(sandbox);
    expect([...tree.keys()].sort()).toEqual(['index.html', 'new/added.html']);
    const pool = await sandbox.repo.getPool(sandbox.options.pool);
    const on = attachedTo();
    const volumes = await volumeTruth(sandbox);
    expect(volumes).toHaveLength(target + 2);
    expect(new Set(volumes.map((v) => v.volumeId))).toEqual(new Set(on.keys()));
    const wrong: string[] = [];
    for (const v of volumes) {
      const holder = on.get(v.volumeId) ?? '';
      const mount = v.state === VolumeState.InUse ? webMountPath : `${workerMountRoot}/${v.volumeId}`;
      const seen = await readFile(join(sandbox.cloud.hostRoot(holder), mount, 'index.html'), 'utf8').catch(
        () => undefined,
      );
      if (!holdsTree(v, tree) || v.marker !== pool.generation || seen !== '<h1>second, longer</h1>\n')
        wrong.push(
          `${v.volumeId} (${v.state} on ${holder}): marker ${v.marker}, index ${JSON.stringify(seen)}`,
        );
    }
    expect(wrong).toEqual([]);
  });

  it('records the push as Success, each worker reporting exactly the volumes EC2 attaches to it', async () => {
    const last = (await push.pushes()).at(-1);
    const on = attachedTo();
    const truth = new Map<string, string[]>();
    for (const v of await volumeTruth(sandbox)) {
      const holder = on.get(v.volumeId) ?? '';
      truth.set(holder, [...(truth.get(holder) ?? []), v.volumeId].sort());
    }
    const reported = new Map(
      Object.entries(last?.instances ?? {}).map(([id, o]) => [
        id,
        o.volumes
          .filter((v) => v.status === 'ok')
          .map((v) => v.volumeId)
          .sort(),
      ]),
    );

    expect({
      status: last?.status,
      targets: last?.summary?.targets,
      current: last?.summary?.volumesCurrent,
    }).toEqual({ status: 'Success', targets: 4, current: target + 2 });
    expect(reported).toEqual(truth);
  });

  it('leaves every invariant holding', async () => {
    await expectInvariants(sandbox);
  });
});
