import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VolumeState } from '../../lambdas/shared/model.js';
import { generationTag, poolTag, roleTag } from '../../lambdas/shared/tags.js';
import { checkInvariants } from '../../sandbox/invariants.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { putContent } from '../helpers/sandbox.js';

let sandbox: Sandbox;
let runs = 0;
const content = '<h1>snapshot me</h1>';

beforeAll(async () => {
  // Read once at the workflow functions' cold start, which happens after Sandbox.start.
  process.env.SNAPSHOT_RETENTION = '2';
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: 2, timeScale: 0.05, seed: 21 });
  await putContent(sandbox, 'live/index.html', content);
  await sandbox.repo.bumpGeneration(sandbox.options.pool);
  await sandbox.replenishAll();
}, 120_000);

afterAll(async () => {
  await sandbox?.stop();
  delete process.env.SNAPSHOT_RETENTION;
});

interface RunResult {
  status?: string;
  error?: string;
  output: {
    snapshotId?: string;
    volumeId?: string;
    workerId?: string;
    generation?: number;
    frozen?: boolean;
    thawed?: boolean;
    deleted?: string[];
    kept?: string[];
    inUse?: string[];
    outcome?: string;
  };
}

/** Runs the snapshot workflow once and waits until the sandbox settled. */
async function runSnapshot(input: Record<string, unknown> = {}): Promise<RunResult> {
  const arn = sandbox.wiring.stateMachines.snapshot;
  if (!arn) throw new Error('the sandbox runs no snapshot state machine');
  const { executionArn } = sandbox.sfn.start(
    arn,
    `snapshot-test-${++runs}`,
    JSON.stringify({ pool: sandbox.options.pool, reason: 'test', ...input }),
  );
  await sandbox.settle();
  const execution = sandbox.sfn.executions.get(executionArn);
  return {
    status: execution?.status,
    error: execution?.error,
    output: JSON.parse(execution?.output ?? '{}') as RunResult['output'],
  };
}

function poolSnapshots() {
  return sandbox.cloud.snapshotState().snapshots.filter((s) => s.tags[poolTag] === sandbox.options.pool);
}

function freezeCommands() {
  return sandbox.cloud.snapshotState().commands.filter((c) => c.documentName === 'Volsd-Freeze');
}

/** Freeze state left on a host: the shim's frozen flags and Volsd-Freeze's own records. */
function frozenLeftovers(instanceId: string): string[] {
  const root = sandbox.cloud.hostRoot(instanceId);
  return ['run/volsd-shim/frozen', 'run/volsd/frozen'].flatMap((dir) =>
    existsSync(join(root, dir)) ? readdirSync(join(root, dir)).map((f) => `${dir}/${f}`) : [],
  );
}

describe('five snapshot cycles with retention 2', () => {
  const results: RunResult[] = [];
  let freezesBefore = 0;

  beforeAll(async () => {
    freezesBefore = freezeCommands().length;
    for (let i = 0; i < 5; i++) results.push(await runSnapshot());
  }, 120_000);

  it('succeeds every cycle with a new snapshot', () => {
    expect(results.map((r) => r.status)).toEqual(Array(5).fill('SUCCEEDED'));
    const ids = results.map((r) => r.output.snapshotId);
    expect(new Set(ids).size).toBe(5);
  });

  it('leaves exactly the 2 newest pool snapshots in EC2', () => {
    const newest = results.slice(-2).map((r) => r.output.snapshotId);
    expect(
      poolSnapshots()
        .map((s) => s.snapshotId)
        .sort(),
    ).toEqual([...newest].sort());
  });

  it("records the newest snapshot as the pool's latest, tagged with the pool generation and role", async () => {
    const pool = await sandbox.repo.getPool(sandbox.options.pool);
    const last = results.at(-1)?.output;
    expect(pool.latestSnapshot).toMatchObject({ snapshotId: last?.snapshotId, generation: pool.generation });
    const snapshot = poolSnapshots().find((s) => s.snapshotId === last?.snapshotId);
    expect(snapshot?.state).toBe('completed');
    expect(snapshot?.tags).toMatchObject({
      [generationTag]: String(pool.generation),
      [roleTag]: 'snapshot',
    });
  });

  it('freezes and thaws the filesystem around every CreateSnapshot and leaves nothing frozen', () => {
    const commands = freezeCommands().slice(freezesBefore);
    expect(commands).toHaveLength(10);
    expect(commands.every((c) => c.status === 'Success')).toBe(true);
    expect(results.every((r) => r.output.frozen === true && r.output.thawed === true)).toBe(true);
    const workers = new Set(results.map((r) => r.output.workerId ?? ''));
    for (const worker of workers) expect(frozenLeftovers(worker)).toEqual([]);
  });

  it('gives the snapshotted volumes back as IDLE and keeps every invariant', async () => {
    const volumes = await sandbox.repo.listVolumes({ pool: sandbox.options.pool });
    expect(volumes.map((v) => v.state)).toEqual([VolumeState.Idle, VolumeState.Idle]);
    expect((await checkInvariants(sandbox)).violations).toEqual([]);
  });
});

describe('pruning', () => {
  it('never deletes a snapshot that a creating volume was made from', async () => {
    const oldest = poolSnapshots().sort((a, b) => a.startTime.localeCompare(b.startTime))[0];
    if (!oldest) throw new Error('no snapshot to protect');
    const volumeId = 'vol-0aaaaaaaaaaaaaaa1';
    await sandbox.repo.registerVolume({
      volumeId,
      pool: sandbox.options.pool,
      az: sandbox.options.azs[0] ?? '',
      state: VolumeState.Creating,
      snapshotId: oldest.snapshotId,
    });
    try {
      const result = await runSnapshot();

      expect(result.status).toBe('SUCCEEDED');
      expect(result.output.inUse).toContain(oldest.snapshotId);
      expect(poolSnapshots().map((s) => s.snapshotId)).toContain(oldest.snapshotId);
    } finally {
      await sandbox.repo.transition({ volumeId, from: VolumeState.Creating, to: VolumeState.Error });
      await sandbox.repo.forgetVolume(volumeId);
    }
  });

  it('deletes it on the next run once nothing uses it', async () => {
    const result = await runSnapshot();

    expect(result.status).toBe('SUCCEEDED');
    expect(poolSnapshots()).toHaveLength(2);
    expect(poolSnapshots().map((s) => s.snapshotId)).toContain(result.output.snapshotId);
  });
});

describe('a crash after CreateSnapshot', () => {
  it('makes no second snapshot: the retried step finds the one its run created', async () => {
    const crashesBefore = sandbox.sfn.crashCounts.get('CreateSnapshot') ?? 0;
    sandbox.sfn.crashNext('CreateSnapshot');
    const runName = `snapshot-test-${runs + 1}`;

    const result = await runSnapshot();

    expect(sandbox.sfn.crashCounts.get('CreateSnapshot')).toBe(crashesBefore + 1);
    expect(result.status).toBe('SUCCEEDED');
    const { ec2 } = await import('../../lambdas/shared/clients.js');
    const ofThisRun = await ec2.send(
      new DescribeSnapshotsCommand({ Filters: [{ Name: 'description', Values: [`*(${runName})`] }] }),
    );
    expect(ofThisRun.Snapshots?.map((s) => s.SnapshotId)).toEqual([result.output.snapshotId]);
  });
});

describe('after a failure', () => {
  it('thaws the filesystem, gives the volume back and fails the execution', async () => {
    for (let i = 0; i < 40; i++) sandbox.cloud.faults.once('internalError', { action: 'CreateSnapshot' });
    const freezesBefore = freezeCommands().length;
    let result: RunResult;
    try {
      result = await runSnapshot();
    } finally {
      sandbox.cloud.faults.clear();
    }

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('InternalError');
    const commands = freezeCommands().slice(freezesBefore);
    expect(commands.map((c) => c.status)).toEqual(['Success', 'Success']); // freeze, then the thaw
    for (const worker of Object.values(sandbox.workers)) expect(frozenLeftovers(worker)).toEqual([]);
    const volumes = await sandbox.repo.listVolumes({ pool: sandbox.options.pool });
    expect(volumes.every((v) => v.state === VolumeState.Idle)).toBe(true);
  });

  it('leaves the lease free for the next run', async () => {
    const result = await runSnapshot();

    expect(result.status).toBe('SUCCEEDED');
    expect(result.output.outcome).toBe('snapshotted');
  });
});

describe('replenish after snapshots', () => {
  it('creates new volumes from the latest snapshot, with the content on them', async () => {
    const pool = await sandbox.repo.getPool(sandbox.options.pool);
    const before = new Set((await sandbox.repo.listVolumes({ pool: pool.pool })).map((v) => v.volumeId));
    await sandbox.repo.setTarget(pool.pool, 4);
    await sandbox.replenishAll();

    const created = sandbox.cloud
      .snapshotState()
      .volumes.filter((v) => v.tags[poolTag] === pool.pool && !before.has(v.volumeId));
    expect(created).toHaveLength(2);
    for (const v of created) {
      expect(v.snapshotId).toBe(pool.latestSnapshot?.snapshotId);
      expect(readFileSync(join(v.dataDir, 'index.html'), 'utf8')).toBe(content);
      expect((await sandbox.repo.getVolume(v.volumeId)).state).toBe(VolumeState.Idle);
    }
    expect((await checkInvariants(sandbox)).violations).toEqual([]);
  });
});
