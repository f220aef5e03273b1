import { mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateSnapshotCommand,
  CreateVolumeCommand,
  DeleteSnapshotCommand,
  DescribeSnapshotsCommand,
} from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Harness, harness, rejection, untilConsistent } from './harness.js';

let h: Harness;

beforeEach(async () => {
  h = await harness();
});

afterEach(async () => {
  await h.dispose();
});

function state() {
  return h.cloud.snapshotState();
}

async function volumeWithData(files: Record<string, string>): Promise<string> {
  const out = await h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 8 }));
  const id = out.VolumeId ?? '';
  await h.cloud.waitFor(() => state().volumes.some((v) => v.volumeId === id && v.state === 'available'), 120);
  for (const [path, content] of Object.entries(files)) {
    const full = join(h.cloud.volumeDataDir(id), path);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, content);
  }
  return id;
}

async function completedSnapshot(volumeId: string, tags: Record<string, string> = {}): Promise<string> {
  const out = await h.ec2.send(
    new CreateSnapshotCommand({
      VolumeId: volumeId,
      TagSpecifications: [
        { ResourceType: 'snapshot', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
      ],
    }),
  );
  const id = out.SnapshotId ?? '';
  await h.cloud.waitFor(
    () => state().snapshots.some((s) => s.snapshotId === id && s.state === 'completed'),
    300,
  );
  return id;
}

describe('snapshots', () => {
  it('go pending -> completed', async () => {
    const volumeId = await volumeWithData({ 'index.html': 'v1' });

    const out = await h.ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId, Description: 'gen 1' }));
    const pending = out.State;
    await h.cloud.waitFor(() => state().snapshots.some((s) => s.state === 'completed'), 300);
    const described = await h.ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [out.SnapshotId ?? ''] }));

    expect(pending).toBe('pending');
    expect(out).toMatchObject({
      VolumeId: volumeId,
      VolumeSize: 8,
      OwnerId: '123456789012',
      Description: 'gen 1',
    });
    expect(described.Snapshots?.[0]).toMatchObject({ State: 'completed', Progress: '100%' });
  });

  it('capture the data tree at call time', async () => {
    const volumeId = await volumeWithData({ 'index.html': 'v1' });

    const out = await h.ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }));
    writeFileSync(join(h.cloud.volumeDataDir(volumeId), 'index.html'), 'v2');

    expect(readFileSync(join(h.cloud.snapshotDataDir(out.SnapshotId ?? ''), 'index.html'), 'utf8')).toBe(
      'v1',
    );
  });

  it('restore into a new volume with the data and file times of the snapshot', async () => {
    const volumeId = await volumeWithData({ 'site/index.html': 'hello', 'site/a/b.css': 'x' });
    const old = new Date('2024-01-02T03:04:05Z');
    utimesSync(join(h.cloud.volumeDataDir(volumeId), 'site/index.html'), old, old);
    const snapshotId = await completedSnapshot(volumeId);

    const out = await h.ec2.send(
      new CreateVolumeCommand({ AvailabilityZone: 'us-east-1b', SnapshotId: snapshotId }),
    );
    const restored = out.VolumeId ?? '';
    await h.cloud.waitFor(
      () => state().volumes.some((v) => v.volumeId === restored && v.state === 'available'),
      300,
    );

    const dir = h.cloud.volumeDataDir(restored);
    expect(out).toMatchObject({ SnapshotId: snapshotId, Size: 8, State: 'creating' });
    expect(readFileSync(join(dir, 'site/index.html'), 'utf8')).toBe('hello');
    expect(readFileSync(join(dir, 'site/a/b.css'), 'utf8')).toBe('x');
    expect(statSync(join(dir, 'site/index.html')).mtime.getTime()).toBe(old.getTime());
  });

  it('refuse a second snapshot of a volume within 15 s', async () => {
    const volumeId = await volumeWithData({});
    await h.ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }));

    const error = await rejection(h.ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId })));

    expect(error.name).toBe('SnapshotCreationPerVolumeRateExceeded');
  });

  it('refuse a sixth pending snapshot of one volume', async () => {
    await h.dispose();
    h = await harness({ latency: { snapshot: [100_000, 100_000] } });
    const volumeId = await volumeWithData({});
    for (let n = 0; n < 5; n++) {
      await h.ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }));
      await h.cloud.clock.sleep(16);
    }

    const error = await rejection(h.ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId })));

    expect(error.name).toBe('ConcurrentSnapshotLimitExceeded');
  });

  it('cannot be deleted while a volume is being created from them', async () => {
    await h.dispose();
    h = await harness({ latency: { volumeCreateFromSnapshot: [100_000, 100_000] } });
    const snapshotId = await completedSnapshot(await volumeWithData({ f: '1' }));
    await h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', SnapshotId: snapshotId }));

    const error = await rejection(h.ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })));

    expect(error.name).toBe('InvalidSnapshot.InUse');
  });

  it('are deleted, then not found', async () => {
    const snapshotId = await completedSnapshot(await volumeWithData({}));

    await h.ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
    const error = await rejection(h.ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] })));

    expect(error.name).toBe('InvalidSnapshot.NotFound');
  });

  it('are listed by owner, tag and status', async () => {
    const tagged = await completedSnapshot(await volumeWithData({}), {
      'volsd:pool': 'web',
      'volsd:generation': '3',
    });
    await completedSnapshot(await volumeWithData({}), { 'volsd:pool': 'other' });

    const out = await h.ec2.send(
      new DescribeSnapshotsCommand({
        OwnerIds: ['self'],
        Filters: [
          { Name: 'tag:volsd:pool', Values: ['web'] },
          { Name: 'status', Values: ['completed'] },
        ],
      }),
    );

    expect(out.Snapshots?.map((s) => s.SnapshotId)).toEqual([tagged]);
    expect(out.Snapshots?.[0]?.Tags).toContainEqual({ Key: 'volsd:generation', Value: '3' });
  });

  it('are refused as a volume source while pending', async () => {
    await h.dispose();
    h = await harness({ latency: { snapshot: [100_000, 100_000] } });
    const out = await h.ec2.send(new CreateSnapshotCommand({ VolumeId: await volumeWithData({}) }));
    await untilConsistent(h.cloud);

    const error = await rejection(
      h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', SnapshotId: out.SnapshotId })),
    );

    expect(error.name).toBe('IncorrectState');
  });
});
