/**
 * A Run Command can end TimedOut on AWS: SendCommand's TimeoutSeconds passes before the agent picks the
 * command up (DeliveryTimedOut: an agent that lost its connection, a host too busy), or the execution
 * timeout kills it. Volsd-Mount is idempotent, so the acquire sends it again (bounded) instead of
 * failing the launch. The fault here is the simulator's own AWS behaviour: the new instance's agent
 * loses its connection (PingStatus ConnectionLost), so the mount stays Delayed and ends DeliveryTimedOut.
 * Ground truth: the simulator's lifecycle actions and SSM invocations, EC2 attachments, the host tree.
 */
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxMountAttempts } from '../../lambdas/acquire/steps.js';
import { Role, roleTag } from '../../lambdas/shared/tags.js';
import { checkInvariants } from '../../sandbox/invariants.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { webMountPath } from '../../sandbox/scenarios/push.js';
import { putContent, scaleAndSettle } from '../helpers/sandbox.js';

let sandbox: Sandbox;
/** How the next web instance's agent behaves once it registers. */
let next: 'away-once' | 'away' | 'normal' = 'normal';
let cut: string | undefined;

beforeAll(async () => {
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: 2, timeScale: 0.02, seed: 2203, agent: 'model' });
  await putContent(sandbox, 'live/index.html', '<h1>mounted</h1>\n');
  await sandbox.repo.bumpGeneration(sandbox.options.pool);
  await sandbox.replenishAll();
  const { cloud } = sandbox;
  cloud.ec2.onInstance((instanceId, event) => {
    if (event !== 'agent-online' || next === 'normal') return;
    const tags = cloud.snapshotState().instances.find((i) => i.instanceId === instanceId)?.tags;
    if (tags?.[roleTag] !== Role.Client) return;
    cut = instanceId;
    cloud.ssm.setAgentConnection(instanceId, false);
    if (next === 'away') next = 'normal';
  });
  // away-once: the agent answers again once its first mount has ended TimedOut.
  cloud.events.on('event', (event: { 'detail-type'?: string; detail?: Record<string, string> }) => {
    const d = event.detail;
    if (event['detail-type'] !== 'EC2 Command Invocation Status-change Notification' || !d) return;
    const instanceId = d['instance-id'];
    if (next !== 'away-once' || !instanceId || instanceId !== cut || d.status !== 'TimedOut') return;
    if (!/Mount$/.test(d['document-name'] ?? '')) return;
    next = 'normal';
    cloud.ssm.setAgentConnection(instanceId, true);
  });
}, 300_000);

afterAll(async () => {
  await sandbox?.stop();
});

/** The Volsd-Mount invocations sent to `instanceId`, oldest first, as SSM ended them. */
function mountsOn(instanceId: string): string[] {
  return sandbox.cloud.ssm
    .view()
    .filter((c) => /Mount$/.test(c.documentName))
    .flatMap((c) => c.invocations.filter((i) => i.instanceId === instanceId).map((i) => i.statusDetails));
}

function launchAction(instanceId: string) {
  return sandbox.cloud
    .lifecycleActions()
    .find((a) => a.instanceId === instanceId && a.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING');
}

describe('a mount command that times out', { timeout: 600_000 }, () => {
  it('is sent again, and the launch goes InService with the volume mounted', async () => {
    next = 'away-once';
    cut = undefined;

    await scaleAndSettle(sandbox, 1);

    const instanceId = cut ?? '';
    expect(instanceId).not.toBe('');
    expect(mountsOn(instanceId)).toEqual(['DeliveryTimedOut', 'Success']);
    expect(launchAction(instanceId)?.result).toBe('CONTINUE');
    const volume = sandbox.cloud
      .snapshotState()
      .volumes.find((v) => v.attachment?.instanceId === instanceId && v.tags['volsd:role'] === 'volume');
    expect(volume?.attachment?.state).toBe('attached');
    const mountPoint = join(sandbox.cloud.hostRoot(instanceId), webMountPath);
    expect(realpathSync(mountPoint)).toBe(realpathSync(sandbox.cloud.volumeDataDir(volume?.volumeId ?? '-')));
    expect((await checkInvariants(sandbox)).violations).toEqual([]);
  });

  it(`gives up after ${maxMountAttempts} timed-out mounts: the launch is abandoned and the volume handed back`, async () => {
    next = 'away';
    cut = undefined;
    const group = sandbox.cloud.snapshotState().groups.find((g) => g.name === sandbox.wiring.groupName);

    await scaleAndSettle(sandbox, (group?.desiredCapacity ?? 0) + 1);

    const instanceId = cut ?? '';
    expect(instanceId).not.toBe('');
    expect(mountsOn(instanceId)).toEqual(Array(maxMountAttempts).fill('DeliveryTimedOut'));
    expect(launchAction(instanceId)?.result).toBe('ABANDON');
    const held = (await sandbox.repo.listVolumes({ pool: sandbox.options.pool })).filter(
      (v) => v.holder === instanceId,
    );
    expect(held).toEqual([]);
    await sandbox.replenishAll();
    expect((await checkInvariants(sandbox)).violations).toEqual([]);
  });
});
