import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type VolumeRecord, VolumeState } from '../../lambdas/shared/model.js';
import { PushRecords } from '../../lambdas/shared/push-records.js';
import { localCredentials } from '../../sandbox/servers.js';
import { buildBundle, type ClientWorld, parseJson, runClient, startWorld } from './harness.js';

let world: ClientWorld;
/** Environment of an operator's workstation: no instance metadata needed. */
let adminEnv: Record<string, string>;
/** The web host that holds a volume of the pool. */
const holder = 'i-0a1b2c3d4e5f60718';

/**
 * The admin views read the volume table and nothing else, so the pool's state is written straight into
 * the table through the repository: volumes in several states, two pushes, a generation and a
 * snapshot. (No replenish runs before the tests: the views are checked against the table, and the
 * pool sits at its target, so the `replenish` command's executions find nothing to do.)
 */
beforeAll(async () => {
  const [started] = await Promise.all([
    startWorld({ azs: 2, idlePerAz: 1, timeScale: 0.01, seed: 23 }),
    buildBundle(),
  ]);
  world = started;
  const { sandbox } = world;
  adminEnv = world.env();
  const { repo } = sandbox;
  const workerA = sandbox.workers['us-east-1a'] ?? '';
  const workerB = sandbox.workers['us-east-1b'] ?? '';
  const volumes = [
    {
      volumeId: 'vol-0000000000000000a',
      az: 'us-east-1a',
      state: VolumeState.Idle,
      holder: workerA,
      generation: 2,
    },
    { volumeId: 'vol-0000000000000000b', az: 'us-east-1a', state: VolumeState.Error, generation: 1 },
    {
      volumeId: 'vol-0000000000000000c',
      az: 'us-east-1b',
      state: VolumeState.Idle,
      holder: workerB,
      generation: 2,
    },
    { volumeId: 'vol-0000000000000000d', az: 'us-east-1b', state: VolumeState.InUse, holder, generation: 1 },
    {
      volumeId: 'vol-0000000000000000e',
      az: 'us-east-1b',
      state: VolumeState.Claimed,
      holder: 'i-0f0e0d0c0b0a09080',
      generation: 2,
    },
  ];
  for (const volume of volumes) await repo.registerVolume({ pool: 'web', ...volume });
  await repo.bumpGeneration('web');
  await repo.bumpGeneration('web');
  await repo.setLatestSnapshot('web', {
    snapshotId: 'snap-0123456789abcdef0',
    generation: 2,
    createdAt: '2026-01-02T03:04:05.000Z',
  });
  // Pushes as the fan-out and the push status function record them: one complete, one partial,
  // then a batch whose keys were all refused.
  const pushes = new PushRecords(sandbox.dynamo.doc, { tableName: sandbox.wiring.tableName });
  const ok = {
    status: 'Success',
    volumes: [{ volumeId: 'vol-0000000000000000a', status: 'ok' as const, generation: 1 }],
  };
  await pushes.recordPush({
    pool: 'web',
    generation: 1,
    status: 'InProgress',
    commandId: 'cmd-1',
    messages: 2,
    keys: ['live/index.html', 'live/a.html'],
    rejected: [],
  });
  await pushes.completePush('web', 1, 'cmd-1', {
    status: 'Success',
    instances: { [workerA]: ok },
    summary: {
      targets: 1,
      succeeded: 1,
      failed: 0,
      undeliverable: 0,
      volumesCurrent: 1,
      volumesFailed: 0,
      instancesOmitted: 0,
    },
  });
  await pushes.recordPush({
    pool: 'web',
    generation: 2,
    status: 'InProgress',
    commandId: 'cmd-2',
    messages: 1,
    keys: ['live/index.html'],
    rejected: [],
  });
  await pushes.completePush('web', 2, 'cmd-2', {
    status: 'Partial',
    instances: {
      [workerA]: ok,
      [holder]: {
        status: 'Failed',
        error: 'sync exited 8',
        volumes: [{ volumeId: 'vol-0000000000000000d', status: 'failed', error: 'sync exited 8' }],
      },
    },
    summary: {
      targets: 2,
      succeeded: 1,
      failed: 1,
      undeliverable: 0,
      volumesCurrent: 1,
      volumesFailed: 1,
      instancesOmitted: 0,
    },
  });
  await pushes.recordRejection({
    pool: 'web',
    generation: 2,
    id: 'batch-3',
    messages: 1,
    rejected: [{ key: 'live/../etc/passwd', reason: 'dot-segment' }],
  });
}, 120_000);

afterAll(async () => {
  await world?.stop();
});

describe('volumes', () => {
  it('lists every volume of the pool with AZ, state, holder and generation in a table', async () => {
    const expected = await world.sandbox.repo.listVolumes({ pool: 'web' });

    const run = await runClient(['volumes', '--pool', 'web'], adminEnv);

    expect(run.code).toBe(0);
    const [header, ...rows] = run.stdout.trimEnd().split('\n');
    expect(header?.split(/\s{2,}/)).toEqual(['VOLUME', 'AZ', 'STATE', 'HOLDER', 'GENERATION', 'AGE']);
    expect(rows).toHaveLength(expected.length);
    for (const v of expected) {
      expect(
        rows
          .find((r) => r.startsWith(v.volumeId))
          ?.split(/\s+/)
          .slice(0, 5),
      ).toEqual([v.volumeId, v.az, v.state, v.holder ?? '-', String(v.generation)]);
    }
  });

  it('prints the same volumes as the table holds with --output json', async () => {
    const expected = await world.sandbox.repo.listVolumes({ pool: 'web' });

    const run = await runClient(['volumes', '--pool', 'web', '--output', 'json'], adminEnv);

    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    expect(parseJson<VolumeRecord[]>(run)).toEqual(expected);
    expect(expected.some((v) => v.state === VolumeState.InUse && v.holder === holder)).toBe(true);
  });

  it('filters by AZ and state', async () => {
    const expected = await world.sandbox.repo.listVolumes({
      pool: 'web',
      az: 'us-east-1b',
      state: VolumeState.InUse,
    });

    const run = await runClient(
      ['volumes', '--pool', 'web', '--az', 'us-east-1b', '--state', 'in-use', '--output', 'json'],
      adminEnv,
    );

    expect(run.code).toBe(0);
    expect(expected).toHaveLength(1);
    expect(parseJson(run)).toEqual(expected);
  });
});

describe('volumes with foreign volumes reported by reconcile', () => {
  const foreign = {
    volumeId: 'vol-0fffffffffffffff1',
    az: 'us-east-1a',
    state: 'in-use',
    attachedTo: 'i-0fffffffffffffff1',
    why: 'not created by Volsd: no creation record names it',
  };

  it('lists them as FOREIGN beside the table, in the table view and the JSON, and leaves them out of a state filter', async () => {
    const expected = await world.sandbox.repo.listVolumes({ pool: 'web' });
    await world.sandbox.repo.putForeignVolumes('web', [foreign]);
    try {
      const text = await runClient(['volumes', '--pool', 'web'], adminEnv);
      const json = await runClient(['volumes', '--pool', 'web', '--output', 'json'], adminEnv);
      const filtered = await runClient(
        ['volumes', '--pool', 'web', '--state', 'in-use', '--output', 'json'],
        adminEnv,
      );

      expect(text.code).toBe(0);
      const row = text.stdout.split('\n').find((r) => r.startsWith(foreign.volumeId));
      expect(row?.split(/\s+/).slice(0, 4)).toEqual([
        foreign.volumeId,
        'us-east-1a',
        'FOREIGN',
        foreign.attachedTo,
      ]);
      expect(text.stdout).toContain(`${foreign.volumeId} (${foreign.why})`);
      expect(parseJson<unknown[]>(json)).toEqual([
        ...expected,
        { ...foreign, ec2State: 'in-use', state: 'FOREIGN', foreign: true },
      ]);
      expect(parseJson<VolumeRecord[]>(filtered).map((v) => v.volumeId)).not.toContain(foreign.volumeId);
    } finally {
      await world.sandbox.repo.putForeignVolumes('web', []);
    }
  });
});

describe('pool', () => {
  it('prints per AZ the target, idle, syncing and in-use counts, the generation and the latest snapshot', async () => {
    const run = await runClient(['pool', '--pool', 'web'], adminEnv);

    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/generation\s+2/);
    expect(run.stdout).toMatch(/latest snapshot\s+snap-0123456789abcdef0 \(generation 2/);
    const rows = run.stdout.split('\n').filter((line) => line.startsWith('us-east-1'));
    expect(rows.map((r) => r.split(/\s+/))).toEqual([
      ['us-east-1a', '1', '1', '0', '0', '0', '1'],
      ['us-east-1b', '1', '1', '0', '1', '1', '0'],
    ]);
  });

  it('prints the same figures as the table holds with --output json', async () => {
    const record = await world.sandbox.repo.getPool('web');
    const volumes = await world.sandbox.repo.listVolumes({ pool: 'web' });
    const count = (az: string, state: VolumeState) =>
      volumes.filter((v) => v.az === az && v.state === state).length;

    const run = await runClient(['pool', '--pool', 'web', '--output', 'json'], adminEnv);

    expect(run.code).toBe(0);
    const out = parseJson<{
      generation: number;
      latestSnapshot: unknown;
      azs: { az: string; target: number; idle: number; inUse: number; total: number }[];
    }>(run);
    expect(out.generation).toBe(record.generation);
    expect(out.latestSnapshot).toEqual(record.latestSnapshot);
    expect(out.azs).toEqual(
      record.azs.map((az) =>
        expect.objectContaining({
          az,
          target: record.targetIdlePerAz,
          idle: count(az, VolumeState.Idle),
          inUse: count(az, VolumeState.InUse),
          total: volumes.filter((v) => v.az === az).length,
        }),
      ),
    );
  });
});

describe('pushes', () => {
  it('lists pushes newest first with how many instances are current, and names the one that is not', async () => {
    const run = await runClient(['pushes', '--pool', 'web'], adminEnv);

    expect(run.code).toBe(0);
    const [pushTable = '', failures = ''] = run.stdout.split('\n\n');
    const [header, ...rows] = pushTable.split('\n');
    expect(header?.split(/\s{2,}/)).toEqual([
      'GENERATION',
      'REQUESTED',
      'STATUS',
      'KEYS',
      'CURRENT',
      'REFUSED',
      'COMMAND',
    ]);
    expect(rows.map((r) => [r.split(/\s+/)[0], ...r.split(/\s+/).slice(2)])).toEqual([
      ['2', 'Rejected', '0', '-', '1', '-'],
      ['2', 'Partial', '1', '1/2', '0', 'cmd-2'],
      ['1', 'Success', '2', '1/1', '0', 'cmd-1'],
    ]);
    expect(failures).toMatch(
      new RegExp(`^not current:\\n.*\\n2\\s+${holder}\\s+Failed\\s+sync exited 8$`, 'm'),
    );
  });

  it('prints the push records as the table holds them with --output json', async () => {
    const expected = await new PushRecords(world.sandbox.dynamo.doc, {
      tableName: world.sandbox.wiring.tableName,
    }).listPushes('web');

    const run = await runClient(['pushes', '--pool', 'web', '--output', 'json'], adminEnv);

    expect(run.code).toBe(0);
    expect(parseJson(run)).toEqual(expected);
    expect(expected.map((p) => p.status)).toEqual(['Rejected', 'Partial', 'Success']);
  });
});

/** Takes a configuration parameter away, as in a pool deployed without that workflow. */
async function unpublish(name: string): Promise<void> {
  await world.sandbox.cloud
    .handle('ssm', 'DeleteParameter', { Name: `/volsd/web/${name}` })
    .catch(() => undefined);
}

describe('workflows started by an operator', () => {
  it("snapshot starts the pool's snapshot workflow for the pool", async () => {
    const run = await runClient(['snapshot', '--pool', 'web', '--output', 'json'], adminEnv);

    expect(run.code).toBe(0);
    const { executionArn } = parseJson<{ executionArn: string }>(run);
    const execution = world.sandbox.sfn.executions.get(executionArn);
    await execution?.done;
    expect(execution?.stateMachineArn).toBe(world.sandbox.wiring.stateMachines.snapshot);
    expect(JSON.parse(execution?.input ?? '{}')).toEqual({ pool: 'web', reason: 'admin' });
  });

  it('snapshot exits 9 when the pool deploys no snapshot workflow, naming the parameter', async () => {
    await unpublish('snapshot-state-machine-arn');

    const run = await runClient(['snapshot', '--pool', 'web'], adminEnv);

    expect(run.code).toBe(9);
    expect(run.stderr).toContain('not deployed');
    expect(run.stderr).toContain('/volsd/web/snapshot-state-machine-arn');
  });

  it('sync exits 9 when the pool deploys no sync-all workflow', async () => {
    await unpublish('sync-all-state-machine-arn');

    const run = await runClient(['sync', '--pool', 'web', '--output', 'json'], adminEnv);

    expect(run.code).toBe(9);
    expect(parseJson(run)).toMatchObject({ error: { code: 'NotDeployed', exitCode: 9 } });
  });

  it('replenish starts one replenish execution per AZ', async () => {
    const run = await runClient(['replenish', '--pool', 'web', '--output', 'json'], adminEnv);
    await world.sandbox.settle();

    expect(run.code).toBe(0);
    const out = parseJson<{ started: { az: string; executionArn: string }[] }>(run);
    expect(out.started.map((s) => s.az)).toEqual(['us-east-1a', 'us-east-1b']);
    for (const { az, executionArn } of out.started) {
      const execution = world.sandbox.sfn.executions.get(executionArn);
      expect(execution?.stateMachineArn).toBe(world.sandbox.wiring.stateMachines.replenish);
      expect(JSON.parse(execution?.input ?? '{}')).toEqual({ pool: 'web', az, reason: 'admin' });
    }
  });
});

describe('errors', () => {
  it('exits 2 with a hint when no pool is given', async () => {
    const run = await runClient(['volumes'], adminEnv);

    expect(run.code).toBe(2);
    expect(run.stderr.trimEnd().split('\n')).toEqual([
      "volsd-client: no pool: pass --pool NAME or set VOLSD_POOL (see 'volsd-client volumes --help')",
    ]);
  });

  it('takes the pool from VOLSD_POOL', async () => {
    const run = await runClient(['pool', '--output', 'json'], { ...adminEnv, VOLSD_POOL: 'web' });

    expect(run.code).toBe(0);
    expect(parseJson(run)).toMatchObject({ pool: 'web' });
  });

  it('--profile takes the Region and the credentials from that profile of the AWS config files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'volsd-client-profile-'));
    const { AWS_REGION: _r, AWS_ACCESS_KEY_ID: _a, AWS_SECRET_ACCESS_KEY: _s, ...bare } = adminEnv;
    await writeFile(join(dir, 'config'), '[profile operator]\nregion = us-east-1\n');
    await writeFile(
      join(dir, 'credentials'),
      `[operator]\naws_access_key_id = ${localCredentials.accessKeyId}\naws_secret_access_key = ${localCredentials.secretAccessKey}\n`,
    );
    try {
      const run = await runClient(['pool', '--pool', 'web', '--profile', 'operator', '--output', 'json'], {
        ...bare,
        AWS_CONFIG_FILE: join(dir, 'config'),
        AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
        AWS_EC2_METADATA_DISABLED: 'true',
      });

      expect(run.code).toBe(0);
      expect(parseJson(run)).toMatchObject({ pool: 'web', region: 'us-east-1' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('exits 2 with a hint when no Region is configured', async () => {
    const { AWS_REGION: _region, ...noRegion } = adminEnv;

    const run = await runClient(['volumes', '--pool', 'web'], noRegion);

    expect(run.code).toBe(2);
    expect(run.stderr).toContain('no AWS Region: pass --region or set AWS_REGION');
  });

  it('exits 4 naming dynamodb:Query when the table may not be queried', async () => {
    world.gateway.deny('dynamodb:Query');
    try {
      const run = await runClient(['volumes', '--pool', 'web'], adminEnv);

      expect(run.code).toBe(4);
      expect(run.stderr).toContain('permission denied: this identity may not call dynamodb:Query');
    } finally {
      world.gateway.allow();
    }
  });

  it('exits 4 when there are no credentials at all', async () => {
    const { AWS_ACCESS_KEY_ID: _a, AWS_SECRET_ACCESS_KEY: _s, ...noCredentials } = adminEnv;

    const run = await runClient(['volumes', '--pool', 'web'], {
      ...noCredentials,
      // The credential chain would otherwise ask the (absent) instance metadata service.
      AWS_EC2_METADATA_DISABLED: 'true',
    });

    expect(run.code).toBe(4);
    expect(run.stderr).toContain('no usable AWS credentials');
  });

  it('exits 5 for an unknown pool', async () => {
    const run = await runClient(['pushes', '--pool', 'elsewhere'], adminEnv);

    expect(run.code).toBe(5);
    expect(run.stderr).toContain("unknown pool 'elsewhere'");
  });
});
