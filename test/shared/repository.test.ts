import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ConcurrentModification,
  IllegalTransition,
  InvalidInput,
  NoIdleVolume,
  UnknownPool,
} from '../../lambdas/shared/errors.js';
import { allVolumeStates, canTransition, VolumeState } from '../../lambdas/shared/model.js';
import { type ClaimStep, VolumeRepository } from '../../lambdas/shared/repository.js';
import { type LocalDynamo, startDynamo } from '../../sandbox/servers.js';
import { instanceId, volumeId } from '../helpers/ids.js';

const AZ = 'us-east-1a';
let dynamo: LocalDynamo;
let tableCounter = 0;
let table: string;
let repo: VolumeRepository;

async function scanAll() {
  const out = await dynamo.doc.send(new ScanCommand({ TableName: table }));
  return out.Items ?? [];
}

async function seedIdle(count: number, pool = 'web', az = AZ) {
  for (let i = 0; i < count; i++) {
    await repo.registerVolume({ volumeId: volumeId(i + 1), pool, az, state: VolumeState.Idle });
  }
}

beforeAll(async () => {
  dynamo = await startDynamo();
});
afterAll(async () => {
  await dynamo.stop();
});
beforeEach(async () => {
  table = `volumes-${++tableCounter}`;
  await dynamo.createVolumeTable(table);
  repo = new VolumeRepository(dynamo.doc, { tableName: table });
  await repo.putPool({ pool: 'web', azs: [AZ, 'us-east-1b'], targetIdlePerAz: 2 });
});

describe('claimVolume', () => {
  it('gives 50 volumes to exactly 50 of 200 concurrent claimers and NoIdleVolume to the rest', async () => {
    await seedIdle(50);
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) =>
        repo.claimVolume({ pool: 'web', az: AZ, instanceId: instanceId(i + 1) }),
      ),
    );
    const won = results.flatMap((r, i) =>
      r.status === 'fulfilled' ? [{ instance: instanceId(i + 1), v: r.value }] : [],
    );
    const lost = results.filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(50);
    expect(new Set(won.map((w) => w.v.volumeId)).size).toBe(50);
    expect(new Set(won.map((w) => w.instance)).size).toBe(50);
    expect(lost.every((r) => r.status === 'rejected' && r.reason instanceof NoIdleVolume)).toBe(true);
    // Ground truth in the table: each claimed volume's holder has an assignment naming it, and nothing else.
    const items = await scanAll();
    const volumes = items.filter((i) => String(i.pk).startsWith('VOL#'));
    const assignments = items.filter((i) => String(i.pk).startsWith('INSTANCE#') && i.volumeId);
    expect(volumes.every((v) => v.state === VolumeState.Claimed)).toBe(true);
    expect(assignments).toHaveLength(50);
    expect(await repo.countWaiting('web', AZ)).toBe(150);
    for (const a of assignments) {
      const v = volumes.find((x) => x.volumeId === a.volumeId);
      expect(v?.holder).toBe(a.instanceId);
    }
  });

  it('returns the same volume to an instance that claims again', async () => {
    await seedIdle(3);
    const first = await repo.claimVolume({ pool: 'web', az: AZ, instanceId: instanceId(7) });
    const again = await repo.claimVolume({ pool: 'web', az: AZ, instanceId: instanceId(7) });
    expect(again.volumeId).toBe(first.volumeId);
    const idle = await repo.listVolumes({ pool: 'web', az: AZ, state: VolumeState.Idle });
    expect(idle).toHaveLength(2);
  });

  it.each<ClaimStep>(['afterAssignmentPut', 'afterVolumeClaimed'])(
    'is completed by a retry after a crash %s, with no leak and no double assignment',
    async (step) => {
      await seedIdle(3);
      const crashing = new VolumeRepository(dynamo.doc, {
        tableName: table,
        onClaimStep: (s) => {
          if (s === step) throw new Error(`crash ${s}`);
        },
      });
      await expect(crashing.claimVolume({ pool: 'web', az: AZ, instanceId: instanceId(1) })).rejects.toThrow(
        /crash/,
      );

      const claimed = await repo.claimVolume({ pool: 'web', az: AZ, instanceId: instanceId(1) });

      const volumes = (await scanAll()).filter((i) => String(i.pk).startsWith('VOL#'));
      const held = volumes.filter((v) => v.holder === instanceId(1));
      expect(held.map((v) => v.volumeId)).toEqual([claimed.volumeId]);
      expect(volumes.filter((v) => v.state === VolumeState.Idle)).toHaveLength(2);
      expect((await repo.getAssignment(instanceId(1)))?.volumeId).toBe(claimed.volumeId);
    },
  );

  it('keeps a claim that found nothing as waiting demand until a retry claims a volume', async () => {
    await expect(repo.claimVolume({ pool: 'web', az: AZ, instanceId: instanceId(1) })).rejects.toBeInstanceOf(
      NoIdleVolume,
    );
    expect(await repo.getAssignment(instanceId(1))).toMatchObject({ instanceId: instanceId(1) });
    expect(await repo.countWaiting('web', AZ)).toBe(1);
    expect(await repo.countWaiting('web', 'us-east-1b')).toBe(0);
    expect(await repo.listVolumes({ pool: 'web', az: AZ })).toEqual([]);

    await seedIdle(1);
    const claimed = await repo.claimVolume({ pool: 'web', az: AZ, instanceId: instanceId(1) });
    expect(claimed.holder).toBe(instanceId(1));
    expect(await repo.countWaiting('web', AZ)).toBe(0);
  });

  it('stops counting a waiting instance once its assignment is dropped', async () => {
    await expect(repo.claimVolume({ pool: 'web', az: AZ, instanceId: instanceId(2) })).rejects.toBeInstanceOf(
      NoIdleVolume,
    );
    await repo.dropAssignment(instanceId(2));
    expect(await repo.countWaiting('web', AZ)).toBe(0);
  });

  it('only claims in the requested AZ', async () => {
    await seedIdle(2, 'web', 'us-east-1b');
    await expect(repo.claimVolume({ pool: 'web', az: AZ, instanceId: instanceId(1) })).rejects.toBeInstanceOf(
      NoIdleVolume,
    );
  });
});

describe('transition', () => {
  it('refuses every transition that the model does not list, and writes nothing', async () => {
    let n = 100;
    for (const from of allVolumeStates) {
      for (const to of allVolumeStates) {
        if (canTransition(from, to)) continue;
        const id = volumeId(n++);
        await repo.registerVolume({ volumeId: id, pool: 'web', az: AZ, state: from });
        await expect(repo.transition({ volumeId: id, from, to })).rejects.toBeInstanceOf(IllegalTransition);
        expect((await repo.getVolume(id)).state).toBe(from);
      }
    }
  });

  it('applies an allowed transition, bumps the version and moves the index key', async () => {
    await seedIdle(1);
    const before = await repo.getVolume(volumeId(1));
    const after = await repo.transition({
      volumeId: volumeId(1),
      from: VolumeState.Idle,
      to: VolumeState.Claimed,
      expectedVersion: before.version,
      set: { holder: instanceId(9) },
    });
    expect(after).toMatchObject({
      state: VolumeState.Claimed,
      version: before.version + 1,
      holder: instanceId(9),
    });
    expect(await repo.listVolumes({ pool: 'web', az: AZ, state: VolumeState.Claimed })).toHaveLength(1);
    expect(await repo.listVolumes({ pool: 'web', az: AZ, state: VolumeState.Idle })).toHaveLength(0);
  });

  it('refuses a write against a stale version or a wrong current state', async () => {
    await seedIdle(1);
    const v = await repo.getVolume(volumeId(1));
    await repo.transition({ volumeId: v.volumeId, from: VolumeState.Idle, to: VolumeState.Syncing });
    await expect(
      repo.transition({
        volumeId: v.volumeId,
        from: VolumeState.Syncing,
        to: VolumeState.Idle,
        expectedVersion: v.version,
      }),
    ).rejects.toBeInstanceOf(ConcurrentModification);
    await expect(
      repo.transition({ volumeId: v.volumeId, from: VolumeState.Idle, to: VolumeState.Claimed }),
    ).rejects.toBeInstanceOf(ConcurrentModification);
  });

  it('clears fields set to null', async () => {
    await seedIdle(1);
    await repo.transition({
      volumeId: volumeId(1),
      from: 'IDLE',
      to: 'CLAIMED',
      set: { holder: instanceId(1) },
    });
    const back = await repo.transition({
      volumeId: volumeId(1),
      from: 'CLAIMED',
      to: 'IDLE',
      set: { holder: null },
    });
    expect(back.holder).toBeUndefined();
  });
});

describe('pool record', () => {
  it('increments the generation atomically under concurrency', async () => {
    const gens = await Promise.all(Array.from({ length: 20 }, () => repo.bumpGeneration('web')));
    expect(new Set(gens).size).toBe(20);
    expect((await repo.getPool('web')).generation).toBe(20);
  });

  it('keeps the newest snapshot when an older one is recorded later', async () => {
    await repo.setLatestSnapshot('web', {
      snapshotId: 'snap-00000000000000002',
      generation: 5,
      createdAt: 'b',
    });
    await repo.setLatestSnapshot('web', {
      snapshotId: 'snap-00000000000000001',
      generation: 3,
      createdAt: 'a',
    });
    expect((await repo.getPool('web')).latestSnapshot?.snapshotId).toBe('snap-00000000000000002');
  });

  it('updates the target and keeps the generation', async () => {
    await repo.bumpGeneration('web');
    const pool = await repo.setTarget('web', 5);
    expect(pool).toMatchObject({ targetIdlePerAz: 5, generation: 1 });
  });
});

describe('bad input', () => {
  it.each([
    [
      'unknown pool',
      () => repo.claimVolume({ pool: 'nope', az: AZ, instanceId: instanceId(1) }),
      UnknownPool,
    ],
    [
      'malformed instance id',
      () => repo.claimVolume({ pool: 'web', az: AZ, instanceId: 'i-XYZ' }),
      InvalidInput,
    ],
    ['empty AZ', () => repo.claimVolume({ pool: 'web', az: '', instanceId: instanceId(1) }), InvalidInput],
    [
      'AZ outside the pool',
      () => repo.claimVolume({ pool: 'web', az: 'us-east-1c', instanceId: instanceId(1) }),
      InvalidInput,
    ],
    [
      'malformed volume id',
      () => repo.registerVolume({ volumeId: 'vol-1', pool: 'web', az: AZ }),
      InvalidInput,
    ],
    [
      'volume of an unknown pool',
      () => repo.registerVolume({ volumeId: volumeId(1), pool: 'zz', az: AZ }),
      UnknownPool,
    ],
    [
      'malformed pool name',
      () => repo.putPool({ pool: 'Bad Name', azs: [AZ], targetIdlePerAz: 1 }),
      InvalidInput,
    ],
    ['negative target', () => repo.setTarget('web', -1), InvalidInput],
  ] as const)('refuses %s with a named error and writes nothing', async (_what, act, errorClass) => {
    const before = await scanAll();
    await expect(act()).rejects.toBeInstanceOf(errorClass);
    expect(await scanAll()).toEqual(before);
  });
});

describe('unusable device names', () => {
  it('accumulates the names recorded for an instance, once each, and keeps instances apart', async () => {
    await repo.addUnusableDevices(instanceId(1), ['/dev/sdg']);
    await repo.addUnusableDevices(instanceId(1), ['/dev/sdf', '/dev/sdg']);

    expect(await repo.unusableDevices(instanceId(1))).toEqual(['/dev/sdf', '/dev/sdg']);
    expect(await repo.unusableDevices(instanceId(2))).toEqual([]);
  });
});

describe('leases and their wanted mark', () => {
  const name = 'replenish#web#us-east-1a';

  it('marks only a live lease wanted, and the release tells the holder', async () => {
    expect(await repo.markLeaseWanted(name)).toBe(false);
    expect(await repo.acquireLease(name, 'run-1', 900)).toBe(true);
    expect(await repo.markLeaseWanted(name)).toBe(true);
    expect(await repo.acquireLease(name, 'run-2', 900)).toBe(false);
    expect(await repo.releaseLease(name, 'run-2')).toEqual({ wanted: false });
    expect(await repo.releaseLease(name, 'run-1')).toEqual({ wanted: true });
    expect(await repo.releaseLease(name, 'run-1')).toEqual({ wanted: false });
    expect(await repo.markLeaseWanted(name)).toBe(false);
  });

  it('a renewal keeps the mark; taking the lease (a new plan) clears it', async () => {
    await repo.acquireLease(name, 'run-1', 900);
    await repo.markLeaseWanted(name);
    expect(await repo.renewLease(name, 'run-1', 900)).toBe(true);
    expect(await repo.acquireLease(name, 'run-1', 900)).toBe(true);
    expect(await repo.releaseLease(name, 'run-1')).toEqual({ wanted: false });
  });

  it('an expired lease is not marked: the requester starts a run itself', async () => {
    let now = Date.parse('2026-12-04T10:00:00Z');
    const timed = new VolumeRepository(dynamo.doc, { tableName: table, now: () => new Date(now) });
    await timed.acquireLease(name, 'run-1', 60);
    now += 61_000;
    expect(await timed.markLeaseWanted(name)).toBe(false);
    expect(await timed.acquireLease(name, 'run-2', 60)).toBe(true);
  });
});

describe('transition with the record the caller just read', () => {
  it('makes no read of its own, and a record that changed since is refused all the same', async () => {
    await seedIdle(1);
    await repo.claimVolume({ pool: 'web', az: AZ, instanceId: instanceId(1) });
    const read = await repo.getVolume(volumeId(1));
    expect(read.state).toBe(VolumeState.Claimed);
    const sent: string[] = [];
    const counting = new VolumeRepository(
      {
        send: (command: { constructor: { name: string } }) => {
          sent.push(command.constructor.name);
          return dynamo.doc.send(command as never);
        },
      } as never,
      { tableName: table },
    );
    const move = () =>
      counting.transition({
        volumeId: volumeId(1),
        from: VolumeState.Claimed,
        to: VolumeState.Detaching,
        expectedHolder: instanceId(1),
        read,
      });

    expect((await move()).state).toBe(VolumeState.Detaching);
    expect(sent).toEqual(['UpdateCommand']);
    // The same (now stale) read again: the conditional write refuses it.
    await expect(move()).rejects.toBeInstanceOf(ConcurrentModification);
    expect((await repo.getVolume(volumeId(1))).state).toBe(VolumeState.Detaching);
  });
});
