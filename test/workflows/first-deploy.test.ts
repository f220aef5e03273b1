import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { poolTag, Role, roleTag } from '../../lambdas/shared/tags.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { executions, groupMembers, putContent } from '../helpers/sandbox.js';

let sandbox: Sandbox | undefined;

afterEach(async () => {
  vi.restoreAllMocks();
  await sandbox?.stop();
  sandbox = undefined;
});

const launching = 'autoscaling:EC2_INSTANCE_LAUNCHING';

/** Ground truth from the simulator: every launch of the served group and the pool volumes on each instance. */
function launches(s: Sandbox) {
  const state = s.cloud.snapshotState();
  const actions = state.lifecycleActions.filter(
    (a) => a.groupName === s.wiring.groupName && a.transition === launching,
  );
  const launched = state.instances.filter((i) => i.tags['aws:autoscaling:groupName'] === s.wiring.groupName);
  const volumesOn = (instanceId: string) =>
    state.volumes.filter(
      (v) =>
        v.tags[poolTag] === s.options.pool &&
        v.attachment?.instanceId === instanceId &&
        v.attachment.state === 'attached',
    );
  return { actions, launched, volumesOn };
}

describe('first deploy: hooks live before the pool is filled', () => {
  it('serves 10 launches made at once on an empty pool whose workers still boot: none abandoned, all InService with a volume', async () => {
    // Volsd-Sync modelled at 50 bytes/s: the 33 kB tree stands for 33 GB at half the model's 100 MB/s
    // (the worker's bandwidth shared), so the first fill (two sync rounds of four volumes on each worker)
    // takes about 23 modelled minutes: longer than the 10 minutes a claim used to wait for an idle volume
    // before abandoning, and than the 14 minutes replenish used to wait for its sync.
    sandbox = await Sandbox.start({
      azs: 2,
      idlePerAz: 2,
      seed: 19,
      timeScale: 0.02,
      agent: 'model',
      modelCosts: { syncBytesPerSecond: 50 },
      heartbeatTimeout: 300,
      replaceAbandoned: true,
      waitForWorkers: false,
    });
    const s = sandbox;
    await putContent(s, 'live/index.html', `<h1>first</h1>${'.'.repeat(32_000)}`);
    await s.repo.bumpGeneration(s.options.pool); // as the fan-out does for a push
    const before = s.cloud.snapshotState();
    expect(before.volumes.filter((v) => v.tags[poolTag] === s.options.pool)).toEqual([]);
    expect(before.snapshots).toEqual([]);
    expect(before.instances.filter((i) => i.state === 'running')).toEqual([]); // the workers still boot

    s.scaleTo(10);
    await s.settle(4 * 3600);

    const { actions, launched, volumesOn } = launches(s);
    expect(launched).toHaveLength(10); // no replacement was ever launched
    expect(actions).toHaveLength(10);
    expect(actions.filter((a) => a.result !== 'CONTINUE' || a.completedBy !== 'api')).toEqual([]);
    const members = groupMembers(s);
    expect(members.map((m) => m.lifecycleState)).toEqual(Array(10).fill('InService'));
    for (const m of members) {
      expect(volumesOn(m.instanceId)).toHaveLength(1);
      const served = readFileSync(join(s.cloud.hostRoot(m.instanceId), 'srv/www/index.html'), 'utf8');
      expect(served.startsWith('<h1>first</h1>')).toBe(true);
    }
    // The waits were real: the pool filled long after the launches, and heartbeats kept the hooks open.
    const longest = Math.max(...actions.map((a) => (a.completedAt ?? 0) - a.startedAt));
    expect(longest).toBeGreaterThan(600);
    expect(actions.every((a) => a.heartbeats.length > 0 || (a.completedAt ?? 0) - a.startedAt < 300)).toBe(
      true,
    );
    // Quiet: no workflow failed on the way (the failed-executions alarms stay OK).
    const failed = [...s.sfn.executions.values()].filter((e) => e.status !== 'SUCCEEDED');
    expect(failed.map((e) => `${e.name}: ${e.error}`)).toEqual([]);
  }, 600_000);
});

describe('replenish before any sync worker runs', () => {
  it('waits for the booting workers instead of failing, then fills each AZ to its target', async () => {
    sandbox = await Sandbox.start({
      azs: 2,
      idlePerAz: 2,
      seed: 29,
      timeScale: 0.02,
      agent: 'model',
      waitForWorkers: false,
    });
    const s = sandbox;
    const workers = () =>
      s.cloud
        .snapshotState()
        .instances.filter((i) => i.tags[roleTag] === Role.Worker && i.state === 'running');
    expect(workers()).toEqual([]); // the workers boot for 20-40 modelled seconds: none runs yet
    const arns = await s.replenishAll();

    for (const arn of arns) expect(s.sfn.executions.get(arn)?.status).toBe('SUCCEEDED');
    const state = s.cloud.snapshotState();
    const running = new Set(workers().map((w) => w.instanceId));
    for (const az of s.options.azs) {
      const onWorkers = state.volumes.filter(
        (v) =>
          v.tags[poolTag] === s.options.pool &&
          v.az === az &&
          v.attachment?.state === 'attached' &&
          running.has(v.attachment.instanceId),
      );
      expect(onWorkers).toHaveLength(2);
    }
  }, 600_000);
});

describe('runtime AZ coverage', () => {
  it('lets a launch in an AZ the pool does not cover through without a volume, once, with the metric, and relaunches nothing', async () => {
    sandbox = await Sandbox.start({
      azs: ['us-east-1a'],
      groupAzs: ['us-east-1a', 'us-east-1b'],
      idlePerAz: 2,
      seed: 23,
      timeScale: 0.02,
      agent: 'model',
      replaceAbandoned: true,
    });
    const s = sandbox;
    await s.replenishAll();
    // Imported once the sandbox has set the functions' environment (the logger reads it when loaded).
    const { metrics } = await import('../../lambdas/shared/logger.js');
    const addMetric = vi.spyOn(metrics, 'addMetric');

    s.scaleTo(4);
    await s.settle();

    const { actions, launched, volumesOn } = launches(s);
    expect(launched).toHaveLength(4); // Auto Scaling launched no replacement into us-east-1b
    expect(actions.map((a) => a.result)).toEqual(Array(4).fill('CONTINUE'));
    const members = groupMembers(s);
    expect(members.map((m) => m.lifecycleState)).toEqual(Array(4).fill('InService'));
    const uncovered = members.filter((m) => m.az === 'us-east-1b');
    const covered = members.filter((m) => m.az === 'us-east-1a');
    expect(uncovered).toHaveLength(2);
    for (const m of covered) expect(volumesOn(m.instanceId)).toHaveLength(1);
    for (const m of uncovered) {
      expect(volumesOn(m.instanceId)).toEqual([]);
      const [execution] = executions(s, `launch-${m.instanceId}`);
      expect(execution?.status).toBe('FAILED');
      expect(execution?.error).toBe('AzNotCovered');
      expect(execution?.cause).toContain('us-east-1b');
    }
    const uncoveredMetrics = addMetric.mock.calls.filter(([name]) => name === 'UncoveredAzLaunches');
    expect(uncoveredMetrics).toEqual([
      ['UncoveredAzLaunches', 'Count', 1],
      ['UncoveredAzLaunches', 'Count', 1],
    ]);
    // Nothing was claimed, created or left behind for the uncovered instances.
    expect(await s.repo.getAssignment(uncovered[0]?.instanceId ?? '')).toBeUndefined();
  }, 300_000);
});
