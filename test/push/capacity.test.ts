/**
 * The fan-out's space check (`lambdas/fanout/capacity.ts`) and what the fan-out does with its verdict:
 * a push that would not fit the pool's volumes is refused as a whole, never half-applied.
 */
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type CapacitySettings, checkCapacity } from '../../lambdas/fanout/capacity.js';
import { type FanOutDeps, type FanOutMetric, fanOutBatch } from '../../lambdas/fanout/fanout.js';
import type { GrowthRecord } from '../../lambdas/shared/growth.js';
import { growthTarget } from '../../lambdas/shared/growth.js';
import { encodeEventKey } from '../../lambdas/shared/push-keys.js';
import { PushStatus } from '../../lambdas/shared/push-records.js';
import { FakePools, FakePushes, MemoryLog, s3Notification, sqsRecord, testConfig } from './fakes.js';

const s3Mock = mockClient(S3Client);
const ssmMock = mockClient(SSMClient);

afterEach(() => {
  s3Mock.reset();
  ssmMock.reset();
});

/** 1 GiB = 1,000 bytes here: a 10 GiB volume holds 10,000 bytes (9,500 usable). */
const settings: CapacitySettings = {
  pool: 'web',
  bucket: 'volsd-web-push',
  prefix: 'live/',
  volumeSizeGiB: 10,
  growThresholdPercent: 80,
  gibBytes: 1000,
  maxObjectBytes: 5000,
};

/** The bucket lists `sizes` (two pages when there are more than two objects). */
function bucketOf(sizes: Record<string, number>) {
  const entries = Object.entries(sizes).map(([Key, Size]) => ({ Key, Size }));
  s3Mock
    .on(ListObjectsV2Command, { ContinuationToken: undefined })
    .resolves({ Contents: entries.slice(0, 2), IsTruncated: entries.length > 2, NextContinuationToken: 't2' })
    .on(ListObjectsV2Command, { ContinuationToken: 't2' })
    .resolves({ Contents: entries.slice(2), IsTruncated: false });
}

class MemoryGrowth {
  record: GrowthRecord | undefined;
  raised: { target: number; refused?: string }[] = [];
  async get() {
    return this.record;
  }
  async raiseTarget(_pool: string, target: number, baseline: number, refused?: string) {
    this.raised.push({ target, ...(refused ? { refused } : {}) });
    this.record = {
      targetGiB: Math.max(target, this.record?.targetGiB ?? 0),
      confirmedGiB: this.record?.confirmedGiB ?? baseline,
      repushPending: (this.record?.repushPending ?? false) || refused !== undefined,
    };
  }
}

const deps = (growth: MemoryGrowth) => ({ s3: new S3Client({ region: 'us-east-1' }), growth });

describe('checkCapacity', () => {
  it('passes a tree below the threshold and asks for no growth', async () => {
    // Prepare: 7,000 of 10,000 bytes.
    bucketOf({ 'live/a': 3000, 'live/b': 4000 });
    const growth = new MemoryGrowth();
    // Act
    const verdict = await checkCapacity(deps(growth), settings);
    // Assess
    expect(verdict).toEqual({ fits: true, treeBytes: 7000, fsBytes: 10000 });
    expect(growth.raised).toEqual([]);
  });

  it('passes a tree past the threshold that still fits, and raises the growth target', async () => {
    // Prepare: 9,000 bytes: over 80%, under 95%.
    bucketOf({ 'live/a': 4000, 'live/b': 3000, 'live/c': 2000 });
    const growth = new MemoryGrowth();
    // Act
    const verdict = await checkCapacity(deps(growth), settings);
    // Assess
    expect(verdict.fits).toBe(true);
    expect(verdict.growingTo).toBe(growthTarget(10, 9000, 80, 1000));
    expect(growth.raised).toEqual([{ target: 15 }]);
  });

  it('refuses a tree that does not fit, with the reason, and records that a push waits for the growth', async () => {
    // Prepare: 12,000 bytes on 10,000-byte volumes.
    bucketOf({ 'live/a': 4000, 'live/b': 4000, 'live/c': 4000 });
    const growth = new MemoryGrowth();
    // Act
    const verdict = await checkCapacity(deps(growth), settings);
    // Assess
    expect(verdict.fits).toBe(false);
    expect(verdict.reason).toContain('no-space');
    expect(verdict.growingTo).toBe(Math.ceil(12000 / 800));
    expect(growth.record?.repushPending).toBe(true);
  });

  it('counts only what Volsd-Sync copies: no refused keys, no object above the size limit', async () => {
    // Prepare
    bucketOf({ 'live/a': 1000, 'live/../escape': 4000, 'live/huge': 6000, 'other/x': 4000 });
    // Act
    const verdict = await checkCapacity(deps(new MemoryGrowth()), settings);
    // Assess: 'other/x' is outside the prefix only by the mock; the filter still drops it.
    expect(verdict.treeBytes).toBe(1000);
  });

  it('checks against the size every volume is known to have, not the target still being grown to', async () => {
    // Prepare: a growth to 20 GiB under way, 15 confirmed.
    bucketOf({ 'live/a': 4000, 'live/b': 4000, 'live/c': 4000, 'live/d': 4000 });
    const growth = new MemoryGrowth();
    growth.record = { targetGiB: 20, confirmedGiB: 15, repushPending: false };
    // Act
    const verdict = await checkCapacity(deps(growth), settings);
    // Assess: 16,000 bytes do not fit 15,000.
    expect(verdict).toMatchObject({ fits: false, fsBytes: 15000 });
  });
});

describe('fanOutBatch with a push that does not fit', () => {
  let calls: string[];
  let counted: Partial<Record<FanOutMetric, number>>;
  let pushes: FakePushes & { refusals?: unknown[] };
  let d: FanOutDeps;

  beforeEach(() => {
    calls = [];
    counted = {};
    pushes = Object.assign(new FakePushes(calls), { refusals: [] as unknown[] });
    d = {
      config: testConfig,
      ssm: new SSMClient({ region: 'us-east-1' }),
      pools: new FakePools(calls),
      pushes: Object.assign(pushes, {
        recordRefusal: async (input: { generation: number; keys: readonly string[]; error: string }) => {
          calls.push('recordRefusal');
          pushes.refusals?.push(input);
          return { status: PushStatus.Refused, ...input } as never;
        },
      }),
      capacity: {
        check: async () => ({
          fits: false,
          treeBytes: 12000,
          fsBytes: 10000,
          growingTo: 15,
          reason: 'no-space: x',
        }),
      },
      log: new MemoryLog(),
      count: (metric, n) => {
        counted[metric] = (counted[metric] ?? 0) + n;
      },
    };
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
  });

  it('refuses it as a whole: no generation, no command, a Refused record, the metric, nothing retried', async () => {
    // Act
    const result = await fanOutBatch(
      [sqsRecord('m1', s3Notification(['live/a', 'live/b'].map(encodeEventKey)))],
      d,
    );
    // Assess
    expect(calls).toEqual(['recordRefusal']);
    expect(ssmMock.commandCalls(SendCommandCommand)).toHaveLength(0);
    expect(result.failedMessageIds).toEqual([]);
    expect(result.push?.status).toBe(PushStatus.Refused);
    expect(pushes.refusals).toEqual([
      expect.objectContaining({ keys: ['live/a', 'live/b'], error: 'no-space: x' }),
    ]);
    expect(counted.PushRefusedNoSpace).toBe(1);
  });

  it('applies a push that fits as before', async () => {
    // Prepare
    d.capacity = { check: async () => ({ fits: true, treeBytes: 100, fsBytes: 10000 }) };
    // Act
    await fanOutBatch([sqsRecord('m1', s3Notification(['live/a'].map(encodeEventKey)))], d);
    // Assess
    expect(calls).toEqual(['bumpGeneration', 'recordPush:InProgress']);
    expect(ssmMock.commandCalls(SendCommandCommand)).toHaveLength(1);
  });

  it('retries the batch when the check itself fails (the listing throttled), applying nothing', async () => {
    // Prepare
    d.capacity = {
      check: async () => {
        throw new Error('SlowDown');
      },
    };
    // Act
    const result = await fanOutBatch([sqsRecord('m1', s3Notification(['live/a'].map(encodeEventKey)))], d);
    // Assess
    expect(result.failedMessageIds).toEqual(['m1']);
    expect(calls).toEqual([]);
    expect(ssmMock.commandCalls(SendCommandCommand)).toHaveLength(0);
  });
});
