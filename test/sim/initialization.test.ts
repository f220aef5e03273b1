import {
  AttachVolumeCommand,
  CreateSnapshotCommand,
  CreateVolumeCommand,
  DescribeVolumeStatusCommand,
  DescribeVolumesCommand,
} from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultInitializationModel, VolumeInitialization } from '../../sandbox/sim/initialization.js';
import { type Harness, harness, rejection, runningInstance, untilConsistent } from './harness.js';

const model = defaultInitializationModel;

describe('initialization model', () => {
  it('downloads at exactly the provisioned rate', () => {
    const init = new VolumeInitialization('vol-1', 10, model, 1, 200);
    init.start(100);

    expect(init.progress(100 + 25.6)).toBeCloseTo(50, 6);
    expect(init.secondsToComplete(100 + 25.6)).toBeCloseTo(25.6, 6);
    expect(init.complete(100 + 51.1)).toBe(false);
    expect(init.completedAt(100 + 52)).toBeCloseTo(151.2, 6);
    expect(init.durationSeconds(200)).toBeCloseTo(51.2, 6);
  });

  it('fluctuates at the default rate within its range, window by window, the same for the same seed', () => {
    const init = new VolumeInitialization('vol-2', 100, model, 1);
    init.start(0);
    const rates = Array.from({ length: 50 }, (_, w) => init.backgroundRate(w * model.defaultWindowSeconds));

    for (const rate of rates) {
      expect(rate).toBeGreaterThanOrEqual(model.defaultRateMiBps[0]);
      expect(rate).toBeLessThanOrEqual(model.defaultRateMiBps[1]);
    }
    expect(new Set(rates.map((r) => r.toFixed(3))).size).toBeGreaterThan(10);
    const again = new VolumeInitialization('vol-2', 100, model, 1);
    again.start(0);
    expect(again.secondsToComplete(0)).toBe(init.secondsToComplete(0));
    const other = new VolumeInitialization('vol-3', 100, model, 1);
    other.start(0);
    expect(other.secondsToComplete(0)).not.toBe(init.secondsToComplete(0));
  });

  it('takes between data / fastest and data / slowest default rate to complete', () => {
    const init = new VolumeInitialization('vol-4', 100, model, 9);
    init.start(0);
    const seconds = init.secondsToComplete(0);

    expect(seconds).toBeGreaterThan((100 * 1024) / model.defaultRateMiBps[1]);
    expect(seconds).toBeLessThan((100 * 1024) / model.defaultRateMiBps[0]);
    expect(init.complete(seconds - 1)).toBe(false);
    expect(init.complete(seconds + 0.001)).toBe(true);
  });

  it('goes at the reading host throughput while a host reads every block, then back to its own rate', () => {
    const init = new VolumeInitialization('vol-5', 10, model, 1);
    init.start(0);
    init.startReading(0, 'i-1', 125);

    expect(init.secondsToComplete(0)).toBeCloseTo((10 * 1024) / 125, 6);
    init.stopReading(40, 'i-1');
    expect(init.progress(40)).toBeCloseTo((100 * 40 * 125) / (10 * 1024), 6);
    expect(init.secondsToComplete(40)).toBeGreaterThan(
      ((10 * 1024 - 40 * 125) / model.defaultRateMiBps[1]) * 0.99,
    );
  });

  it('advances through window boundaries that floating point lands on, monotonically', () => {
    const start = 209.93333333333334;
    const init = new VolumeInitialization('vol-8', 1, model, 3);
    init.start(start);
    let last = 0;
    for (let t = start; t < start + 600; t += model.defaultWindowSeconds / 3) {
      const p = init.progress(t);
      expect(p).toBeGreaterThanOrEqual(last);
      last = p;
      init.status(t);
    }
    expect(last).toBeGreaterThan(0);
  });

  it('needs nothing for a snapshot without data', () => {
    const init = new VolumeInitialization('vol-6', 0, model, 1);
    init.start(5);

    expect(init.progress(5)).toBe(100);
    expect(init.status(5)).toEqual({ InitializationType: 'default', Progress: 100 });
  });

  it('reports progress as of its last refresh, whole percents, 100 at most 300 s after completion', () => {
    const init = new VolumeInitialization('vol-7', 1, model, 1, 100);
    init.start(0);

    expect(init.status(0)).toEqual({
      InitializationType: 'provisioned-rate',
      Progress: 0,
      EstimatedTimeToCompleteInSeconds: 11,
    });
    // Complete at 10.24 s, but no refresh comes before 60 s.
    expect(init.complete(11)).toBe(true);
    expect(init.status(11).Progress).toBe(0);
    let firstHundred: number | undefined;
    for (let t = 11; t <= 400 && firstHundred === undefined; t += 1) {
      const s = init.status(t);
      expect(Number.isInteger(s.Progress)).toBe(true);
      if (s.Progress === 100) {
        firstHundred = t;
        expect(s.EstimatedTimeToCompleteInSeconds).toBe(0);
      }
    }
    expect(firstHundred).toBeGreaterThanOrEqual(60);
    expect(firstHundred).toBeLessThanOrEqual(10.24 + 300);
  });
});

describe('initialization in the simulator', () => {
  let h: Harness;

  afterEach(async () => {
    await h.dispose();
  });

  async function snapshotOfContent(): Promise<string> {
    const created = await h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 200 }));
    const volumeId = created.VolumeId ?? '';
    await h.cloud.waitFor(() => h.cloud.ec2.initializationProgress(volumeId) !== undefined, 60);
    await h.cloud.waitFor(
      () => h.cloud.snapshotState().volumes.some((v) => v.volumeId === volumeId && v.state === 'available'),
      60,
    );
    const snap = await h.ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }));
    const id = snap.SnapshotId ?? '';
    await h.cloud.waitFor(
      () => h.cloud.snapshotState().snapshots.some((s) => s.snapshotId === id && s.state === 'completed'),
      300,
    );
    await untilConsistent(h.cloud);
    return id;
  }

  async function available(volumeId: string): Promise<void> {
    await h.cloud.waitFor(
      () => h.cloud.snapshotState().volumes.some((v) => v.volumeId === volumeId && v.state === 'available'),
      120,
    );
    await untilConsistent(h.cloud);
  }

  it('refuses a VolumeInitializationRate out of 100-300, not whole, or without a snapshot', async () => {
    h = await harness({ contentGiB: 10 });
    const snapshotId = await snapshotOfContent();
    const base = { AvailabilityZone: 'us-east-1a', SnapshotId: snapshotId };

    for (const rate of [99, 301, 150.5]) {
      const err = await rejection(
        h.ec2.send(new CreateVolumeCommand({ ...base, VolumeInitializationRate: rate })),
      );
      expect(err.name).toBe('InvalidParameterValue');
    }
    const empty = await rejection(
      h.ec2.send(
        new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 8, VolumeInitializationRate: 200 }),
      ),
    );
    expect(empty.name).toBe('InvalidParameterCombination');
    const ok = await h.ec2.send(new CreateVolumeCommand({ ...base, VolumeInitializationRate: 300 }));
    expect(ok.VolumeInitializationRate).toBe(300);
  });

  it('gives a snapshot-born volume InitializationStatusDetails in DescribeVolumeStatus, an empty one none', async () => {
    h = await harness({ contentGiB: 100 });
    const snapshotId = await snapshotOfContent();
    const lazy =
      (await h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', SnapshotId: snapshotId })))
        .VolumeId ?? '';
    const rated =
      (
        await h.ec2.send(
          new CreateVolumeCommand({
            AvailabilityZone: 'us-east-1a',
            SnapshotId: snapshotId,
            VolumeInitializationRate: 100,
          }),
        )
      ).VolumeId ?? '';
    const empty =
      (await h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 8 }))).VolumeId ?? '';
    for (const id of [lazy, rated, empty]) await available(id);

    const out = await h.ec2.send(new DescribeVolumeStatusCommand({ VolumeIds: [lazy, rated, empty] }));
    const byId = new Map(out.VolumeStatuses?.map((s) => [s.VolumeId, s]));

    expect(byId.get(lazy)?.InitializationStatusDetails).toEqual({
      InitializationType: 'default',
      Progress: 0,
    });
    const ratedDetails = byId.get(rated)?.InitializationStatusDetails;
    expect(ratedDetails?.InitializationType).toBe('provisioned-rate');
    expect(ratedDetails?.Progress).toBe(0);
    // 100 GiB at 100 MiB/s: 1,024 s, less what passed since the volume became available.
    expect(ratedDetails?.EstimatedTimeToCompleteInSeconds).toBeGreaterThan(900);
    expect(ratedDetails?.EstimatedTimeToCompleteInSeconds).toBeLessThanOrEqual(1024);
    expect(byId.get(empty)?.InitializationStatusDetails).toBeUndefined();
    expect(byId.get(empty)?.VolumeStatus?.Status).toBe('ok');
    expect(h.cloud.ec2.initializationProgress(empty)).toBe(100);
    expect(h.cloud.ec2.initializationProgress(lazy)).toBeLessThan(5);
    const described = await h.ec2.send(new DescribeVolumesCommand({ VolumeIds: [rated, lazy] }));
    expect(described.Volumes?.find((v) => v.VolumeId === rated)?.VolumeInitializationRate).toBe(100);
    expect(described.Volumes?.find((v) => v.VolumeId === lazy)?.VolumeInitializationRate).toBeUndefined();
  });

  it('initializes at the volume throughput while the attached host reads every block, and records progress at attach', async () => {
    h = await harness({ contentGiB: 10 });
    const snapshotId = await snapshotOfContent();
    const volumeId =
      (
        await h.ec2.send(
          new CreateVolumeCommand({
            AvailabilityZone: 'us-east-1a',
            SnapshotId: snapshotId,
            VolumeType: 'gp3',
            Throughput: 250,
          }),
        )
      ).VolumeId ?? '';
    await available(volumeId);
    const instanceId = await runningInstance(h.cloud);
    await h.ec2.send(
      new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' }),
    );
    await h.cloud.waitFor(
      () =>
        h.cloud
          .snapshotState()
          .volumes.some((v) => v.volumeId === volumeId && v.attachment?.state === 'attached'),
      120,
    );
    const before = h.cloud.ec2.initializationProgress(volumeId) ?? 0;

    const seconds = h.cloud.ec2.readAllBlocks(instanceId, volumeId);

    // What is left of 10 GiB at the gp3 volume's 250 MiB/s.
    expect(seconds).toBeCloseTo(((100 - before) / 100) * ((10 * 1024) / 250), 1);
    await h.cloud.clock.sleep(seconds + 0.01);
    expect(h.cloud.ec2.initializationProgress(volumeId)).toBe(100);
    const view = h.cloud.snapshotState().volumes.find((v) => v.volumeId === volumeId);
    expect(view?.attachedTo).toEqual([instanceId]);
    expect(view?.progressAtAttach[0]).toBeLessThan(100);
    expect(view?.initialization?.seconds).toBeGreaterThan(0);
  });

  it('creates snapshot-born volumes initialized when rule volumeInitialization is off', async () => {
    h = await harness({ contentGiB: 100, rules: { volumeInitialization: false } });
    const snapshotId = await snapshotOfContent();
    const volumeId =
      (await h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', SnapshotId: snapshotId })))
        .VolumeId ?? '';
    await available(volumeId);

    const out = await h.ec2.send(new DescribeVolumeStatusCommand({ VolumeIds: [volumeId] }));

    expect(out.VolumeStatuses?.[0]?.InitializationStatusDetails).toEqual({
      InitializationType: 'default',
      Progress: 100,
    });
    expect(h.cloud.ec2.initializationProgress(volumeId)).toBe(100);
  });
});
