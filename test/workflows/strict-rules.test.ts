import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { poolTag } from '../../lambdas/shared/tags.js';
import { checkInvariants } from '../../sandbox/invariants.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { groupMembers, launchOutcomes, scaleAndSettle } from '../helpers/sandbox.js';

// The acquire workflow in the AWS-strict sandbox, on the rule that changed its fast path the most:
// AttachVolume is refused while the instance is pending (docs/sandbox.md, "attachRequiresRunning").

let sandbox: Sandbox;
const runningAt = new Map<string, number>();

beforeAll(async () => {
  // An instance that stays pending for 150 modelled seconds: the claim, the unmount on the worker and
  // the detach are done long before it runs.
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: 1, timeScale: 0.02, seed: 11, bootSeconds: 150 });
  sandbox.cloud.ec2.onInstance((instanceId, event) => {
    if (event === 'running') runningAt.set(instanceId, sandbox.cloud.clock.date().getTime());
  });
  await sandbox.replenishAll();
}, 120_000);

afterAll(async () => {
  await sandbox?.stop();
});

describe('an instance that is pending for minutes', () => {
  it('is not abandoned: the attach waits until it runs, and it goes InService', async () => {
    expect(sandbox.cloud.strictRules()).toContain('attachRequiresRunning');

    const [instanceId] = await scaleAndSettle(sandbox, 1);
    if (!instanceId) throw new Error(`no instance launched: ${launchOutcomes(sandbox)}`);

    expect(groupMembers(sandbox).find((m) => m.instanceId === instanceId)?.lifecycleState).toBe('InService');
    const held = sandbox.cloud
      .snapshotState()
      .volumes.filter((v) => v.tags[poolTag] === 'web' && v.attachment?.instanceId === instanceId);
    expect(held).toHaveLength(1);
    const attachTime = Date.parse(held[0]?.attachment?.attachTime ?? '');
    expect(attachTime).toBeGreaterThanOrEqual(runningAt.get(instanceId) ?? Number.POSITIVE_INFINITY);
    expect((await checkInvariants(sandbox)).violations).toEqual([]);
  });
});
