import { describe, expect, it } from 'vitest';
import {
  type CreationFact,
  creationWindowMs,
  type Ec2VolumeFact,
  type Facts,
  type InstanceFact,
  planRepairs,
  type ReconcileBounds,
} from '../../lambdas/reconcile/plan.js';
import { launchHookName } from '../../lambdas/reconcile/steps.js';
import { type VolumeRecord, VolumeState } from '../../lambdas/shared/model.js';

const now = Date.parse('2026-01-01T12:00:00Z');
const ago = (seconds: number) => new Date(now - seconds * 1000).toISOString();
const az = 'us-east-1a';
const worker = 'i-0000000000000000a';
const web = 'i-0000000000000000b';
const bounds: ReconcileBounds = { claimMaxAgeSeconds: 1800, graceSeconds: 300, maxRepairs: 25 };

function record(volumeId: string, state: VolumeState, extra: Partial<VolumeRecord> = {}): VolumeRecord {
  return {
    volumeId,
    pool: 'web',
    az,
    state,
    version: 3,
    generation: 1,
    createdAt: ago(7200),
    updatedAt: ago(3600),
    ...extra,
  };
}

function volume(volumeId: string, attachedTo?: string, extra: Partial<Ec2VolumeFact> = {}): Ec2VolumeFact {
  return {
    volumeId,
    az,
    state: attachedTo ? 'in-use' : 'available',
    createdAt: now - 7200_000,
    role: 'volume',
    ...(attachedTo ? { attachment: { instanceId: attachedTo, state: 'attached' } } : {}),
    ...extra,
  };
}

function instance(instanceId: string, state: string, isWorker = false): InstanceFact {
  return { instanceId, state, worker: isWorker, az, launchedAt: now - 3600_000 };
}

function facts(o: {
  records?: VolumeRecord[];
  volumes?: Ec2VolumeFact[];
  instances?: InstanceFact[];
  runningAcquires?: string[] | null;
  pendingLaunches?: Facts['pendingLaunches'];
  creations?: CreationFact[];
}): Facts {
  return {
    now,
    pool: { name: 'web', azs: [az] },
    records: o.records ?? [],
    volumes: new Map((o.volumes ?? []).map((v) => [v.volumeId, v])),
    instances: new Map(
      (o.instances ?? [instance(worker, 'running', true), instance(web, 'running')]).map((i) => [
        i.instanceId,
        i,
      ]),
    ),
    ...(o.runningAcquires === null ? {} : { runningAcquires: o.runningAcquires ?? [] }),
    pendingLaunches: o.pendingLaunches ?? [],
    creations: o.creations ?? [],
  };
}

/** The creation record Volsd writes for a volume it creates, bound to the volume id once created. */
function created(volumeId: string): CreationFact {
  return { key: `k-${volumeId}`, az, nonce: `n-${volumeId}`, createdAt: now - 7300_000, volumeId };
}

const plan = (f: Facts, b: ReconcileBounds = bounds) => planRepairs(f, b, 'ABANDON');
const actions = (f: Facts, b?: ReconcileBounds) =>
  plan(f, b).repairs.map((r) => `${r.kind}:${r.action}${r.detach ? `:${r.detach}` : ''}`);

describe('planRepairs', () => {
  it('plans nothing for a pool whose table matches EC2', () => {
    const f = facts({
      records: [
        record('vol-1', VolumeState.Idle, { holder: worker }),
        record('vol-2', VolumeState.InUse, { holder: web }),
      ],
      volumes: [volume('vol-1', worker), volume('vol-2', web)],
    });

    expect(plan(f)).toEqual({ repairs: [], found: 0, unresolved: [], foreign: [], staleCreations: [] });
  });

  it('leaves a claim younger than the acquire bound alone', () => {
    const f = facts({
      records: [record('vol-1', VolumeState.Claimed, { holder: web, claimedAt: ago(60) })],
      volumes: [volume('vol-1', worker)],
    });

    expect(actions(f)).toEqual([]);
  });

  it('leaves an old claim alone while an acquire for its holder runs', () => {
    const f = facts({
      records: [record('vol-1', VolumeState.Claimed, { holder: web, claimedAt: ago(4000) })],
      volumes: [volume('vol-1', worker)],
      runningAcquires: [`launch-${web}-token`],
    });

    expect(actions(f)).toEqual([]);
  });

  it('remounts an old claim still on its worker, and forces a claim on its instance back to the pool', () => {
    const f = facts({
      records: [
        record('vol-1', VolumeState.Claimed, { holder: web, claimedAt: ago(4000) }),
        record('vol-2', VolumeState.Attaching, { holder: 'i-0000000000000000c', claimedAt: ago(4000) }),
      ],
      volumes: [volume('vol-1', worker), volume('vol-2', 'i-0000000000000000c')],
      instances: [
        instance(worker, 'running', true),
        instance(web, 'running'),
        instance('i-0000000000000000c', 'running'),
      ],
    });

    expect(actions(f)).toEqual(['staleClaim:remount', 'staleClaim:toPool:force']);
    expect(plan(f).repairs[0]).toMatchObject({ workerId: worker, from: VolumeState.Claimed });
  });

  it('disposes of a volume whose holder is terminated or unknown to EC2, not of one whose holder runs', () => {
    const f = facts({
      records: [
        record('vol-1', VolumeState.InUse, { holder: 'i-0000000000000000d' }),
        record('vol-2', VolumeState.InUse, { holder: 'i-0000000000000000e' }),
        record('vol-3', VolumeState.InUse, { holder: web }),
      ],
      volumes: [volume('vol-1'), volume('vol-2'), volume('vol-3', web)],
      instances: [
        instance(worker, 'running', true),
        instance(web, 'running'),
        instance('i-0000000000000000d', 'terminated'),
      ],
    });

    expect(actions(f)).toEqual(['terminatedHolder:dispose', 'terminatedHolder:dispose']);
  });

  it("hands back IDLE volumes of a terminated worker and fixes an IDLE volume's missing holder", () => {
    const old = 'i-0000000000000000f';
    const f = facts({
      records: [record('vol-1', VolumeState.Idle, { holder: old }), record('vol-2', VolumeState.Idle)],
      volumes: [volume('vol-1'), volume('vol-2', worker)],
      instances: [instance(worker, 'running', true), instance(old, 'terminated', true)],
    });

    expect(actions(f)).toEqual(['strandedPoolVolume:toPool', 'strandedPoolVolume:setHolder']);
  });

  it('leaves records younger than the grace alone', () => {
    const f = facts({
      records: [record('vol-1', VolumeState.Idle, { holder: 'i-0000000000000000f', updatedAt: ago(10) })],
      volumes: [volume('vol-1')],
    });

    expect(actions(f)).toEqual([]);
  });

  it('forgets a record whose volume is gone, unless an acquire holds it now', () => {
    const f = facts({
      records: [
        record('vol-1', VolumeState.Idle, { holder: worker }),
        record('vol-2', VolumeState.Attaching, { holder: web, claimedAt: ago(4000) }),
      ],
      runningAcquires: [`manual-acquire-${web}-r1`],
    });

    expect(plan(f).repairs.map((r) => `${r.volumeId}:${r.action}`)).toEqual(['vol-1:forget']);
  });

  it('adopts untracked pool volumes, deletes unusable ones and ignores other roles', () => {
    const f = facts({
      volumes: [
        volume('vol-1'),
        volume('vol-2', worker),
        volume('vol-3', undefined, { state: 'error' }),
        volume('vol-4', undefined, { az: 'us-east-1f' }),
        volume('vol-5', undefined, { role: 'client' }),
        volume('vol-6', web),
      ],
      creations: ['vol-1', 'vol-2', 'vol-3', 'vol-4', 'vol-5', 'vol-6'].map(created),
    });

    expect(
      plan(f).repairs.map((r) => `${r.volumeId}:${r.action}:${r.workerId ?? r.instanceId ?? '-'}`),
    ).toEqual([
      'vol-1:adopt:-',
      `vol-2:adopt:${worker}`,
      'vol-3:delete:-',
      'vol-4:delete:-',
      `vol-6:adoptInUse:${web}`,
    ]);
  });

  it('reports a pool-tagged volume no creation record names as foreign and plans nothing for it', () => {
    const f = facts({
      volumes: [volume('vol-1'), volume('vol-2', web), volume('vol-3', undefined, { state: 'error' })],
    });

    const result = plan(f);

    expect(result.repairs).toEqual([]);
    expect(result.foreign.map((v) => `${v.volumeId}:${v.attachedTo ?? '-'}`)).toEqual([
      'vol-1:-',
      `vol-2:${web}`,
      'vol-3:-',
    ]);
  });

  it('adopts a volume lost between CreateVolume and its record by its creation tag, binding the record', () => {
    const record: CreationFact = { key: 'k-1', az, nonce: 'n-1', createdAt: now - 7210_000 };
    const f = facts({ volumes: [volume('vol-1', undefined, { creation: 'n-1' })], creations: [record] });

    expect(plan(f).repairs).toMatchObject([
      { kind: 'untracked', action: 'adopt', volumeId: 'vol-1', creationKey: 'k-1' },
    ]);
    expect(plan(f).foreign).toEqual([]);
  });

  it('takes no volume by a creation tag copied from another: two carriers prove neither', () => {
    const record: CreationFact = { key: 'k-1', az, nonce: 'n-1', createdAt: now - 7210_000 };
    const f = facts({
      volumes: [
        volume('vol-1', undefined, { creation: 'n-1' }),
        volume('vol-2', undefined, { creation: 'n-1' }),
      ],
      creations: [record],
    });

    expect(plan(f).repairs).toEqual([]);
    expect(plan(f).foreign.map((v) => v.volumeId)).toEqual(['vol-1', 'vol-2']);
  });

  it('takes no creation tag on a volume older than its record, nor one whose record names another volume', () => {
    const f = facts({
      records: [record('vol-9', VolumeState.Idle, { holder: worker })],
      volumes: [
        // An existing volume someone tags with an open record's nonce was created before the record.
        volume('vol-1', undefined, { creation: 'n-1', createdAt: now - 7200_000 }),
        volume('vol-2', undefined, { creation: 'n-9' }),
        volume('vol-9', worker, { creation: 'n-8' }),
      ],
      creations: [
        { key: 'k-1', az, nonce: 'n-1', createdAt: now - 3600_000 },
        { ...created('vol-9'), nonce: 'n-9' },
      ],
    });

    expect(plan(f).repairs).toEqual([]);
    expect(plan(f).foreign.map((v) => `${v.volumeId}: ${v.why}`)).toEqual([
      'vol-1: created outside the window of its creation record',
      'vol-2: its creation tag names the record of vol-9',
    ]);
  });

  it('drops creation records whose volume is gone or whose creation never came, past the grace', () => {
    const f = facts({
      records: [record('vol-2', VolumeState.Idle, { holder: worker })],
      volumes: [volume('vol-2', worker), volume('vol-4', undefined, { creation: 'n-4' })],
      creations: [
        created('vol-1'), // deleted by a release: neither EC2 nor the table knows it
        created('vol-2'), // live
        { key: 'k-3', az, nonce: 'n-3', createdAt: now - creationWindowMs - 400_000 }, // never created
        { key: 'k-4', az, nonce: 'n-4', createdAt: now - creationWindowMs - 400_000 }, // its volume carries it
        { key: 'k-5', az, nonce: 'n-5', createdAt: now - 60_000 }, // young: CreateVolume may be under way
        { ...created('vol-6'), createdAt: now - 60_000 }, // young: may not be visible to EC2 reads yet
      ],
    });

    expect(plan(f).staleCreations).toEqual(['k-vol-1', 'k-3']);
  });

  it('resolves ERROR volumes by what EC2 shows and leaves one in use by a live instance to an operator', () => {
    const f = facts({
      records: [
        record('vol-1', VolumeState.Error, { reason: 'x' }),
        record('vol-2', VolumeState.Error),
        record('vol-3', VolumeState.Error),
        record('vol-4', VolumeState.Error),
      ],
      volumes: [
        volume('vol-1', worker),
        volume('vol-2'),
        volume('vol-3', undefined, { state: 'error' }),
        volume('vol-4', web),
      ],
    });

    const result = plan(f);

    expect(result.repairs.map((r) => `${r.volumeId}:${r.action}`)).toEqual([
      'vol-1:toPool',
      'vol-2:toPool',
      'vol-3:retire',
    ]);
    expect(result.repairs[0]?.workerId).toBe(worker);
    expect(result.unresolved).toEqual([expect.stringContaining('vol-4')]);
  });

  it('completes a lost launch with the failure result, or CONTINUE when it already holds its volume', () => {
    const other = 'i-0000000000000000c';
    const f = facts({
      records: [record('vol-1', VolumeState.InUse, { holder: other })],
      volumes: [volume('vol-1', other)],
      instances: [instance(worker, 'running', true), instance(web, 'running'), instance(other, 'running')],
      pendingLaunches: [
        { instanceId: web, groupName: 'web', hookName: 'volsd-web-launch' },
        { instanceId: other, groupName: 'web', hookName: 'volsd-web-launch' },
      ],
    });

    expect(plan(f).repairs.map((r) => `${r.instanceId}:${r.result}`)).toEqual([
      `${web}:ABANDON`,
      `${other}:CONTINUE`,
    ]);
  });

  it('waits the acquire bound for a launch when the running acquires are unknown', () => {
    const young = { ...instance(web, 'running'), launchedAt: now - 600_000 };
    const f = facts({
      instances: [instance(worker, 'running', true), young],
      runningAcquires: null,
      pendingLaunches: [{ instanceId: web, groupName: 'web', hookName: 'volsd-web-launch' }],
    });

    expect(actions(f)).toEqual([]);
  });

  it('repairs the most urgent kinds first and at most maxRepairs', () => {
    const f = facts({
      records: [
        record('vol-1', VolumeState.Idle, { holder: worker }),
        record('vol-2', VolumeState.Idle, { holder: worker }),
      ],
      volumes: [volume('vol-3')],
      pendingLaunches: [{ instanceId: web, groupName: 'web', hookName: 'volsd-web-launch' }],
      creations: [created('vol-3')],
    });

    const result = plan(f, { ...bounds, maxRepairs: 2 });

    expect(result.found).toBe(4);
    expect(result.repairs.map((r) => r.kind)).toEqual(['pendingLaunch', 'missing']);
  });
});

describe('launchHookName', () => {
  it("takes the configured hook, else the pool's conventional one, else the group's only Volsd hook", () => {
    expect(launchHookName(['a', 'b'], 'web', 'b')).toBe('b');
    expect(launchHookName(['a'], 'web', 'b')).toBeUndefined();
    expect(launchHookName(['other', 'volsd-web-launch'], 'web')).toBe('volsd-web-launch');
    expect(launchHookName(['other', 'volsd-launch'], 'web')).toBe('volsd-launch');
    expect(launchHookName(['only'], 'web')).toBe('only');
    expect(launchHookName(['one', 'two'], 'web')).toBeUndefined();
  });
});
