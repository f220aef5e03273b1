import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { NoIdleVolume } from '../../lambdas/shared/errors.js';
import { VolumeState } from '../../lambdas/shared/model.js';
import type { VolumeRepository } from '../../lambdas/shared/repository.js';
import { type LocalDynamo, startDynamo } from '../../sandbox/servers.js';
import { instanceId, volumeId } from '../helpers/ids.js';
import { type LaggingTable, laggingTable } from '../helpers/lagging-table.js';

// Claims read candidates from the byPool index, which lags the table on AWS. These tests run the
// repository over a client whose index answers as it stood up to a second ago (sandbox/index-lag.ts,
// on a clock the test moves), and check that the item, not the index, decides who gets a volume.

const AZ = 'us-east-1a';
const A = instanceId(0xa);
const B = instanceId(0xb);
const v1 = volumeId(1);
let dynamo: LocalDynamo;
let tableCounter = 0;
let now = 0;
let table: LaggingTable | undefined;
/** The repository under test: its index reads lag. */
let repo: VolumeRepository;
/** The same table through a client whose index reads are current (what the test arranges with). */
let truth: VolumeRepository;

beforeAll(async () => {
  dynamo = await startDynamo();
});
afterAll(async () => {
  table?.destroy();
  await dynamo.stop();
});
beforeEach(async () => {
  now = 0;
  table?.destroy();
  table = await laggingTable(dynamo, `claims-${++tableCounter}`, () => now);
  ({ repo, truth } = table);
  await truth.putPool({ pool: 'web', azs: [AZ], targetIdlePerAz: 1 });
  await truth.registerVolume({ volumeId: v1, pool: 'web', az: AZ, state: VolumeState.Idle });
  now += 2; // the idle volume is in the index
});

describe('claimVolume over a lagging index', () => {
  it('does not hand out a volume the stale index still lists IDLE but another instance claimed', async () => {
    // Prepare
    await truth.claimVolume({ pool: 'web', az: AZ, instanceId: A });
    // Act
    const claim = repo.claimVolume({ pool: 'web', az: AZ, instanceId: B });
    // Assess
    await expect(claim).rejects.toBeInstanceOf(NoIdleVolume);
  });

  it('leaves the volume with the instance that claimed it', async () => {
    // Prepare
    await truth.claimVolume({ pool: 'web', az: AZ, instanceId: A });
    await repo.claimVolume({ pool: 'web', az: AZ, instanceId: B }).catch(() => undefined);
    // Act
    const record = await truth.getVolume(v1);
    // Assess
    expect(record).toMatchObject({ state: VolumeState.Claimed, holder: A });
  });

  it('does not take back a volume the stale index shows CLAIMED by the instance but now held by another', async () => {
    // Prepare: A claimed v1 (visible in the index), gave up: v1 went back to the pool and B claimed it,
    // all within the lag, so the index still shows v1 CLAIMED by A.
    await truth.claimVolume({ pool: 'web', az: AZ, instanceId: A });
    now += 2;
    await truth.dropAssignment(A, v1);
    await truth.transition({
      volumeId: v1,
      from: VolumeState.Claimed,
      to: VolumeState.Idle,
      set: { holder: null },
    });
    await truth.claimVolume({ pool: 'web', az: AZ, instanceId: B });
    // Act
    const claim = repo.claimVolume({ pool: 'web', az: AZ, instanceId: A });
    // Assess
    await expect(claim).rejects.toBeInstanceOf(NoIdleVolume);
  });
});
