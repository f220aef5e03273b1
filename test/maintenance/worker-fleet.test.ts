import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VolumeState } from '../../lambdas/shared/model.js';
import { Role, roleTag } from '../../lambdas/shared/tags.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { putContent } from '../helpers/sandbox.js';
import { content, expectInvariants, expectNothingLeft, runReconcile } from './helpers.js';

// m7g.large sync workers: 27 EBS attachments with the root volume (rule instanceTypeLimits), so 26
// volumes each; a target of 30 needs two.
const target = 30;
let sandbox: Sandbox;
let az: string;

beforeAll(async () => {
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: target, timeScale: 0.05, seed: 22, agent: 'model' });
  az = sandbox.options.azs[0] ?? '';
  await putContent(sandbox, 'live/index.html', content);
  await sandbox.repo.bumpGeneration(sandbox.options.pool);
  await sandbox.replenishAll();
}, 300_000);

afterAll(async () => {
  await sandbox?.stop();
});

/** Running sync workers of the AZ, from the simulator. */
function runningWorkers(): string[] {
  return sandbox.cloud
    .snapshotState()
    .instances.filter((i) => i.az === az && i.state === 'running' && i.tags[roleTag] === Role.Worker)
    .map((i) => i.instanceId);
}

function workerGroup() {
  return sandbox.cloud.snapshotState().groups.find((g) => g.name === `${sandbox.options.pool}-worker-${az}`);
}

/** Live pool volumes in EC2, by id, with the instance each is attached to. */
function ec2Volumes(): Map<string, string | undefined> {
  return new Map(
    sandbox.cloud
      .snapshotState()
      .volumes.filter(
        (v) => v.state !== 'deleted' && v.state !== 'deleting' && v.tags['volsd:role'] === 'volume',
      )
      .map((v) => [v.volumeId, v.attachment?.state === 'attached' ? v.attachment.instanceId : undefined]),
  );
}

async function idleVolumes() {
  return sandbox.repo.listVolumes({ pool: sandbox.options.pool, az, state: VolumeState.Idle });
}

/** Asserts `count` IDLE volumes, each attached in EC2 to the running worker the table names. */
async function expectIdleOnWorkers(count: number): Promise<Map<string, number>> {
  const idle = await idleVolumes();
  expect(idle).toHaveLength(count);
  const workers = new Set(runningWorkers());
  const attached = ec2Volumes();
  const perWorker = new Map<string, number>();
  for (const v of idle) {
    const on = attached.get(v.volumeId);
    expect(on).toBe((await sandbox.repo.getVolume(v.volumeId)).holder);
    expect(workers.has(on ?? '')).toBe(true);
    perWorker.set(on ?? '', (perWorker.get(on ?? '') ?? 0) + 1);
  }
  for (const held of perWorker.values()) expect(held).toBeLessThanOrEqual(26);
  return perWorker;
}

describe('a target above one worker', () => {
  it('starts a second worker and holds the 30 idle volumes on the two, each within its attachment limit', async () => {
    expect(runningWorkers()).toHaveLength(2);
    expect(workerGroup()?.desiredCapacity).toBe(2);
    const perWorker = await expectIdleOnWorkers(target);
    expect(perWorker.size).toBe(2);
    await expectInvariants(sandbox);
  });

  it('loses no volume when a worker is lost: its volumes come back, IDLE, on the workers left and the replacement', async () => {
    const before = new Set((await idleVolumes()).map((v) => v.volumeId));
    const attached = ec2Volumes();
    const [lost] = runningWorkers().sort(
      (a, b) =>
        [...attached.values()].filter((w) => w === b).length -
        [...attached.values()].filter((w) => w === a).length,
    );
    const held = [...attached].filter(([, on]) => on === lost).map(([id]) => id);
    expect(held.length).toBeGreaterThan(0);

    sandbox.cloud.terminateInstance(lost ?? '');
    await sandbox.cloud.waitFor(() => !runningWorkers().includes(lost ?? ''), 300, 'worker terminated');
    // Every volume survives the termination (attached data volumes are not DeleteOnTermination).
    for (const volumeId of held) expect(ec2Volumes().has(volumeId)).toBe(true);
    await sandbox.cloud.waitFor(() => runningWorkers().length === 2, 600, 'replacement worker running');
    const result = await runReconcile(sandbox);
    expect(result.status).toBe('SUCCEEDED');
    await sandbox.replenishAll();

    const after = await expectIdleOnWorkers(target);
    expect(after.has(lost ?? '')).toBe(false);
    expect(new Set((await idleVolumes()).map((v) => v.volumeId))).toEqual(before);
    await expectInvariants(sandbox);
  });

  it('retires the drained worker when the target falls back within one worker, keeping the target idle', async () => {
    await sandbox.repo.setTarget(sandbox.options.pool, 10);
    await sandbox.indexSettled();
    await sandbox.replenishAll();
    // A drained worker is retired by the run that emptied it, or by the next one.
    if (runningWorkers().length > 1) await sandbox.replenishAll();
    await sandbox.cloud.waitFor(() => runningWorkers().length === 1, 300, 'one worker left');

    expect(workerGroup()?.desiredCapacity).toBe(1);
    const perWorker = await expectIdleOnWorkers(10);
    expect([...perWorker.keys()]).toEqual(runningWorkers());
    await expectNothingLeft(sandbox);
    await expectInvariants(sandbox);
  });
});
