import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VolumeState } from '../../lambdas/shared/model.js';
import { requestReplenish } from '../../lambdas/shared/replenish-request.js';
import { poolTag } from '../../lambdas/shared/tags.js';
import { checkInvariants } from '../../sandbox/invariants.js';
import { Sandbox } from '../../sandbox/runtime.js';
import type { LocalExecution } from '../../sandbox/stepfunctions.js';

// A replenish request that comes while a run holds the AZ (after that run planned) is not lost: the run
// starts one follow-up when it gives the lease back (lambdas/shared/replenish-request.ts). Checked on
// ground truth: the volumes EC2 shows on the AZ's worker, IDLE in the table.

let sandbox: Sandbox;
const az = 'us-east-1a';

beforeAll(async () => {
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: 0, timeScale: 0.05, seed: 41 });
  await sandbox.repo.bumpGeneration('web');
}, 120_000);

afterAll(async () => {
  await sandbox?.stop();
});

/** Pool volumes EC2 shows attached to the AZ's sync worker whose record is IDLE. */
async function idleOnWorker(): Promise<number> {
  const state = sandbox.cloud.snapshotState();
  const idle = await sandbox.repo.listVolumes({ pool: 'web', az, state: VolumeState.Idle });
  return idle.filter((r) => {
    const v = state.volumes.find((x) => x.volumeId === r.volumeId);
    return v?.tags[poolTag] === 'web' && v.attachment?.instanceId === sandbox.workers[az];
  }).length;
}

/** Starts a replenish run and returns once it has planned (holds the lease, its volumes chosen). */
async function startPlannedRun(name: string): Promise<LocalExecution> {
  const { executionArn } = sandbox.sfn.start(
    sandbox.wiring.stateMachines.replenish,
    name,
    JSON.stringify({ pool: 'web', az, reason: 'admin' }),
  );
  const run = sandbox.sfn.executions.get(executionArn);
  if (!run) throw new Error('no execution');
  await sandbox.cloud.waitFor(
    () => run.path.some((p) => p.state === 'HasVolumes?') || run.status !== 'RUNNING',
    3600,
    'the run planned',
  );
  expect(run.status).toBe('RUNNING');
  return run;
}

/** What acquire, release and the client do: a replenish request for the AZ (the handlers' own SFN client). */
async function askForReplenish() {
  const { sfn } = await import('../../lambdas/shared/clients.js');
  return requestReplenish({ sfn, repo: sandbox.repo }, sandbox.wiring.stateMachines.replenish, {
    pool: 'web',
    az,
    reason: 'admin',
  });
}

const runs = () =>
  [...sandbox.sfn.executions.values()].filter(
    (e) => e.stateMachineArn === sandbox.wiring.stateMachines.replenish,
  );

describe('replenish requests while a run holds the AZ', () => {
  it('a request is noted on the lease (no execution started) and the run follows up: the pool reaches the target set meanwhile', async () => {
    await sandbox.repo.setTarget('web', 2);
    const first = await startPlannedRun('first');
    await sandbox.repo.setTarget('web', 4);
    const before = runs().length;

    const answer = await askForReplenish();
    await sandbox.settle();

    expect(answer).toBe('noted');
    expect(first.status).toBe('SUCCEEDED');
    const followUps = runs().filter((e) => e.name.startsWith('first-then-'));
    expect(followUps.map((e) => e.status)).toEqual(['SUCCEEDED']);
    expect(runs()).toHaveLength(before + 1);
    expect(await idleOnWorker()).toBe(4);
    expect((await checkInvariants(sandbox)).violations).toEqual([]);
  });

  it('a run started while another holds the AZ ends at once and the holder follows up for it', async () => {
    await sandbox.repo.setTarget('web', 5);
    const holder = await startPlannedRun('holder');
    await sandbox.repo.setTarget('web', 6);
    const { executionArn } = sandbox.sfn.start(
      sandbox.wiring.stateMachines.replenish,
      'latecomer',
      JSON.stringify({ pool: 'web', az, reason: 'released' }),
    );
    await sandbox.settle();

    const latecomer = sandbox.sfn.executions.get(executionArn);
    expect(latecomer?.status).toBe('SUCCEEDED');
    const output = JSON.parse(latecomer?.output ?? '{}') as { leased?: boolean; created?: number };
    expect(output.leased).toBe(false);
    expect(output.created ?? 0).toBe(0);
    expect(holder.status).toBe('SUCCEEDED');
    expect(
      runs()
        .filter((e) => e.name.startsWith('holder-then-'))
        .map((e) => e.status),
    ).toEqual(['SUCCEEDED']);
    expect(await idleOnWorker()).toBe(6);
  });

  it('with no run holding the AZ, a request starts one', async () => {
    await sandbox.repo.setTarget('web', 7);
    const answer = await askForReplenish();
    await sandbox.settle();

    expect(answer).toBe('started');
    expect(await idleOnWorker()).toBe(7);
  });
});
