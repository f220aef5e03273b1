import { describe, expect, it } from 'vitest';
import { type Facts, planRepairs, type ReconcileBounds } from '../../lambdas/reconcile/plan.js';
import { finishRepair, planOnItems } from '../../lambdas/reconcile/steps.js';
import { VolumeState } from '../../lambdas/shared/model.js';
import type { StepDeps } from '../../lambdas/shared/steps.js';
import { instanceId, volumeId } from '../helpers/ids.js';
import { handOver, useLaggingPool } from '../helpers/lagging-table.js';

// Reconcile reads the pool's volumes from the byPool index, which lags the table on AWS. These tests run
// its plan and its repairs over a client whose index answers as it stood up to a second ago
// (sandbox/index-lag.ts, on a clock the test moves), and check that the item decides what is repaired.

const AZ = 'us-east-1a';
const A = instanceId(0xa);
const B = instanceId(0xb);
const v1 = volumeId(1);
/** Every claim counts as old and nothing as young: only the facts decide. */
const bounds: ReconcileBounds = { claimMaxAgeSeconds: 0, graceSeconds: 0, maxRepairs: 25 };
const pool = useLaggingPool('reconcile', AZ, v1, async ({ truth }) => {
  // A claimed v1, and its acquire is gone: a stale claim, visible in the index.
  await truth.claimVolume({ pool: 'web', az: AZ, instanceId: A });
});

/** A's claim goes back to the pool and B claims v1 (its acquire runs), all within the index's lag. */
function handOverToB(): Promise<void> {
  return handOver(pool.truth, v1, AZ, A, B);
}

/** What reconcile's scan gathers: the table from `repo`'s index, v1 detached, A and B running, B's acquire. */
async function facts(): Promise<Facts> {
  const instance = (id: string) => [id, { instanceId: id, state: 'running', worker: false, az: AZ }] as const;
  return {
    now: Date.now() + 1000,
    pool: { name: 'web', azs: [AZ] },
    records: await pool.repo.listVolumes({ pool: 'web' }),
    volumes: new Map([[v1, { volumeId: v1, az: AZ, state: 'available', createdAt: 0, role: 'volume' }]]),
    instances: new Map([instance(A), instance(B)]),
    runningAcquires: [`launch-${B}-1`],
    pendingLaunches: [],
    creations: [],
  };
}

function deps(): StepDeps {
  // toPool needs only the table; the clients and the configuration are never reached.
  return { repo: pool.repo, config: { RELEASE_POLICY: 'delete' } } as unknown as StepDeps;
}

describe('reconcile over a lagging index', () => {
  it('the index alone would send a fresh claim back to the pool (the drift the tests guard against)', async () => {
    // Prepare
    await handOverToB();
    // Act
    const plan = planRepairs(await facts(), bounds, 'ABANDON');
    // Assess
    expect(plan.repairs).toMatchObject([
      { kind: 'staleClaim', action: 'toPool', volumeId: v1, instanceId: A },
    ]);
  });

  it('plans on the item: no repair for a volume whose stale claim was handed to a running acquire', async () => {
    // Prepare
    await handOverToB();
    // Act
    const plan = await planOnItems(pool.repo, await facts(), bounds, 'ABANDON');
    // Assess
    expect(plan.repairs).toEqual([]);
  });

  it('skips a planned repair once the item moved on, even back to the planned state', async () => {
    // Prepare: planned on the item (A's stale claim), then handed to B before the repair runs.
    const plan = await planOnItems(pool.repo, await facts(), bounds, 'ABANDON');
    const [repair] = plan.repairs;
    if (!repair) throw new Error('no repair planned for the stale claim');
    await handOverToB();
    // Act
    const outcome = await finishRepair(repair, { pool: 'web' }, deps());
    // Assess
    expect(outcome.status).toBe('skipped');
    expect(await pool.truth.getVolume(v1)).toMatchObject({ state: VolumeState.Claimed, holder: B });
  });

  it('repairs the stale claim when the item is as planned', async () => {
    // Prepare
    const plan = await planOnItems(pool.repo, await facts(), bounds, 'ABANDON');
    const [repair] = plan.repairs;
    if (!repair) throw new Error('no repair planned for the stale claim');
    // Act
    const outcome = await finishRepair(repair, { pool: 'web' }, deps());
    // Assess
    expect(outcome.status).toBe('done');
    expect(await pool.truth.getVolume(v1)).toMatchObject({ state: VolumeState.Syncing });
  });
});
