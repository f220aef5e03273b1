import { DetachVolumeCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VolumeState } from '../../lambdas/shared/model.js';
import { poolTag } from '../../lambdas/shared/tags.js';
import { checkInvariants, volumeGeneration } from '../../sandbox/invariants.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { runDocument, sandboxClients } from './helpers.js';

let sandbox: Sandbox;

beforeAll(async () => {
  sandbox = await Sandbox.start({ azs: 2, idlePerAz: 0, timeScale: 0.05, seed: 31 });
  await sandbox.repo.bumpGeneration('web');
}, 120_000);

afterAll(async () => {
  await sandbox?.stop();
});

/** Idle volumes per AZ as EC2 and the files show them: attached to the AZ's worker, marker current. */
async function idlePerAz() {
  const pool = await sandbox.repo.getPool('web');
  const state = sandbox.cloud.snapshotState();
  const out: Record<string, number> = {};
  for (const az of sandbox.options.azs) {
    const records = await sandbox.repo.listVolumes({ pool: 'web', az, state: VolumeState.Idle });
    for (const r of records) {
      const v = state.volumes.find((x) => x.volumeId === r.volumeId);
      expect(v?.tags[poolTag]).toBe('web');
      expect(v?.attachment?.instanceId).toBe(sandbox.workers[az]);
      expect(volumeGeneration(sandbox, r.volumeId)).toBe(pool.generation);
    }
    out[az] = records.length;
  }
  return out;
}

const poolVolumesInEc2 = () =>
  sandbox.cloud
    .snapshotState()
    .volumes.filter((v) => v.tags[poolTag] === 'web' && v.state !== 'deleted' && v.state !== 'deleting');

describe('pool targets', () => {
  it('converges an empty pool to 3 idle, current volumes per AZ', async () => {
    await sandbox.repo.setTarget('web', 3);
    await sandbox.replenishAll();
    expect(await idlePerAz()).toEqual({ 'us-east-1a': 3, 'us-east-1b': 3 });
    expect(poolVolumesInEc2()).toHaveLength(6);
  });

  it('adds 4 volumes when the target rises to 5', async () => {
    await sandbox.repo.setTarget('web', 5);
    await sandbox.replenishAll();
    expect(await idlePerAz()).toEqual({ 'us-east-1a': 5, 'us-east-1b': 5 });
    expect(poolVolumesInEc2()).toHaveLength(10);
  });

  it('retires 8 volumes when the target falls to 1, deleting them in EC2', async () => {
    await sandbox.repo.setTarget('web', 1);
    await sandbox.replenishAll();
    expect(await idlePerAz()).toEqual({ 'us-east-1a': 1, 'us-east-1b': 1 });
    expect(poolVolumesInEc2()).toHaveLength(2);
    expect((await checkInvariants(sandbox)).violations).toEqual([]);
  });

  it('finishes the retires a failed run left: RETIRING volumes on the worker or detached are deleted', async () => {
    // Two extras a failed run marked RETIRING: one still mounted on the worker, one already detached.
    await sandbox.repo.setTarget('web', 2);
    await sandbox.replenishAll();
    const az = sandbox.options.azs[0] ?? 'us-east-1a';
    const [onWorker, detached] = await sandbox.repo.listVolumes({ pool: 'web', az, state: VolumeState.Idle });
    if (!onWorker || !detached) throw new Error('expected two idle volumes');
    for (const v of [onWorker, detached]) {
      await sandbox.repo.transition({
        volumeId: v.volumeId,
        from: VolumeState.Idle,
        to: VolumeState.Retiring,
      });
    }
    const worker = sandbox.workers[az] ?? '';
    await runDocument(sandbox, 'Volsd-Unmount', worker, { VolumeId: detached.volumeId });
    const { ec2 } = await sandboxClients();
    await ec2.send(new DetachVolumeCommand({ VolumeId: detached.volumeId }));
    await sandbox.cloud.waitFor(
      () =>
        sandbox.cloud.snapshotState().volumes.find((v) => v.volumeId === detached.volumeId)?.state ===
        'available',
      60,
    );
    await sandbox.replenishAll();
    const ids = new Set(poolVolumesInEc2().map((v) => v.volumeId));
    expect(ids.has(onWorker.volumeId)).toBe(false);
    expect(ids.has(detached.volumeId)).toBe(false);
    expect(await sandbox.repo.findVolume(onWorker.volumeId)).toBeUndefined();
    expect(await sandbox.repo.findVolume(detached.volumeId)).toBeUndefined();
    expect(await idlePerAz()).toEqual({ 'us-east-1a': 2, 'us-east-1b': 2 });
    expect((await checkInvariants(sandbox)).violations).toEqual([]);
  });

  it('aborts an attach to the worker that stays stuck, and the next round brings that volume in', async () => {
    // A stuck attach used to fail every replenish of the AZ for good: each adopted the volume, found it
    // still "attaching" and gave up in WaitAttached, before its retires and before the pool refilled.
    const az = sandbox.options.azs[1] ?? 'us-east-1b';
    const worker = sandbox.workers[az] ?? '';
    sandbox.cloud.faults.once('stuckAttach', { action: 'AttachVolume', instanceId: worker });
    await sandbox.repo.setTarget('web', 3);
    const runs = await sandbox.replenishAll();
    expect(sandbox.cloud.faults.armed()).toEqual([]); // the stuck attach did happen
    expect(runs.map((arn) => sandbox.sfn.executions.get(arn)?.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect(await idlePerAz()).toEqual({ 'us-east-1a': 3, 'us-east-1b': 3 });
    expect(poolVolumesInEc2()).toHaveLength(6);
    const attachments = sandbox.cloud
      .snapshotState()
      .volumes.filter((v) => v.attachment?.state === 'attaching');
    expect(attachments).toEqual([]);
    expect((await checkInvariants(sandbox)).violations).toEqual([]);
  });
});
