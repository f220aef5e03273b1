import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VolumeState } from '../../lambdas/shared/model.js';
import { poolTag } from '../../lambdas/shared/tags.js';
import { checkInvariants, volumeGeneration } from '../../sandbox/invariants.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { executions, groupMembers, launchOutcomes, putContent, scaleAndSettle } from '../helpers/sandbox.js';

let sandbox: Sandbox;
let desired = 0;

beforeAll(async () => {
  // The documents run as the scripts' in-process twins (held to the scripts by the conformance tests): the
  // real scripts run at wall speed beside the modelled clock, so on a loaded machine a mount outlasted the
  // state machine's modelled poll budget (CommandPending) and the launch was abandoned.
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: 3, timeScale: 0.02, seed: 7, agent: 'model' });
  await putContent(sandbox, 'live/index.html', '<h1>hello</h1>');
  await sandbox.repo.bumpGeneration(sandbox.options.pool); // as the fan-out does for a push
  await sandbox.replenishAll();
}, 120_000);

afterAll(async () => {
  await sandbox?.stop();
});

/** Volumes attached to an instance in EC2 (the truth), with the table's record of each. */
async function attachedTo(instanceId: string) {
  const volumes = sandbox.cloud
    .snapshotState()
    .volumes.filter(
      (v) => v.tags[poolTag] === sandbox.options.pool && v.attachment?.instanceId === instanceId,
    );
  return Promise.all(
    volumes.map(async (v) => ({ ec2: v, record: await sandbox.repo.findVolume(v.volumeId) })),
  );
}

async function expectInvariants() {
  const report = await checkInvariants(sandbox);
  expect(report.violations).toEqual([]);
}

describe('acquire', () => {
  it('puts a launched instance InService with the current content mounted, and EC2 and the table agree', async () => {
    const [instanceId] = await scaleAndSettle(sandbox, ++desired);
    if (!instanceId) throw new Error(`no instance launched: ${launchOutcomes(sandbox)}`);

    expect(groupMembers(sandbox).find((m) => m.instanceId === instanceId)?.lifecycleState).toBe('InService');
    const held = await attachedTo(instanceId);
    expect(held).toHaveLength(1);
    const [{ ec2, record }] = held as [(typeof held)[number]];
    expect(ec2.attachment).toMatchObject({ state: 'attached', deleteOnTermination: true });
    expect(record).toMatchObject({
      state: VolumeState.InUse,
      holder: instanceId,
      device: ec2.attachment?.device,
    });
    const served = readFileSync(join(sandbox.cloud.hostRoot(instanceId), 'srv/www/index.html'), 'utf8');
    expect(served).toBe('<h1>hello</h1>');
    expect(volumeGeneration(sandbox, ec2.volumeId)).toBe((await sandbox.repo.getPool('web')).generation);
    await expectInvariants();
  });

  it('starts one execution and claims one volume when the lifecycle event arrives eleven times', async () => {
    const copies: Promise<void>[] = [];
    const onEvent = (event: { 'detail-type'?: string }) => {
      if (event['detail-type'] !== 'EC2 Instance-launch Lifecycle Action') return;
      const body = JSON.stringify(event);
      sandbox.intake.send(body); // a second delivery, then ten concurrent ones
      copies.push(...Array.from({ length: 10 }, async () => void sandbox.intake.send(body)));
    };
    sandbox.cloud.events.on('event', onEvent);
    try {
      const [instanceId] = await scaleAndSettle(sandbox, ++desired);
      if (!instanceId) throw new Error(`no instance launched: ${launchOutcomes(sandbox)}`);
      await Promise.all(copies);
      await sandbox.settle();

      expect(copies).toHaveLength(10);
      expect(executions(sandbox, `launch-${instanceId}`)).toHaveLength(1);
      expect(await attachedTo(instanceId)).toHaveLength(1);
      expect(sandbox.intake.dlq).toHaveLength(0);
      await expectInvariants();
    } finally {
      sandbox.cloud.events.off('event', onEvent);
    }
  });
});

describe('release', () => {
  it('deletes the volume of a terminated instance, drops its assignment and completes the action', async () => {
    const before = groupMembers(sandbox).map((m) => m.instanceId);
    const held = (await Promise.all(before.map(attachedTo))).flat().map((h) => h.ec2.volumeId);
    desired = 0;
    await scaleAndSettle(sandbox, desired);

    const volumes = sandbox.cloud.snapshotState().volumes;
    for (const volumeId of held) {
      expect(volumes.find((v) => v.volumeId === volumeId && v.state !== 'deleted')).toBeUndefined();
      expect(await sandbox.repo.findVolume(volumeId)).toBeUndefined();
    }
    for (const instanceId of before) {
      expect(await sandbox.repo.getAssignment(instanceId)).toBeUndefined();
      const actions = sandbox.cloud.lifecycleActions().filter((a) => a.instanceId === instanceId);
      expect(actions.map((a) => a.result)).toEqual(['CONTINUE', 'CONTINUE']);
    }
    await expectInvariants();
  });

  it('ends a manual release of an instance that holds no volume as nothing-held, touching no volume', async () => {
    const instanceId = sandbox.cloud.launchInstance({ az: 'us-east-1a', tags: { [poolTag]: 'web' } });
    const poolVolumes = () =>
      sandbox.cloud
        .snapshotState()
        .volumes.filter((v) => v.tags[poolTag] === 'web')
        .map((v) => [v.volumeId, v.state, v.attachment]);
    const volumesBefore = poolVolumes();
    const recordsBefore = await sandbox.repo.listVolumes({ pool: 'web' });
    const { executionArn } = sandbox.sfn.start(
      sandbox.wiring.stateMachines.release,
      `manual-release-${instanceId}-x`,
      JSON.stringify({ pool: 'web', instanceId, action: 'manual-release', requestId: 'x' }),
    );
    await sandbox.settle();
    const execution = sandbox.sfn.executions.get(executionArn);
    expect(execution?.status).toBe('SUCCEEDED');
    expect(JSON.parse(execution?.output ?? '{}')).toMatchObject({ outcome: 'nothing-held' });
    // A manual release has no lifecycle action to complete; nothing in EC2 or the table moved.
    expect(sandbox.cloud.lifecycleActions().filter((a) => a.instanceId === instanceId)).toEqual([]);
    expect(poolVolumes()).toEqual(volumesBefore);
    expect(await sandbox.repo.listVolumes({ pool: 'web' })).toEqual(recordsBefore);
    expect(await sandbox.repo.getAssignment(instanceId)).toBeUndefined();
  });
});
