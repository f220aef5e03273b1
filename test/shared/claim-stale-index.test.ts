import { describe, expect, it } from 'vitest';
import { NoIdleVolume } from '../../lambdas/shared/errors.js';
import { VolumeState } from '../../lambdas/shared/model.js';
import { instanceId, volumeId } from '../helpers/ids.js';
import { handOver, useLaggingPool } from '../helpers/lagging-table.js';

// Claims read candidates from the byPool index, which lags the table on AWS. These tests run the
// repository over a client whose index answers as it stood up to a second ago (sandbox/index-lag.ts,
// on a clock the test moves), and check that the item, not the index, decides who gets a volume.

const AZ = 'us-east-1a';
const A = instanceId(0xa);
const B = instanceId(0xb);
const v1 = volumeId(1);
const pool = useLaggingPool('claims', AZ, v1);

describe('claimVolume over a lagging index', () => {
  it('does not hand out a volume the stale index still lists IDLE but another instance claimed', async () => {
    // Prepare
    await pool.truth.claimVolume({ pool: 'web', az: AZ, instanceId: A });
    // Act
    const claim = pool.repo.claimVolume({ pool: 'web', az: AZ, instanceId: B });
    // Assess
    await expect(claim).rejects.toBeInstanceOf(NoIdleVolume);
  });

  it('leaves the volume with the instance that claimed it', async () => {
    // Prepare
    await pool.truth.claimVolume({ pool: 'web', az: AZ, instanceId: A });
    await pool.repo.claimVolume({ pool: 'web', az: AZ, instanceId: B }).catch(() => undefined);
    // Act
    const record = await pool.truth.getVolume(v1);
    // Assess
    expect(record).toMatchObject({ state: VolumeState.Claimed, holder: A });
  });

  it('does not take back a volume the stale index shows CLAIMED by the instance but now held by another', async () => {
    // Prepare: A claimed v1 (visible in the index), gave up: v1 went back to the pool and B claimed it,
    // all within the lag, so the index still shows v1 CLAIMED by A.
    await pool.truth.claimVolume({ pool: 'web', az: AZ, instanceId: A });
    pool.now += 2;
    await handOver(pool.truth, v1, AZ, A, B);
    // Act
    const claim = pool.repo.claimVolume({ pool: 'web', az: AZ, instanceId: A });
    // Assess
    await expect(claim).rejects.toBeInstanceOf(NoIdleVolume);
  });
});
