/**
 * Who is current after a push: an instance whose sync fails is named in a Partial push and brought
 * current by the next one; instances launched while a push is in flight end current.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PushPipeline, wirePushPipeline } from '../../sandbox/push-wiring.js';
import { Sandbox } from '../../sandbox/runtime.js';
import {
  awsCli,
  readMarker,
  staleAtReady,
  volumeTruth,
  watchLaunches,
  webMountPath,
} from '../../sandbox/scenarios/push.js';

let sandbox: Sandbox;
let push: PushPipeline;
let scratch: string;

beforeAll(async () => {
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: 2, timeScale: 0.1, seed: 63 });
  push = await wirePushPipeline(sandbox);
  scratch = await mkdtemp(join(tmpdir(), 'volsd-push-fresh-'));
  await sandbox.replenishAll();
  sandbox.scaleTo(2);
  await sandbox.settle();
}, 300_000);

afterAll(async () => {
  push?.close();
  await sandbox?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function pushFile(name: string, content: string): Promise<void> {
  const file = join(scratch, name);
  await writeFile(file, content);
  await awsCli(sandbox, [
    's3',
    'cp',
    file,
    `s3://${sandbox.wiring.bucket}/live/${name}`,
    '--only-show-errors',
  ]);
}

/** Polls `check` every modelled second until it holds (bounded). */
async function until(check: () => Promise<boolean>, seconds = 600): Promise<void> {
  const deadline = sandbox.cloud.clock.now() + seconds;
  while (!(await check())) {
    if (sandbox.cloud.clock.now() > deadline) throw new Error('condition not reached');
    await sandbox.cloud.clock.sleep(1);
  }
}

const webInstances = () =>
  sandbox.cloud
    .snapshotState()
    .instances.filter((i) => i.autoScaling?.groupName === sandbox.wiring.groupName && i.state === 'running')
    .map((i) => i.instanceId)
    .sort();

describe('push freshness (sandbox)', { timeout: 300_000 }, () => {
  let failing = '';

  it('reports a push Partial, naming the instance whose sync failed and why', async () => {
    // Prepare
    failing = webInstances()[0] ?? '';
    sandbox.cloud.faults.once('ssmFailure', { instanceId: failing, documentName: 'Volsd-Sync' });

    // Act
    await pushFile('a.html', 'A\n');
    await push.drained();

    // Assess
    const last = (await push.pushes()).at(-1);
    expect({ status: last?.status, failed: last?.instances[failing] }).toEqual({
      status: 'Partial',
      failed: { status: 'Failed', error: expect.stringContaining('injected fault'), volumes: [] },
    });
  });

  it('leaves every other volume current and the failed one behind', async () => {
    // Prepare
    const pool = await sandbox.repo.getPool(sandbox.options.pool);

    // Act
    const volumes = await volumeTruth(sandbox);

    // Assess
    const view = volumes.map((v) => ({
      failing: v.holder === failing,
      current: v.marker === pool.generation && v.files.has('a.html'),
    }));
    expect(view.sort((x, y) => Number(x.failing) - Number(y.failing))).toEqual([
      { failing: false, current: true },
      { failing: false, current: true },
      { failing: false, current: true },
      { failing: true, current: false },
    ]);
  });

  it('brings the failed instance current with the next push', async () => {
    // Act
    await pushFile('b.html', 'B\n');
    await push.drained();

    // Assess
    const last = (await push.pushes()).at(-1);
    const pool = await sandbox.repo.getPool(sandbox.options.pool);
    const mount = join(sandbox.cloud.hostRoot(failing), webMountPath);
    expect({
      status: last?.status,
      marker: readMarker(mount),
      a: await readFile(join(mount, 'a.html'), 'utf8'),
      b: await readFile(join(mount, 'b.html'), 'utf8'),
    }).toEqual({ status: 'Success', marker: pool.generation, a: 'A\n', b: 'B\n' });
  });

  it('instances launched as a push starts and while it runs end current, none stale at ready', async () => {
    // Prepare
    const watch = watchLaunches(sandbox);
    const before = new Set(webInstances());

    // Act
    await pushFile('c.html', 'C\n');
    sandbox.scaleTo(3);
    await until(async () => (await push.pushes()).some((p) => p.keys.includes('live/c.html')));
    sandbox.scaleTo(4);
    await push.drained();
    await sandbox.settle();
    await push.drained();
    watch.stop();

    // Assess
    const launched = webInstances().filter((id) => !before.has(id));
    const pool = await sandbox.repo.getPool(sandbox.options.pool);
    const ends = await Promise.all(
      launched.map(async (id) => {
        const mount = join(sandbox.cloud.hostRoot(id), webMountPath);
        return {
          marker: readMarker(mount),
          c: await readFile(join(mount, 'c.html'), 'utf8').catch(() => ''),
        };
      }),
    );
    expect({
      launched: launched.length,
      ready: watch.readiness.size,
      ends,
      stale: await staleAtReady(watch.readiness.values(), await push.pushes()),
      // The same, from ground truth: what each served the moment it went InService against the bucket.
      behindBucketAtReady: sandbox.readiness
        .staleAtReady(sandbox.wiring.groupName)
        .filter((r) => launched.includes(r.instanceId)),
    }).toEqual({
      launched: 2,
      ready: 2,
      ends: Array(2).fill({ marker: pool.generation, c: 'C\n' }),
      stale: [],
      behindBucketAtReady: [],
    });
  });
});
