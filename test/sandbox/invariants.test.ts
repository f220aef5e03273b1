import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { poolTag } from '../../lambdas/shared/tags.js';
import { checkInvariants } from '../../sandbox/invariants.js';
import { webMountPath } from '../../sandbox/readiness.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { workerMountRoot } from '../../sandbox/scenarios/push.js';
import { putContent, scaleAndSettle } from '../helpers/sandbox.js';

// Each invariant is shown to fail when its violation is put into the ground truth it reads (host trees,
// EC2, the bucket), and to hold again once the violation is taken out.
let sandbox: Sandbox;
let first = '';

beforeAll(async () => {
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: 2, timeScale: 0.02, seed: 23, agent: 'model' });
  await putContent(sandbox, 'live/index.html', 'v1');
  await sandbox.repo.bumpGeneration(sandbox.options.pool); // as the fan-out does for a push
  await sandbox.replenishAll();
  [first = ''] = await scaleAndSettle(sandbox, 1);
}, 120_000);

afterAll(async () => {
  await sandbox?.stop();
});

const violated = async (invariant: string) =>
  (await checkInvariants(sandbox)).violations.filter((v) => v.invariant === invariant).map((v) => v.detail);

/** The pool volume EC2 has attached to `instanceId`. */
function volumeOf(instanceId: string): string {
  const v = sandbox.cloud
    .snapshotState()
    .volumes.find((x) => x.tags[poolTag] === sandbox.options.pool && x.attachment?.instanceId === instanceId);
  if (!v) throw new Error(`no pool volume attached to ${instanceId}`);
  return v.volumeId;
}

/** Writes `body` into `path` of every idle volume on the workers, behind Volsd's back. */
function tamperIdleVolumes(path: string, body: string): string[] {
  const workers = new Set(Object.values(sandbox.workers));
  const idle = sandbox.cloud
    .snapshotState()
    .volumes.filter(
      (v) => v.tags[poolTag] === sandbox.options.pool && workers.has(v.attachment?.instanceId ?? '-'),
    );
  for (const v of idle) writeFileSync(join(sandbox.cloud.volumeDataDir(v.volumeId), path), body);
  return idle.map((v) => v.volumeId);
}

describe('invariants from ground truth', () => {
  it('all hold after a clean launch, which went InService serving the bucket', async () => {
    expect((await checkInvariants(sandbox)).violations).toEqual([]);
    const web = sandbox.readiness.records.filter((r) => r.groupName === sandbox.wiring.groupName);
    expect(web.map((r) => [r.instanceId, r.differences])).toEqual([[first, []]]);
  });

  it('noSharedVolume: a volume mounted on a second host while attached to the instance', async () => {
    const volumeId = volumeOf(first);
    const worker = Object.values(sandbox.workers)[0] ?? '';
    const mountPoint = join(sandbox.cloud.hostRoot(worker), workerMountRoot, `${volumeId}`);
    // The worker's empty mount point from before the acquire took the volume (umount leaves it).
    rmSync(mountPoint, { recursive: true, force: true });
    mkdirSync(dirname(mountPoint), { recursive: true });
    symlinkSync(sandbox.cloud.volumeDataDir(volumeId), mountPoint);
    try {
      const onWorker = `${worker} (/${workerMountRoot}/${volumeId})`;
      expect((await violated('noSharedVolume')).sort()).toEqual(
        [
          `${volumeId} is mounted on ${[onWorker, `${first} (/${webMountPath})`].sort().join(' and ')}`,
          `${volumeId} is attached to ${first} in EC2 but mounted on ${onWorker}`,
        ].sort(),
      );
    } finally {
      rmSync(mountPoint);
      mkdirSync(mountPoint);
    }
    expect(await violated('noSharedVolume')).toEqual([]);
  });

  it('inServiceHasCurrentVolume: a served file whose bytes differ from the bucket, same size', async () => {
    const file = join(sandbox.cloud.hostRoot(first), webMountPath, 'index.html');
    writeFileSync(file, 'v2');
    try {
      expect(await violated('inServiceHasCurrentVolume')).toEqual([
        `${first} differs from the bucket: changed index.html`,
      ]);
    } finally {
      writeFileSync(file, 'v1');
    }
    expect(await violated('inServiceHasCurrentVolume')).toEqual([]);
  });

  it('inServiceHasCurrentVolume: a bucket object no InService instance holds', async () => {
    await putContent(sandbox, 'live/news.html', 'news');
    expect(await violated('inServiceHasCurrentVolume')).toEqual([
      `${first} differs from the bucket: missing news.html`,
    ]);
  });

  it('currentAtReady: an instance that went InService behind the bucket with no push in flight, even once repaired', async () => {
    // Volsd's own records say the idle volumes are current (same generation); their bytes are not.
    tamperIdleVolumes('index.html', 'v0');
    writeFileSync(join(sandbox.cloud.hostRoot(first), webMountPath, 'news.html'), 'news');
    const [second = ''] = await scaleAndSettle(sandbox, 2);

    const record = sandbox.readiness.records.find((r) => r.instanceId === second);
    expect(record).toMatchObject({
      differences: ['changed index.html', 'missing news.html'],
      pushInFlight: false,
    });
    // Repaired after the fact: the end-of-run check is satisfied, the moment of InService is not.
    const served = join(sandbox.cloud.hostRoot(second), webMountPath);
    writeFileSync(join(served, 'index.html'), 'v1');
    writeFileSync(join(served, 'news.html'), 'news');
    expect(await violated('inServiceHasCurrentVolume')).toEqual([]);
    expect(await violated('currentAtReady')).toEqual([
      `${second} went InService at ${record?.at.toFixed(1)} s behind the bucket: changed index.html, missing news.html`,
    ]);
  });

  it('currentAtReady excuses a change a wired push pipeline has not fanned out yet; the end check does not', async () => {
    sandbox.readiness.pushPipelineWired(); // as wirePushPipeline does; no fan-out ever goes out here
    await putContent(sandbox, 'live/late.html', 'late');
    const [third = ''] = await scaleAndSettle(sandbox, 3);

    expect(sandbox.readiness.records.find((r) => r.instanceId === third)).toMatchObject({
      differences: expect.arrayContaining(['missing late.html']),
      pushInFlight: true,
    });
    expect((await violated('currentAtReady')).some((d) => d.startsWith(third))).toBe(false);
    expect((await violated('inServiceHasCurrentVolume')).some((d) => d.startsWith(`${third} differs`))).toBe(
      true,
    );
  });
});
