import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, roleTag } from '../../lambdas/shared/tags.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { ScenarioRecorder } from '../../sandbox/scenarios/report.js';
import { contentAndSnapshot, executions, refillFromSnapshot, scaleAndSettle } from '../helpers/sandbox.js';

// Warm volumes (issue 17), with the defaults: pool volumes initialized at a provisioned rate before
// they are IDLE, and a direct creation holds the launch until its volume is initialized. 100 GiB of
// content at 300 MiB/s: about 6 modelled minutes per volume, plus DescribeVolumeStatus's late reports.
let sandbox: Sandbox;
let recorder: ScenarioRecorder;
let launched: string[];

beforeAll(async () => {
  sandbox = await Sandbox.start({
    azs: 1,
    idlePerAz: 1,
    timeScale: 0.02,
    seed: 17,
    agent: 'model',
    contentGiB: 100,
    // 60 s: a hold of several minutes needs heartbeats to keep the launch action alive.
    heartbeatTimeout: 60,
  });
  await contentAndSnapshot(sandbox, 'warm');
  // The pool's volumes are made from the snapshot: retire the empty-born one, refill.
  await refillFromSnapshot(sandbox, 1);
  recorder = new ScenarioRecorder(sandbox);
  launched = await scaleAndSettle(sandbox, 3);
}, 600_000);

afterAll(async () => {
  await sandbox?.stop();
});

function webAttaches() {
  const workers = new Set(
    sandbox.cloud
      .snapshotState()
      .instances.filter((i) => i.tags[roleTag] === Role.Worker)
      .map((i) => i.instanceId),
  );
  return sandbox.cloud
    .snapshotState()
    .volumes.filter((v) => !v.root)
    .flatMap((v) =>
      v.attachedTo.flatMap((instanceId, i) =>
        launched.includes(instanceId)
          ? [
              {
                volumeId: v.volumeId,
                instanceId,
                fromPool: v.attachedTo.slice(0, i).some((w) => workers.has(w)),
                progress: v.progressAtAttach[i] ?? -1,
              },
            ]
          : [],
      ),
    );
}

describe('warm volumes, default settings (provisioned rate, hold)', () => {
  it('puts three launches InService on a pool of one idle volume: one from the pool, two created', () => {
    expect(launched).toHaveLength(3);
    const attaches = webAttaches();
    expect(attaches).toHaveLength(3);
    expect(attaches.filter((a) => a.fromPool)).toHaveLength(1);
    const outputs = executions(sandbox, 'launch-')
      .filter((e) => e.status === 'SUCCEEDED')
      .map((e) => JSON.parse(e.output ?? '{}') as { direct?: boolean; initialization?: string });
    expect(outputs.map((o) => o.initialization).sort()).toEqual(['held', 'held', 'warm']);
    expect(outputs.filter((o) => o.direct)).toHaveLength(2);
  });

  it('hands out no pool volume before it is fully initialized (simulator state at the attach)', () => {
    const fromPool = webAttaches().filter((a) => a.fromPool);
    expect(fromPool.length).toBeGreaterThan(0);
    for (const a of fromPool) expect(a.progress).toBe(100);
  });

  it('creates pool volumes from the snapshot with the provisioned rate and direct ones too', () => {
    const created = sandbox.cloud.snapshotState().volumes.filter((v) => v.snapshotId && v.initialization);
    expect(created.length).toBeGreaterThanOrEqual(3);
    for (const v of created)
      expect(v.initialization).toMatchObject({ type: 'provisioned-rate', provisionedRate: 300 });
  });

  it('holds each direct creation until its volume is initialized, heartbeating past the 60 s timeout', () => {
    expect(recorder.initializationFigures()).toMatchObject({ coldAtReady: 0, coldFromPool: 0 });
    const direct = webAttaches().filter((a) => !a.fromPool);
    const actions = sandbox.cloud
      .lifecycleActions()
      .filter(
        (a) =>
          direct.some((d) => d.instanceId === a.instanceId) &&
          a.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING',
      );
    expect(actions).toHaveLength(2);
    for (const a of actions) {
      expect(a.result).toBe('CONTINUE');
      expect(a.timedOut).toBe(false);
      // 100 GiB at 300 MiB/s is about 341 s: far past one 60 s heartbeat timeout.
      expect((a.completedAt ?? 0) - a.startedAt).toBeGreaterThan(341);
      expect(a.heartbeats.length).toBeGreaterThan(0);
    }
    for (const vs of recorder.atInService.values()) for (const v of vs) expect(v.progress).toBe(100);
  });
});
