import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { VolumeState } from '../../lambdas/shared/model.js';
import { Role, roleTag } from '../../lambdas/shared/tags.js';
import { checkInvariants } from '../../sandbox/invariants.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { workerMountRoot } from '../../sandbox/scenarios/push.js';
import type { LocalExecution } from '../../sandbox/stepfunctions.js';
import { groupMembers, putContent, scaleAndSettle } from '../helpers/sandbox.js';

let sandbox: Sandbox;

beforeAll(async () => {
  // Scripts' in-process twins, as in acquire-release.test.ts: no wall-speed script against modelled poll budgets.
  sandbox = await Sandbox.start({
    azs: 1,
    idlePerAz: 2,
    timeScale: 0.02,
    seed: 11,
    throttling: true,
    agent: 'model',
  });
  await putContent(sandbox, 'live/a.txt', 'a');
  await sandbox.repo.bumpGeneration('web');
  await sandbox.replenishAll();
}, 120_000);

afterAll(async () => {
  await sandbox?.stop();
});

beforeEach(async () => {
  sandbox.cloud.faults.set({ throttleRate: 0 });
  // Each case starts from a full pool, as the replenish schedule would leave it.
  await sandbox.replenishAll();
});

/**
 * Launches one more instance under the current faults and returns, for the acquire picked (the first by
 * default), the execution, the instance's group membership and its lifecycle action.
 */
async function launchOne(pick: (acquires: LocalExecution[]) => LocalExecution | undefined = (a) => a[0]) {
  const seen = new Set(sandbox.sfn.executions.keys());
  const group = sandbox.cloud.snapshotState().groups.find((g) => g.name === sandbox.wiring.groupName);
  await scaleAndSettle(sandbox, (group?.desiredCapacity ?? 0) + 1);
  const acquires = [...sandbox.sfn.executions.values()].filter(
    (e) => !seen.has(e.executionArn) && e.name.startsWith('launch-'),
  );
  const acquire = pick(acquires);
  if (!acquire) throw new Error(`no acquire ran: ${acquires.map((a) => `${a.name} ${a.status}`).join(', ')}`);
  const instanceId = (JSON.parse(acquire.input) as { instanceId: string }).instanceId;
  const member = groupMembers(sandbox).find((m) => m.instanceId === instanceId);
  const action = sandbox.cloud.lifecycleActions().find((a) => a.instanceId === instanceId);
  return { instanceId, acquire, member, action, path: acquire.path.map((p) => p.state) };
}

/** The volume is attached to a sync worker in EC2 and mounted in that worker's tree at its pool path. */
function expectOnWorker(volumeId: string) {
  const state = sandbox.cloud.snapshotState();
  const attachment = state.volumes.find((v) => v.volumeId === volumeId)?.attachment;
  expect(attachment?.state).toBe('attached');
  const worker = state.instances.find((i) => i.instanceId === attachment?.instanceId);
  expect(worker?.tags[roleTag]).toBe(Role.Worker);
  const mountPoint = join(sandbox.cloud.hostRoot(worker?.instanceId ?? '-'), workerMountRoot, volumeId);
  expect(realpathSync(mountPoint)).toBe(realpathSync(sandbox.cloud.volumeDataDir(volumeId)));
}

/** After any fault: nothing claimed without an owner, every action completed in time, EC2 and table agree. */
async function expectCleanAfterwards() {
  await sandbox.settle();
  const report = await checkInvariants(sandbox);
  expect(report.violations).toEqual([]);
}

/** The acquire ended InService, or was compensated and ABANDONed with its volume back in the pool. */
function expectRecoveredOrCompensated(r: Awaited<ReturnType<typeof launchOne>>) {
  expect(r.action?.completedAt).toBeDefined();
  expect(r.action?.timedOut).toBe(false);
  if (r.acquire.status === 'SUCCEEDED') {
    expect(r.member?.lifecycleState).toBe('InService');
  } else {
    expect(r.path).toContain('Compensate');
    expect(r.action?.result).toBe('ABANDON');
  }
}

describe('acquire under injected faults', () => {
  it('absorbs EC2 throttling (SDK and state machine retries) and ends InService', async () => {
    sandbox.cloud.faults.set({ throttleRate: 0.3 });
    const throttledBefore = sandbox.cloud.faults.counts().throttle;
    const r = await launchOne();
    sandbox.cloud.faults.set({ throttleRate: 0 });
    expect(sandbox.cloud.faults.counts().throttle).toBeGreaterThan(throttledBefore);
    expect(r.acquire.status).toBe('SUCCEEDED');
    expect(r.member?.lifecycleState).toBe('InService');
    await expectCleanAfterwards();
  });

  it('aborts a stuck attach, force-detaches and attaches again', async () => {
    sandbox.cloud.faults.once('stuckAttach', { action: 'AttachVolume' });
    const r = await launchOne();
    expect(r.path).toContain('AbortAttach');
    expect(r.acquire.status).toBe('SUCCEEDED');
    expect(r.member?.lifecycleState).toBe('InService');
    await expectCleanAfterwards();
  });

  it('retries past an IncorrectState race on the detach from the worker', async () => {
    sandbox.cloud.faults.once('incorrectState', { action: 'DetachVolume' });
    const before = sandbox.cloud.faults.counts().incorrectState;
    const r = await launchOne();
    expect(sandbox.cloud.faults.counts().incorrectState).toBe(before + 1);
    expect(r.acquire.status).toBe('SUCCEEDED');
    await expectCleanAfterwards();
  });

  it('completes after a handler crash that lost the result of an attach that happened', async () => {
    sandbox.sfn.crashNext('Attach');
    const r = await launchOne();
    expect(sandbox.sfn.crashCounts.get('Attach')).toBeGreaterThanOrEqual(1);
    expect(r.acquire.status).toBe('SUCCEEDED');
    expect(r.path.filter((s) => s === 'Attach').length).toBeGreaterThanOrEqual(1);
    await expectCleanAfterwards();
  });

  it('compensates when the instance terminates mid-acquire: the volume goes back to the pool', async () => {
    sandbox.cloud.faults.once('terminateOnAttach', { action: 'AttachVolume' });
    // The group may replace the lost instance: the acquire to look at is the one that failed.
    const r = await launchOne((acquires) => acquires.find((a) => a.status === 'FAILED'));
    expect(r.acquire.status).toBe('FAILED');
    expect(r.acquire.error).toBe('InstanceGone');
    expect(r.action?.completedAt).toBeDefined();
    const claimed = (await sandbox.repo.listVolumes({ pool: 'web' })).filter(
      (v) => v.holder === r.instanceId,
    );
    expect(claimed).toEqual([]);
    await sandbox.replenishAll(); // the pool adopts the volume handed back
    await expectCleanAfterwards();
  });

  it('compensates a mount that fails on the instance and ABANDONs the launch', async () => {
    sandbox.cloud.faults.once('ssmFailure', { documentName: 'Volsd-Mount' });
    const r = await launchOne();
    expectRecoveredOrCompensated(r);
    expect(r.acquire.status).toBe('FAILED');
    // A failed execution has no output: what it carried into its Fail state says how it compensated.
    const failed = r.acquire.lastStateInput as { volumeId?: string; compensation?: string };
    expect(failed.compensation).toBe('to-pool');
    const volumeId = failed.volumeId;
    if (!volumeId) throw new Error('the failed acquire names no volume');
    const leftovers = (await sandbox.repo.listVolumes({ pool: 'web' })).filter(
      (v) => v.state === VolumeState.Claimed || v.state === VolumeState.Attaching,
    );
    expect(leftovers).toEqual([]);
    await sandbox.replenishAll();
    // The volume the mount failed with is back on a worker, mounted there and idle.
    expectOnWorker(volumeId);
    expect((await sandbox.repo.getVolume(volumeId)).state).toBe(VolumeState.Idle);
    await expectCleanAfterwards();
  });

  it('compensates an unmount that fails on the worker by mounting the volume there again', async () => {
    sandbox.cloud.faults.once('ssmFailure', { documentName: 'Volsd-Unmount' });
    const r = await launchOne();
    expectRecoveredOrCompensated(r);
    expect(r.path).toContain('WaitCompensation');
    const failed = r.acquire.lastStateInput as { volumeId?: string; compensation?: string };
    expect(failed.compensation).toBe('returned-to-worker');
    const volumeId = failed.volumeId;
    if (!volumeId) throw new Error('the failed acquire names no volume');
    // The very volume the unmount failed on, not the pool's other idle one: still on its worker (EC2),
    // mounted there again (the worker's tree), idle in the table. No replenish ran in between.
    expectOnWorker(volumeId);
    expect((await sandbox.repo.getVolume(volumeId)).state).toBe(VolumeState.Idle);
    await expectCleanAfterwards();
  });
});

describe('release under injected faults', () => {
  it('forces a detach that stays detaching and completes the terminate hook', async () => {
    const launched = await launchOne();
    expect(launched.member?.lifecycleState).toBe('InService');
    const seen = new Set(sandbox.sfn.executions.keys());
    sandbox.cloud.faults.once('stuckDetach', { action: 'DetachVolume' });
    const group = sandbox.cloud.snapshotState().groups.find((g) => g.name === sandbox.wiring.groupName);

    await scaleAndSettle(sandbox, (group?.desiredCapacity ?? 1) - 1);

    const release = [...sandbox.sfn.executions.values()].find(
      (e) => !seen.has(e.executionArn) && e.name.startsWith('terminate-'),
    );
    if (!release) throw new Error('no release ran');
    const path = release.path.map((p) => p.state);
    expect(release.status, release.error).toBe('SUCCEEDED');
    expect(path).toContain('ForceDetach');
    const instanceId = (JSON.parse(release.input) as { instanceId: string }).instanceId;
    const action = sandbox.cloud
      .lifecycleActions()
      .find((a) => a.instanceId === instanceId && a.transition === 'autoscaling:EC2_INSTANCE_TERMINATING');
    expect(action?.completedAt).toBeDefined();
    expect(action?.timedOut).toBe(false);
    // Ground truth: the volume it held is no longer attached to it in EC2.
    const volumeId = (JSON.parse(release.output ?? '{}') as { volumeId?: string }).volumeId;
    expect(volumeId).toMatch(/^vol-/);
    const volume = sandbox.cloud.snapshotState().volumes.find((v) => v.volumeId === volumeId);
    expect(volume?.attachment?.instanceId).not.toBe(instanceId);
    await expectCleanAfterwards();
  });
});
