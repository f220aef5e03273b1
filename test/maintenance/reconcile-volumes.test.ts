import { readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DeleteVolumeCommand,
  DetachVolumeCommand,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPoolVolume, creationKey, creationTag } from '../../lambdas/shared/ec2-ops.js';
import { VolumeState } from '../../lambdas/shared/model.js';
import { poolTag, Role, roleTag } from '../../lambdas/shared/tags.js';
import { checkInvariants } from '../../sandbox/invariants.js';
import type { Sandbox } from '../../sandbox/runtime.js';
import {
  content,
  expectInvariants,
  expectNothingLeft,
  repairedKinds,
  runDocument,
  runReconcile,
  sandboxClients,
  startPool,
} from './helpers.js';

let sandbox: Sandbox;
let az: string;
let worker: string;

beforeAll(async () => {
  sandbox = await startPool(31);
  az = sandbox.options.azs[0] ?? '';
  worker = sandbox.workers[az] ?? '';
}, 120_000);

afterAll(async () => {
  await sandbox?.stop();
});

async function idleVolumes() {
  return sandbox.repo.listVolumes({ pool: sandbox.options.pool, az, state: VolumeState.Idle });
}

async function anIdleVolume(): Promise<string> {
  const volume = (await idleVolumes())[0];
  if (!volume) throw new Error('no idle volume');
  return volume.volumeId;
}

function ec2Volume(volumeId: string) {
  return sandbox.cloud.snapshotState().volumes.find((v) => v.volumeId === volumeId && v.state !== 'deleted');
}

describe('a healthy pool', () => {
  it('has nothing to repair', async () => {
    const result = await runReconcile(sandbox);

    expect(result.status).toBe('SUCCEEDED');
    expect(result.output).toMatchObject({ found: 0, repairs: [], unresolved: [], outcome: 'reconciled' });
  });
});

describe('a stale claim', () => {
  it('still on the worker is remounted there and IDLE again, its assignment dropped', async () => {
    const holder = sandbox.cloud.launchInstance({ az, tags: { [poolTag]: sandbox.options.pool } });
    const claimed = await sandbox.repo.claimVolume({ pool: sandbox.options.pool, az, instanceId: holder });

    const result = await runReconcile(sandbox);

    expect(repairedKinds(result)).toEqual({ staleClaim: 1 });
    expect(await sandbox.repo.getVolume(claimed.volumeId)).toMatchObject({
      state: VolumeState.Idle,
      holder: worker,
    });
    expect(await sandbox.repo.getAssignment(holder)).toBeUndefined();
    expect(sandbox.cloud.snapshotState().commands.at(-1)).toMatchObject({
      documentName: 'Volsd-Mount',
      status: 'Success',
    });
    await expectNothingLeft(sandbox);
    await expectInvariants(sandbox);
  });

  it('is repaired once when the function crashes after finishing it (the step runs again)', async () => {
    const holder = sandbox.cloud.launchInstance({ az, tags: { [poolTag]: sandbox.options.pool } });
    const claimed = await sandbox.repo.claimVolume({ pool: sandbox.options.pool, az, instanceId: holder });
    const crashesBefore = sandbox.sfn.crashCounts.get('Finish') ?? 0;
    sandbox.sfn.crashNext('Finish');

    const result = await runReconcile(sandbox);

    expect(sandbox.sfn.crashCounts.get('Finish')).toBe(crashesBefore + 1);
    expect(result.status).toBe('SUCCEEDED');
    expect(repairedKinds(result)).toEqual({ staleClaim: 1 });
    expect(await sandbox.repo.getVolume(claimed.volumeId)).toMatchObject({
      state: VolumeState.Idle,
      holder: worker,
    });
    await expectNothingLeft(sandbox);
    await expectInvariants(sandbox);
  });

  it('already detached from the worker goes back to the pool and a replenish makes it IDLE', async () => {
    const holder = sandbox.cloud.launchInstance({ az, tags: { [poolTag]: sandbox.options.pool } });
    const claimed = await sandbox.repo.claimVolume({ pool: sandbox.options.pool, az, instanceId: holder });
    // The acquire got as far as unmounting and detaching on the worker, then was lost.
    await sandbox.repo.transition({
      volumeId: claimed.volumeId,
      from: VolumeState.Claimed,
      to: VolumeState.Detaching,
    });
    await runDocument(sandbox, 'Volsd-Unmount', worker, { VolumeId: claimed.volumeId });
    const { ec2 } = await sandboxClients();
    await ec2.send(new DetachVolumeCommand({ VolumeId: claimed.volumeId }));
    await sandbox.cloud.waitFor(() => ec2Volume(claimed.volumeId)?.state === 'available', 60);

    const result = await runReconcile(sandbox);

    expect(repairedKinds(result)).toEqual({ staleClaim: 1 });
    expect(result.output.replenished).toEqual([az]);
    expect(await sandbox.repo.getVolume(claimed.volumeId)).toMatchObject({
      state: VolumeState.Idle,
      holder: worker,
    });
    expect(ec2Volume(claimed.volumeId)?.attachment).toMatchObject({ instanceId: worker, state: 'attached' });
    expect(await sandbox.repo.getAssignment(holder)).toBeUndefined();
    await expectNothingLeft(sandbox);
    await expectInvariants(sandbox);
  });

  it('is left alone while it is younger than the acquire bound', async () => {
    const holder = sandbox.cloud.launchInstance({ az, tags: { [poolTag]: sandbox.options.pool } });
    const claimed = await sandbox.repo.claimVolume({ pool: sandbox.options.pool, az, instanceId: holder });
    try {
      const result = await runReconcile(sandbox, { claimMaxAgeSeconds: 1800 });

      expect(result.output.found).toBe(0);
      expect((await sandbox.repo.getVolume(claimed.volumeId)).state).toBe(VolumeState.Claimed);
    } finally {
      await runReconcile(sandbox);
    }
  });
});

describe('a pool volume missing from the table', () => {
  it('on the worker is adopted and IDLE again after the replenish', async () => {
    const volumeId = await anIdleVolume();
    await sandbox.repo.transition({ volumeId, from: VolumeState.Idle, to: VolumeState.Error });
    await sandbox.repo.forgetVolume(volumeId);

    const result = await runReconcile(sandbox);

    expect(repairedKinds(result)).toEqual({ untracked: 1 });
    expect(await sandbox.repo.getVolume(volumeId)).toMatchObject({ state: VolumeState.Idle, holder: worker });
    await expectNothingLeft(sandbox);
    await expectInvariants(sandbox);
  });

  it('on the worker, changed while untracked, is rebuilt from the bucket before it is IDLE again', async () => {
    const volumeId = await anIdleVolume();
    // While the table did not know it, a file was changed to other bytes of the same size, its mtime kept:
    // a plain sync (size, LastModified, recorded ETags) would keep it.
    const page = join(sandbox.cloud.volumeDataDir(volumeId), 'index.html');
    const { mtime } = statSync(page);
    writeFileSync(page, 'x'.repeat(Buffer.byteLength(content)));
    utimesSync(page, mtime, mtime);
    await sandbox.repo.transition({ volumeId, from: VolumeState.Idle, to: VolumeState.Error });
    await sandbox.repo.forgetVolume(volumeId);

    const result = await runReconcile(sandbox);

    expect(repairedKinds(result)).toEqual({ untracked: 1 });
    expect(await sandbox.repo.getVolume(volumeId)).toMatchObject({ state: VolumeState.Idle, holder: worker });
    expect(readFileSync(page, 'utf8')).toBe(content);
    await expectNothingLeft(sandbox);
    await expectInvariants(sandbox);
  });

  it('created by Volsd but lost before its record (crash after CreateVolume) is adopted by its creation tag', async () => {
    const { ec2 } = await sandboxClients();
    const pool = sandbox.options.pool;
    // What createRecordedVolume does up to the crash: the creation recorded, CreateVolume called, and
    // neither the id bound to the record nor the volume registered.
    const creation = await sandbox.repo.openCreation({ pool, az, key: creationKey('lost-1') });
    const volumeId = await createPoolVolume(ec2, {
      pool,
      az,
      clientToken: 'lost-1',
      creation: creation.nonce,
      spec: { VOLUME_SIZE_GIB: 20, VOLUME_TYPE: 'gp3' },
    });
    await sandbox.cloud.waitFor(() => ec2Volume(volumeId)?.state === 'available', 60);

    const result = await runReconcile(sandbox);

    expect(repairedKinds(result)).toEqual({ untracked: 1 });
    // From now on the id proves it: the record names the volume.
    expect((await sandbox.repo.listCreations(pool)).find((c) => c.key === creation.key)?.volumeId).toBe(
      volumeId,
    );
    // The replenish adopts it; above target, it may retire an idle extra in the same run.
    const record = await sandbox.repo.findVolume(volumeId);
    expect(record === undefined || record.state === VolumeState.Idle).toBe(true);
    expect(await idleVolumes()).toHaveLength(2);
    await expectNothingLeft(sandbox);
    await expectInvariants(sandbox);
  });
});

describe('a volume someone else tagged with the pool', () => {
  /** Creates a volume as another principal would: the pool's tags, no creation record, data of its own. */
  async function foreignVolume(name: string): Promise<string> {
    const { ec2 } = await sandboxClients();
    const created = await ec2.send(
      new CreateVolumeCommand({
        AvailabilityZone: az,
        Size: 20,
        TagSpecifications: [
          {
            ResourceType: 'volume',
            Tags: [
              { Key: poolTag, Value: sandbox.options.pool },
              { Key: roleTag, Value: Role.Volume },
              // A guess at a creation tag proves nothing: no record has this nonce.
              { Key: creationTag, Value: `guess-${name}` },
            ],
          },
        ],
      }),
    );
    const volumeId = created.VolumeId ?? '';
    await sandbox.cloud.waitFor(() => ec2Volume(volumeId)?.state === 'available', 60);
    writeFileSync(join(sandbox.cloud.volumeDataDir(volumeId), 'owner.txt'), `${name}'s data`);
    return volumeId;
  }

  it('is reported (output, table report) and left alone: not registered, detached, deleted or wiped', async () => {
    const { ec2 } = await sandboxClients();
    const detached = await foreignVolume('detached');
    const onWorker = await foreignVolume('on-worker');
    // On the worker, adoption would have meant a mount and a sync --delete over its data.
    await ec2.send(new AttachVolumeCommand({ VolumeId: onWorker, InstanceId: worker, Device: '/dev/sdz' }));
    await sandbox.cloud.waitFor(() => ec2Volume(onWorker)?.attachment?.state === 'attached', 60);
    try {
      const result = await runReconcile(sandbox);

      expect(result.status).toBe('SUCCEEDED');
      expect(result.output.found).toBe(0);
      expect((result.output.foreign ?? []).map((f) => f.volumeId).sort()).toEqual(
        [detached, onWorker].sort(),
      );
      const report = await sandbox.repo.getForeignVolumes(sandbox.options.pool);
      expect(report.volumes.map((f) => f.volumeId).sort()).toEqual([detached, onWorker].sort());
      // Ground truth: the simulator's EC2 state and the volumes' data.
      expect(await sandbox.repo.findVolume(detached)).toBeUndefined();
      expect(await sandbox.repo.findVolume(onWorker)).toBeUndefined();
      expect(ec2Volume(detached)).toMatchObject({ state: 'available' });
      expect(ec2Volume(onWorker)?.attachment).toMatchObject({ instanceId: worker, state: 'attached' });
      for (const [volumeId, name] of [
        [detached, 'detached'],
        [onWorker, 'on-worker'],
      ] as const) {
        expect(readdirSync(sandbox.cloud.volumeDataDir(volumeId))).toEqual(['owner.txt']);
        expect(readFileSync(join(sandbox.cloud.volumeDataDir(volumeId), 'owner.txt'), 'utf8')).toBe(
          `${name}'s data`,
        );
      }
      // Nothing else of the pool moved: both idle volumes still serve.
      expect(await idleVolumes()).toHaveLength(2);
      await expectNothingLeft(sandbox);
      // The only invariant they break is the one they are: pool-tagged volumes the table does not know.
      const violations = (await checkInvariants(sandbox)).violations;
      expect(violations.every((v) => v.invariant === 'noLeakedVolume')).toBe(true);
      expect(violations).toHaveLength(2);
    } finally {
      // Their owner takes them back; the report clears at the next run.
      await ec2.send(new DetachVolumeCommand({ VolumeId: onWorker, Force: true }));
      await sandbox.cloud.waitFor(() => ec2Volume(onWorker)?.state === 'available', 60);
      await ec2.send(new DeleteVolumeCommand({ VolumeId: onWorker }));
      await ec2.send(new DeleteVolumeCommand({ VolumeId: detached }));
      await runReconcile(sandbox);
    }
    expect((await sandbox.repo.getForeignVolumes(sandbox.options.pool)).volumes).toEqual([]);
    await expectInvariants(sandbox);
  });
});

describe('a table entry whose volume is gone', () => {
  it('is forgotten', async () => {
    const volumeId = 'vol-0bbbbbbbbbbbbbbb1';
    await sandbox.repo.registerVolume({
      volumeId,
      pool: sandbox.options.pool,
      az,
      state: VolumeState.Idle,
      holder: worker,
      generation: 1,
    });

    const result = await runReconcile(sandbox);

    expect(repairedKinds(result)).toEqual({ missing: 1 });
    expect(await sandbox.repo.findVolume(volumeId)).toBeUndefined();
    await expectNothingLeft(sandbox);
    await expectInvariants(sandbox);
  });
});

describe('an ERROR volume', () => {
  it('still on the worker goes back to the pool and is IDLE after the replenish', async () => {
    const volumeId = await anIdleVolume();
    await sandbox.repo.transition({
      volumeId,
      from: VolumeState.Idle,
      to: VolumeState.Error,
      set: { reason: 'test: unknown state' },
    });

    const result = await runReconcile(sandbox);

    expect(repairedKinds(result)).toEqual({ errorVolume: 1 });
    expect(await sandbox.repo.getVolume(volumeId)).toMatchObject({ state: VolumeState.Idle, holder: worker });
    await expectNothingLeft(sandbox);
    await expectInvariants(sandbox);
  });
});

describe('a RETIRING volume that was never deleted', () => {
  it('is unmounted on the worker, detached, deleted and forgotten', async () => {
    const volumeId = await anIdleVolume();
    await sandbox.repo.transition({ volumeId, from: VolumeState.Idle, to: VolumeState.Retiring });

    const result = await runReconcile(sandbox);

    expect(repairedKinds(result)).toEqual({ unfinishedRetire: 1 });
    expect(await sandbox.repo.findVolume(volumeId)).toBeUndefined();
    expect(ec2Volume(volumeId)?.state ?? 'gone').toMatch(/^(deleting|gone)$/);
    await expectNothingLeft(sandbox);
    await expectInvariants(sandbox);
    await sandbox.replenishAll(); // back to the target for the next tests
  });
});

describe('a run', () => {
  it('repairs at most maxRepairs and leaves the rest to the next run', async () => {
    const ids = ['vol-0ccccccccccccccc1', 'vol-0ccccccccccccccc2', 'vol-0ccccccccccccccc3'];
    for (const volumeId of ids) {
      await sandbox.repo.registerVolume({
        volumeId,
        pool: sandbox.options.pool,
        az,
        state: VolumeState.Idle,
      });
    }

    const first = await runReconcile(sandbox, { maxRepairs: 2 });
    const second = await runReconcile(sandbox, { maxRepairs: 2 });

    expect(first.output).toMatchObject({ found: 3, truncated: true });
    expect(repairedKinds(first)).toEqual({ missing: 2 });
    expect(second.output).toMatchObject({ found: 1, truncated: false });
    expect(repairedKinds(second)).toEqual({ missing: 1 });
    for (const volumeId of ids) expect(await sandbox.repo.findVolume(volumeId)).toBeUndefined();
  });
});
