/**
 * The grow round (`lambdas/grow/grow.ts`) against the EC2/SSM simulator: ModifyVolume with EBS's rules,
 * ground truth from the simulator's volumes and modifications.
 */
import { AttachVolumeCommand, CreateVolumeCommand } from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import { type GrowDeps, growPool } from '../../lambdas/grow/grow.js';
import type { GrowthRecord } from '../../lambdas/shared/growth.js';
import { poolTag, Role, roleTag } from '../../lambdas/shared/tags.js';
import { type Harness, harness, runningInstance, untilConsistent } from '../sim/harness.js';

let h: Harness | undefined;

afterEach(async () => {
  await h?.dispose();
  h = undefined;
});

/** The growth item, in memory, with the repository's semantics (target never lowered). */
class MemoryGrowth {
  record: GrowthRecord | undefined;
  async get() {
    return this.record ? { ...this.record } : undefined;
  }
  async raiseTarget(_pool: string, targetGiB: number, baselineGiB: number, refused?: string) {
    const r = this.record ?? { targetGiB: 0, confirmedGiB: baselineGiB, repushPending: false };
    this.record = {
      ...r,
      targetGiB: Math.max(r.targetGiB, targetGiB),
      repushPending: r.repushPending || refused !== undefined,
    };
  }
  async confirm(_pool: string, confirmedGiB: number, repushed: boolean) {
    if (!this.record) return;
    this.record.confirmedGiB = Math.max(this.record.confirmedGiB ?? 0, confirmedGiB);
    if (repushed) this.record.repushPending = false;
  }
}

interface World {
  h: Harness;
  growth: MemoryGrowth;
  deps: GrowDeps;
  pushes: { generation: number; commandId?: string }[];
  generation: { value: number };
  volume(id: string): { size: number } | undefined;
}

/** Two pool volumes (one idle, one attached to an instance) and one foreign volume, all 10 GiB. */
async function world(
  timeScale = 0.001,
  withInstance = true,
): Promise<World & { pool: string[]; foreign: string }> {
  h = await harness({ timeScale, latency: { volumeModifying: [60, 60], volumeOptimizing: [100, 100] } });
  const harnessed = h;
  harnessed.cloud.ssm.registerDocument('Volsd-Sync', async () => ({ exitCode: 0, stdout: '', stderr: '' }));
  const create = async (tags: Record<string, string>) =>
    (
      await harnessed.ec2.send(
        new CreateVolumeCommand({
          AvailabilityZone: 'us-east-1a',
          Size: 10,
          VolumeType: 'gp3',
          TagSpecifications: [
            { ResourceType: 'volume', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
          ],
        }),
      )
    ).VolumeId ?? '';
  const poolTags = { [poolTag]: 'web', [roleTag]: Role.Volume };
  const idle = await create(poolTags);
  const inUse = await create(poolTags);
  const foreign = await create({ [poolTag]: 'other', [roleTag]: Role.Volume });
  await untilConsistent(harnessed.cloud);
  await harnessed.cloud.waitFor(
    () => harnessed.cloud.ec2.view().volumes.every((v) => v.state !== 'creating'),
    60,
  );
  if (withInstance) {
    const instanceId = await runningInstance(harnessed.cloud, 'us-east-1a', { [poolTag]: 'web' });
    await harnessed.ec2.send(
      new AttachVolumeCommand({ VolumeId: inUse, InstanceId: instanceId, Device: '/dev/sdf' }),
    );
  }
  const growth = new MemoryGrowth();
  const pushes: { generation: number; commandId?: string }[] = [];
  const generation = { value: 3 };
  const deps: GrowDeps = {
    config: {
      pool: 'web',
      volumeSizeGiB: 10,
      bucket: 'volsd-web-push',
      prefix: 'live/',
      syncDocument: 'Volsd-Sync',
      maxObjectBytes: 1024 ** 3,
      maxConcurrency: '50',
      maxErrors: '10%',
      deliveryTimeoutSeconds: 600,
    },
    ec2: harnessed.ec2,
    ssm: harnessed.ssm,
    growth,
    pools: {
      getPool: async () => ({ generation: generation.value }),
      bumpGeneration: async () => ++generation.value,
    },
    pushes: {
      recordPush: async (p) => {
        pushes.push({ generation: p.generation, ...(p.commandId ? { commandId: p.commandId } : {}) });
        return p as never;
      },
    },
    log: { info: () => undefined, warn: () => undefined },
    count: () => undefined,
  };
  return {
    h: harnessed,
    growth,
    deps,
    pushes,
    generation,
    pool: [idle, inUse],
    foreign,
    volume: (id) => harnessed.cloud.ec2.view().volumes.find((v) => v.volumeId === id),
  };
}

const syncCommands = (harnessed: Harness) =>
  harnessed.cloud.snapshotState().commands.filter((c) => c.documentName === 'Volsd-Sync');

describe('a growth round', () => {
  it('grows every pool volume below the target, idle and in use, and no other volume', async () => {
    // Prepare
    const w = await world();
    await w.growth.raiseTarget('web', 15, 10);
    // Act
    const report = await growPool(w.deps);
    await w.h.cloud.clock.sleep(61);
    // Assess
    expect(report.resizesStarted.sort()).toEqual([...w.pool].sort());
    expect(w.pool.map((id) => w.volume(id)?.size)).toEqual([15, 15]);
    expect(w.volume(w.foreign)?.size).toBe(10);
    expect(
      w.h.cloud.ec2.modifications
        .view()
        .map((m) => m.volumeId)
        .sort(),
    ).toEqual([...w.pool].sort());
  });

  it('sends no sync and confirms nothing while a volume is still modifying', async () => {
    // Prepare: 60 modelled seconds of modifying last 6 wall seconds, far more than two rounds take.
    const w = await world(0.1);
    await w.growth.raiseTarget('web', 15, 10);
    // Act
    const report = await growPool(w.deps);
    const again = await growPool(w.deps);
    // Assess
    expect(report.sync).toBeUndefined();
    expect(again.deferred.map((d) => d.reason)).toEqual(['modifying', 'modifying']);
    expect(again.sync).toBeUndefined();
    expect(syncCommands(w.h)).toEqual([]);
    expect(w.growth.record?.confirmedGiB).toBe(10);
  });

  it('once every volume is usable, sends one Volsd-Sync that grows the file systems and confirms the target', async () => {
    // Prepare
    const w = await world();
    await w.growth.raiseTarget('web', 15, 10);
    await growPool(w.deps);
    await w.h.cloud.clock.sleep(61);
    // Act
    const report = await growPool(w.deps);
    // Assess
    expect(report.sync).toMatchObject({ generation: 3, repush: false });
    expect(syncCommands(w.h)).toHaveLength(1);
    expect(w.growth.record?.confirmedGiB).toBe(15);
    expect(w.pushes).toEqual([]);
  });

  it('makes the refused push once the volumes have grown: a new generation, recorded as a push', async () => {
    // Prepare
    const w = await world();
    await w.growth.raiseTarget('web', 15, 10, 'no-space: ...');
    await growPool(w.deps);
    await w.h.cloud.clock.sleep(61);
    // Act
    const report = await growPool(w.deps);
    // Assess
    expect(report.sync).toMatchObject({ generation: 4, repush: true });
    expect(w.pushes).toEqual([{ generation: 4, commandId: report.sync?.commandId }]);
    expect(w.growth.record?.repushPending).toBe(false);
  });

  it('leaves a volume modified less than 6 hours ago for a later round, without failing, and grows it after', async () => {
    // Prepare: a first growth done; a second target within 6 hours. 6 modelled hours pass in ~2 s
    // (no instance to boot: the rule is the volume's, attached or not).
    const w = await world(0.0001, false);
    await w.growth.raiseTarget('web', 15, 10);
    await growPool(w.deps);
    await w.h.cloud.clock.sleep(200);
    await growPool(w.deps);
    await w.growth.raiseTarget('web', 25, 15);
    // Act
    const deferred = await growPool(w.deps);
    await w.h.cloud.clock.sleep(6 * 3600);
    const later = await growPool(w.deps);
    // Assess
    expect(deferred.resizesStarted).toEqual([]);
    expect(deferred.deferred.map((d) => d.reason)).toEqual([
      'VolumeModificationRateExceeded',
      'VolumeModificationRateExceeded',
    ]);
    expect(deferred.sync).toBeUndefined();
    expect(later.resizesStarted.sort()).toEqual([...w.pool].sort());
  });

  it('raises the target to a raised configured size, and grows to it', async () => {
    // Prepare
    const w = await world();
    w.deps.config.volumeSizeGiB = 12;
    // Act
    const report = await growPool(w.deps);
    // Assess
    expect(report.targetGiB).toBe(12);
    expect(w.growth.record?.targetGiB).toBe(12);
    expect(report.resizesStarted).toHaveLength(2);
  });
});
