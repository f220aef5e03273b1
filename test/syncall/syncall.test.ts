/**
 * Sync-all (admin resync): volumes that drifted from the bucket's tree by hand are brought back, idle
 * ones on the sync worker and attached ones on clients; a failed instance is named in the summary.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VolumeState } from '../../lambdas/shared/model.js';
import type { SyncAllSummary } from '../../lambdas/syncall/steps.js';
import { type Gateway, startGateway } from '../../sandbox/gateway/gateway.js';
import { publishConfig } from '../../sandbox/gateway/publish-config.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { bucketTree, holdsTree, volumeTruth } from '../../sandbox/scenarios/push.js';
import { buildBundle, parseJson, runClient } from '../client/harness.js';
import { putContent, scaleAndSettle } from '../helpers/sandbox.js';

let sandbox: Sandbox;
let gateway: Gateway | undefined;
let client = '';
let runs = 0;

beforeAll(async () => {
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: 2, timeScale: 0.05, seed: 55 });
  await putContent(sandbox, 'live/index.html', '<h1>synced</h1>');
  await putContent(sandbox, 'live/css/site.css', 'body { color: black }');
  await sandbox.repo.bumpGeneration(sandbox.options.pool);
  await sandbox.replenishAll();
  client = (await scaleAndSettle(sandbox, 1))[0] ?? '';
  gateway = await startGateway(sandbox);
  // The sandbox registers the workflow as `syncall`; published under the name volsd-client reads.
  await publishConfig(sandbox, { values: { syncAllStateMachineArn: sandbox.wiring.stateMachines.syncall } });
  await buildBundle();
}, 300_000);

afterAll(async () => {
  await gateway?.stop();
  await sandbox?.settle().catch(() => undefined);
  await sandbox?.stop();
});

interface RunResult {
  status?: string;
  error?: string;
  summary: Partial<SyncAllSummary>;
}

async function runSyncAll(): Promise<RunResult> {
  const arn = sandbox.wiring.stateMachines.syncall;
  if (!arn) throw new Error('the sandbox runs no syncall state machine');
  const { executionArn } = sandbox.sfn.start(
    arn,
    `syncall-test-${++runs}`,
    JSON.stringify({ pool: sandbox.options.pool, reason: 'test' }),
  );
  await sandbox.sfn.executions.get(executionArn)?.done;
  await sandbox.settle();
  const execution = sandbox.sfn.executions.get(executionArn);
  return {
    status: execution?.status,
    error: execution?.error,
    summary: JSON.parse(execution?.output ?? '{}') as Partial<SyncAllSummary>,
  };
}

describe('sync-all (sandbox)', { timeout: 300_000 }, () => {
  it('is started by `volsd-client sync` for the pool, and ends with every instance synced', async () => {
    // Prepare
    const env = gateway?.clientEnv() ?? {};

    // Act
    const run = await runClient(['sync', '--pool', sandbox.options.pool, '--output', 'json'], env);
    const { executionArn } = parseJson<{ executionArn: string }>(run);
    const execution = sandbox.sfn.executions.get(executionArn);
    await execution?.done;
    await sandbox.settle();

    // Assess
    const summary = JSON.parse(execution?.output ?? '{}') as Partial<SyncAllSummary>;
    expect({
      code: run.code,
      machine: execution?.stateMachineArn,
      input: JSON.parse(execution?.input ?? '{}'),
      status: execution?.status,
      instances: summary.instances,
      succeeded: summary.succeeded,
      failed: summary.failed,
    }).toEqual({
      code: 0,
      machine: sandbox.wiring.stateMachines.syncall,
      input: { pool: sandbox.options.pool, reason: 'admin' },
      status: 'SUCCEEDED',
      instances: 2,
      succeeded: 2,
      failed: [],
    });
  });

  it('brings an idle and an attached volume that drifted back to the bucket tree', async () => {
    // Prepare
    const before = await volumeTruth(sandbox);
    const idle = before.find((v) => v.state === VolumeState.Idle);
    const attached = before.find((v) => v.state === VolumeState.InUse && v.holder === client);
    if (!idle || !attached) throw new Error('the pool has no idle or no attached volume');
    await rm(join(sandbox.cloud.volumeDataDir(idle.volumeId), 'index.html'));
    await rm(join(sandbox.cloud.volumeDataDir(attached.volumeId), 'css', 'site.css'));
    const tree = await bucketTree(sandbox);
    const drifted = (await volumeTruth(sandbox)).filter((v) => !holdsTree(v, tree)).map((v) => v.volumeId);

    // Act
    const run = await runSyncAll();

    // Assess
    const after = await volumeTruth(sandbox);
    expect({
      drifted: drifted.sort(),
      status: run.status,
      notCurrent: after.filter((v) => !holdsTree(v, tree)).map((v) => v.volumeId),
      volumes: after.length,
    }).toEqual({
      drifted: [idle.volumeId, attached.volumeId].sort(),
      status: 'SUCCEEDED',
      notCurrent: [],
      volumes: before.length,
    });
  });

  it('syncs at the current generation without bumping it', async () => {
    // Prepare
    const { generation } = await sandbox.repo.getPool(sandbox.options.pool);

    // Act
    const run = await runSyncAll();

    // Assess
    const pool = await sandbox.repo.getPool(sandbox.options.pool);
    expect({ pool: pool.generation, synced: run.summary.generation, failed: run.summary.failed }).toEqual({
      pool: generation,
      synced: generation,
      failed: [],
    });
  });

  it('names the instance whose sync failed in the summary', async () => {
    // Prepare
    sandbox.cloud.faults.once('ssmFailure', { instanceId: client, documentName: 'Volsd-Sync' });

    // Act
    const run = await runSyncAll();

    // Assess
    expect({ status: run.status, instances: run.summary.instances, failed: run.summary.failed }).toEqual({
      status: 'SUCCEEDED',
      instances: 2,
      failed: [{ instanceId: client, status: 'Failed', error: expect.stringContaining('injected fault') }],
    });
  });
});
