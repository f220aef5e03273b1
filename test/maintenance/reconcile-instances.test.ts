import { ModifyInstanceAttributeCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { VolumeState } from '../../lambdas/shared/model.js';
import type { Sandbox } from '../../sandbox/runtime.js';
import { groupMembers } from '../helpers/sandbox.js';
import {
  expectInvariants,
  expectNothingLeft,
  repairedKinds,
  runReconcile,
  sandboxClients,
  startPool,
} from './helpers.js';

let sandbox: Sandbox;
let az: string;

beforeAll(async () => {
  sandbox = await startPool(41);
  az = sandbox.options.azs[0] ?? '';
}, 120_000);

afterAll(async () => {
  await sandbox?.stop();
});

function instanceState(instanceId: string) {
  return sandbox.cloud.snapshotState().instances.find((i) => i.instanceId === instanceId)?.state;
}

function ec2Volume(volumeId: string) {
  return sandbox.cloud.snapshotState().volumes.find((v) => v.volumeId === volumeId && v.state !== 'deleted');
}

function launchAction(instanceId: string) {
  return sandbox.cloud
    .lifecycleActions()
    .find((a) => a.instanceId === instanceId && a.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING');
}

/**
 * Scales the served group out by one with its launch event lost (the intake never gets it), and waits
 * until the new instance waits in Pending:Wait. Returns its id.
 */
async function launchWithoutAcquire(): Promise<string> {
  const before = new Set(groupMembers(sandbox).map((m) => m.instanceId));
  const dropped = vi.spyOn(sandbox.intake, 'send').mockImplementation(() => 'dropped');
  try {
    sandbox.scaleTo(before.size + 1);
    let instanceId = '';
    await sandbox.cloud.waitFor(
      () => {
        const fresh = groupMembers(sandbox).find((m) => !before.has(m.instanceId));
        instanceId = fresh?.lifecycleState === 'Pending:Wait' ? fresh.instanceId : '';
        return instanceId !== '';
      },
      120,
      'a launch in Pending:Wait',
    );
    return instanceId;
  } finally {
    dropped.mockRestore();
  }
}

describe('an instance terminated without its release', () => {
  it('has its volume deleted (release policy delete) and its assignment dropped', async () => {
    sandbox.scaleTo(1);
    await sandbox.settle();
    const instanceId = groupMembers(sandbox)[0]?.instanceId ?? '';
    const held = (await sandbox.repo.listVolumes({ pool: sandbox.options.pool })).find(
      (v) => v.holder === instanceId && v.state === VolumeState.InUse,
    );
    if (!held?.device) throw new Error(`${instanceId} holds no volume`);
    // The volume outlives its instance (no DeleteOnTermination), and EC2 terminates it directly: no
    // terminate hook, so no release runs. The group replaces the instance.
    const { ec2 } = await sandboxClients();
    await ec2.send(
      new ModifyInstanceAttributeCommand({
        InstanceId: instanceId,
        BlockDeviceMappings: [{ DeviceName: held.device, Ebs: { DeleteOnTermination: false } }],
      }),
    );
    sandbox.cloud.terminateInstance(instanceId);
    await sandbox.cloud.waitFor(() => instanceState(instanceId) === 'terminated', 120);
    await sandbox.settle();
    expect(ec2Volume(held.volumeId)?.state).toBe('available');

    const result = await runReconcile(sandbox);

    expect(repairedKinds(result)).toEqual({ terminatedHolder: 1 });
    expect(await sandbox.repo.findVolume(held.volumeId)).toBeUndefined();
    expect(ec2Volume(held.volumeId)?.state ?? 'gone').toMatch(/^(deleting|gone)$/);
    expect(await sandbox.repo.getAssignment(instanceId)).toBeUndefined();
    await expectNothingLeft(sandbox);
    await expectInvariants(sandbox);
  });
});

describe('a replaced sync worker', () => {
  it('gets the idle volumes of the worker it replaces back, mounted and IDLE, with no operator action', async () => {
    const old = sandbox.workers[az] ?? '';
    const idle = async () =>
      (await sandbox.repo.listVolumes({ pool: sandbox.options.pool, az, state: VolumeState.Idle })).map(
        (v) => v.volumeId,
      );
    const before = (await idle()).sort();
    expect(before.length).toBeGreaterThan(0);
    sandbox.cloud.terminateInstance(old);
    await sandbox.cloud.waitFor(() => instanceState(old) === 'terminated', 120);
    await sandbox.waitForWorkers();
    const fresh = sandbox.workers[az] ?? '';
    expect(fresh).not.toBe(old);

    const result = await runReconcile(sandbox);

    expect(repairedKinds(result)).toEqual({ strandedPoolVolume: before.length });
    expect(result.output.replenished).toEqual([az]);
    expect((await idle()).sort()).toEqual(before);
    for (const volumeId of before) {
      expect((await sandbox.repo.getVolume(volumeId)).holder).toBe(fresh);
      expect(ec2Volume(volumeId)?.attachment).toMatchObject({ instanceId: fresh, state: 'attached' });
    }
    await expectNothingLeft(sandbox);
    await expectInvariants(sandbox);
  });
});

describe('a launch waiting in Pending:Wait with no acquire', () => {
  it('is completed with the configured failure result when it holds no volume', async () => {
    const instanceId = await launchWithoutAcquire();

    const result = await runReconcile(sandbox);

    expect(repairedKinds(result)).toEqual({ pendingLaunch: 1 });
    expect(launchAction(instanceId)).toMatchObject({
      result: 'ABANDON',
      completedBy: 'api',
      timedOut: false,
    });
    await expectNothingLeft(sandbox);
    await expectInvariants(sandbox);
  });

  it('is completed with CONTINUE when its volume is already in use (the acquire ended without completing)', async () => {
    const instanceId = await launchWithoutAcquire();
    const acquire = sandbox.wiring.stateMachines.acquire;
    const { executionArn } = sandbox.sfn.start(
      acquire,
      `manual-acquire-${instanceId}-r1`,
      JSON.stringify({ pool: sandbox.options.pool, instanceId, action: 'manual-acquire', requestId: 'r1' }),
    );
    await sandbox.sfn.executions.get(executionArn)?.done;
    await sandbox.sfn.idle();
    expect(sandbox.sfn.executions.get(executionArn)?.status).toBe('SUCCEEDED');

    const result = await runReconcile(sandbox);

    expect(repairedKinds(result)).toEqual({ pendingLaunch: 1 });
    expect(launchAction(instanceId)).toMatchObject({ result: 'CONTINUE', completedBy: 'api' });
    expect(groupMembers(sandbox).find((m) => m.instanceId === instanceId)?.lifecycleState).toBe('InService');
    await expectNothingLeft(sandbox);
    await expectInvariants(sandbox);
  });
});
