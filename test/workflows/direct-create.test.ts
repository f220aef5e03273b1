import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VolumeState } from '../../lambdas/shared/model.js';
import { poolTag } from '../../lambdas/shared/tags.js';
import { checkInvariants, volumeGeneration } from '../../sandbox/invariants.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { contentAndSnapshot, groupMembers, putContent, scaleAndSettle } from '../helpers/sandbox.js';

// The fast path of the DESIGN: an AZ with no idle volume gets one created from the latest snapshot
// straight for the instance, brought current there by a delta sync, instead of waiting for replenish.
let sandbox: Sandbox;
let snapshotId: string;
let poolVolumesBefore: Set<string>;
let launched: string[];

beforeAll(async () => {
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: 1, timeScale: 0.05, seed: 41 });
  snapshotId = await contentAndSnapshot(sandbox, 'direct');
  // Content moves on after the snapshot: a volume made from it starts one generation behind.
  await putContent(sandbox, 'live/index.html', '<h1>v2</h1>');
  await sandbox.repo.bumpGeneration(sandbox.options.pool);
  poolVolumesBefore = new Set(poolVolumes().map((v) => v.volumeId));
  launched = await scaleAndSettle(sandbox, 3);
}, 300_000);

afterAll(async () => {
  await sandbox?.stop();
});

function poolVolumes() {
  return sandbox.cloud
    .snapshotState()
    .volumes.filter((v) => v.tags[poolTag] === sandbox.options.pool && v.state !== 'deleted');
}

describe('direct creation when the AZ has no idle volume', () => {
  it('puts three launches InService on a pool of one idle volume', () => {
    expect(launched).toHaveLength(3);
    const states = launched.map(
      (id) => groupMembers(sandbox).find((m) => m.instanceId === id)?.lifecycleState,
    );
    expect(states).toEqual(['InService', 'InService', 'InService']);
  });

  it('attaches the idle volume and two volumes made from the latest snapshot straight onto the instances', () => {
    const held = launched.map((id) => poolVolumes().filter((v) => v.attachment?.instanceId === id));
    expect(held.map((h) => h.length)).toEqual([1, 1, 1]);
    const volumes = held.flat();
    expect(new Set(volumes.map((v) => v.volumeId)).size).toBe(3);
    const fromPool = volumes.filter((v) => poolVolumesBefore.has(v.volumeId));
    const created = volumes.filter((v) => !poolVolumesBefore.has(v.volumeId));
    expect(fromPool).toHaveLength(1);
    expect(created.map((v) => v.snapshotId)).toEqual([snapshotId, snapshotId]);
    // Straight onto the instance: never attached to the sync worker on the way.
    expect(created.map((v) => v.attachedTo)).toEqual(created.map((v) => [v.attachment?.instanceId]));
  });

  it('brings every instance current: the served page and the generation marker are the latest', async () => {
    const generation = (await sandbox.repo.getPool(sandbox.options.pool)).generation;
    for (const instanceId of launched) {
      const served = readFileSync(join(sandbox.cloud.hostRoot(instanceId), 'srv/www/index.html'), 'utf8');
      expect(served).toBe('<h1>v2</h1>');
      const volume = poolVolumes().find((v) => v.attachment?.instanceId === instanceId);
      expect(volume && volumeGeneration(sandbox, volume.volumeId)).toBe(generation);
      expect(await sandbox.repo.findVolume(volume?.volumeId ?? '')).toMatchObject({
        state: VolumeState.InUse,
        holder: instanceId,
      });
    }
  });

  it('refills the pool to its target and keeps every invariant', async () => {
    await sandbox.replenishAll();
    const idle = await sandbox.repo.listVolumes({ pool: sandbox.options.pool, state: VolumeState.Idle });
    expect(idle.length).toBeGreaterThanOrEqual(1);
    const report = await checkInvariants(sandbox);
    expect(report.violations).toEqual([]);
  });
});
