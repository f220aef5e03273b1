import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VolumeState } from '../../lambdas/shared/model.js';
import { readMounts } from '../../sandbox/sim/devices.js';
import { putContent } from '../helpers/sandbox.js';
import {
  buildBundle,
  type ClientRun,
  type ClientWorld,
  parseJson,
  runClient,
  runInTerminal,
  startWorld,
} from './harness.js';

let world: ClientWorld;
/** The host outside any group that acquires and releases by hand. */
let host: string;
let hostEnv: Record<string, string>;
/** Two more hosts, for the runs that leave a workflow behind (--no-wait, --timeout). */
let spareHosts: string[];

beforeAll(async () => {
  const [started] = await Promise.all([
    // The default time scale, not 0.01: the sync and mount scripts run as real processes, so on a busy
    // machine they need the wall-clock headroom the workflows' modelled waits give them.
    startWorld({ azs: 1, idlePerAz: 2, timeScale: 0.02, seed: 11 }),
    buildBundle(),
  ]);
  world = started;
  await putContent(world.sandbox, 'live/index.html', '<h1>by hand</h1>');
  await world.sandbox.repo.bumpGeneration(world.sandbox.options.pool);
  const [hosts] = await Promise.all([
    Promise.all([world.launchHost(), world.launchHost(), world.launchHost()]),
    world.fillPool(),
  ]);
  [host = '', ...spareHosts] = hosts;
  hostEnv = world.hostEnv(await world.gateway.imdsFor(host), {
    VOLSD_ROOT: world.sandbox.cloud.hostRoot(host),
  });
}, 120_000);

afterAll(async () => {
  await world?.stop();
});

/** EC2's truth: the pool volumes attached to `instanceId`. */
function attachedTo(instanceId: string) {
  return world.sandbox.cloud.ec2
    .view()
    .volumes.filter((v) => !v.root && v.attachment?.instanceId === instanceId);
}

function mountPoints(instanceId: string): string[] {
  return readMounts(world.sandbox.cloud.hostRoot(instanceId)).map((m) => m.mountPoint);
}

/** A TCP port on 127.0.0.1 that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('acquire, status and release on a host outside any group', () => {
  let volumeId: string;
  let acquireRun: ClientRun;

  it('acquire attaches a volume, mounts it with the current content where asked, and prints it', async () => {
    const run = await runClient(['acquire', '--pool', 'web', '--mount', '/srv/www/data'], hostEnv);
    acquireRun = run;

    expect(run.code).toBe(0);
    const [ec2] = attachedTo(host);
    if (!ec2) throw new Error(`nothing attached to ${host}:\n${run.stderr}`);
    volumeId = ec2.volumeId;
    expect(ec2.attachment?.state).toBe('attached');
    expect(await world.sandbox.repo.getVolume(volumeId)).toMatchObject({
      state: VolumeState.InUse,
      holder: host,
    });
    expect(mountPoints(host)).toContain('/srv/www/data');
    expect(readFileSync(join(world.sandbox.cloud.hostRoot(host), 'srv/www/data/index.html'), 'utf8')).toBe(
      '<h1>by hand</h1>',
    );
    expect(run.stdout).toMatch(new RegExp(`volume\\s+${volumeId}`));
    expect(run.stdout).toMatch(/mounted at\s+\/srv\/www\/data/);
  });

  it('acquire shows its progress as plain lines on stderr when stderr is a pipe', () => {
    expect(acquireRun.stderr).toMatch(/^acquire: RUNNING \S+ \(\d+\.\ds\)$/m);
    expect(acquireRun.stderr).toMatch(/^acquire: SUCCEEDED \(\d+\.\ds\)$/m);
    expect(acquireRun.stderr).not.toContain('\r');
  });

  it('status prints the held volume, its device and mount point, and that it is current', async () => {
    const run = await runClient(['status', '--pool', 'web'], hostEnv);
    const record = await world.sandbox.repo.getVolume(volumeId);

    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`volume\\s+${volumeId}`));
    expect(run.stdout).toMatch(new RegExp(`device\\s+${record.device}`));
    expect(run.stdout).toMatch(/mounted at\s+\/srv\/www\/data/);
    expect(run.stdout).toMatch(/current/);
  });

  it('status finds the pool from the instance tag and prints JSON only with --output json', async () => {
    const run = await runClient(['status', '--output', 'json'], hostEnv);
    const record = await world.sandbox.repo.getVolume(volumeId);
    const pool = await world.sandbox.repo.getPool('web');

    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    expect(parseJson(run)).toEqual({
      pool: 'web',
      instanceId: host,
      az: record.az,
      status: 'HELD',
      volumeId,
      state: 'IN_USE',
      device: record.device,
      mountPath: '/srv/www/data',
      generation: record.generation,
      poolGeneration: pool.generation,
      current: true,
      claimedAt: record.claimedAt,
    });
  });

  it('a second acquire on a host that holds a volume exits 7 and names the volume', async () => {
    const run = await runClient(['acquire', '--pool', 'web'], hostEnv);

    expect(run.code).toBe(7);
    expect(run.stderr).toContain(`already holds ${volumeId}`);
    expect(attachedTo(host).map((v) => v.volumeId)).toEqual([volumeId]);
  });

  it('release unmounts, detaches and gives the volume back; the host tree no longer has it', async () => {
    const run = await runClient(['release', '--pool', 'web'], hostEnv);

    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`released\\s+${volumeId}`));
    expect(run.stderr).toMatch(/release: SUCCEEDED/);
    expect(attachedTo(host)).toEqual([]);
    expect(mountPoints(host)).not.toContain('/srv/www/data');
    expect(existsSync(join(world.sandbox.cloud.hostRoot(host), 'srv/www/data/index.html'))).toBe(false);
    expect(await world.sandbox.repo.getAssignment(host)).toBeUndefined();
    expect(await world.sandbox.repo.findVolume(volumeId)).toBeUndefined(); // release policy: delete
  });

  it('status after the release says the host holds nothing', async () => {
    const run = await runClient(['status', '--pool', 'web'], hostEnv);

    expect(run.code).toBe(0);
    expect(run.stdout).toContain('holds no volume');
  });

  it('release on a host that holds nothing succeeds and says so', async () => {
    const run = await runClient(['release', '--pool', 'web', '--output', 'json'], hostEnv);

    expect(run.code).toBe(0);
    expect(parseJson(run)).toMatchObject({ status: 'NOTHING_HELD', instanceId: host });
  });
});

describe('acquire and release with --output json, the host policy only and instance-profile credentials', () => {
  /** The host's environment without keys: the SDK takes the instance profile's from instance metadata. */
  let profileEnv: Record<string, string>;

  beforeAll(() => {
    const { AWS_ACCESS_KEY_ID: _key, AWS_SECRET_ACCESS_KEY: _secret, ...rest } = hostEnv;
    profileEnv = rest;
    // The first acquire mounted under /srv/www (the pool's mount root); the sandbox's mount shim
    // cannot hide the directory it left there, a real host could.
    rmSync(join(world.sandbox.cloud.hostRoot(host), 'srv/www'), { recursive: true, force: true });
  });

  it('acquire prints one JSON document naming the volume the table holds for the host', async () => {
    const run = await runClient(['acquire', '--pool', 'web', '--output', 'json'], profileEnv);

    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const out = parseJson<{ volumeId: string; device: string; mountPath: string; status: string }>(run);
    const record = await world.sandbox.repo.getVolume(out.volumeId);
    expect(out).toMatchObject({ status: 'ACQUIRED', mountPath: '/srv/www', device: record.device });
    expect(record).toMatchObject({ state: VolumeState.InUse, holder: host });
    expect(mountPoints(host)).toContain('/srv/www');
  });

  it('release --quiet --output json prints the released volume and nothing else', async () => {
    const held = (await world.sandbox.repo.getAssignment(host))?.volumeId;

    const run = await runClient(['release', '--pool', 'web', '--output', 'json', '--quiet'], profileEnv);

    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    expect(parseJson(run)).toMatchObject({ status: 'RELEASED', volumeId: held, outcome: 'deleted' });
    expect(attachedTo(host)).toEqual([]);
  });
});

describe('errors', () => {
  it('exits 3 when the instance metadata service does not answer (not on EC2)', async () => {
    const port = await closedPort();

    const run = await runClient(['status', '--pool', 'web'], world.env(`http://127.0.0.1:${port}`));

    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/^volsd-client: not on EC2: the instance metadata service .* did not answer/);
  });

  it('exits 3 when instance metadata is switched off (AWS_EC2_METADATA_DISABLED)', async () => {
    const run = await runClient(['status', '--pool', 'web'], {
      ...hostEnv,
      AWS_EC2_METADATA_DISABLED: 'true',
    });

    expect(run.code).toBe(3);
    expect(run.stderr).toContain('not on EC2: instance metadata is switched off (AWS_EC2_METADATA_DISABLED)');
  });

  it('exits 4 naming the action when AWS denies invoking the host API', async () => {
    world.gateway.deny('lambda:InvokeFunctionUrl');
    try {
      const run = await runClient(['acquire', '--pool', 'web'], hostEnv);

      expect(run.code).toBe(4);
      expect(run.stderr).toContain('permission denied');
      expect(run.stderr).toContain('lambda:InvokeFunctionUrl');
      expect(attachedTo(host)).toEqual([]);
    } finally {
      world.gateway.allow();
    }
  });

  it('exits 4 naming the action when AWS denies reading the configuration, with the action in JSON', async () => {
    world.gateway.deny('ssm:GetParametersByPath');
    try {
      const run = await runClient(['status', '--pool', 'web', '--output', 'json'], hostEnv);

      expect(run.code).toBe(4);
      expect(parseJson(run)).toMatchObject({
        error: { code: 'PermissionDenied', exitCode: 4, action: 'ssm:GetParametersByPath' },
      });
    } finally {
      world.gateway.allow();
    }
  });

  it('exits 5 for a pool that publishes no configuration, to a role that may read it', async () => {
    const run = await runClient(
      ['acquire', '--pool', 'nosuchpool'],
      world.env(await world.gateway.imdsFor(host)),
    );

    expect(run.code).toBe(5);
    expect(run.stderr).toContain("unknown pool 'nosuchpool'");
  });

  it("exits 4 when a host's own role reads another pool's configuration (the host policy names one pool)", async () => {
    const run = await runClient(['acquire', '--pool', 'nosuchpool'], hostEnv);

    expect(run.code).toBe(4);
    expect(run.stderr).toContain('ssm:GetParametersByPath');
  });

  it('exits 8 with the workflow error when the mount fails on the host', async () => {
    world.sandbox.cloud.faults.once('ssmFailure', { instanceId: host, documentName: 'Volsd-Mount' });

    const run = await runClient(['acquire', '--pool', 'web'], hostEnv);

    expect(run.code).toBe(8);
    expect(run.stderr).toMatch(/acquire failed \(FAILED\): CommandFailed/);
    // The compensation forces the detach and does not wait for it: by the time the client exits the
    // volume is detached or still detaching, never attached. Then it goes, whatever the machine's load.
    expect(attachedTo(host).map((v) => v.attachment?.state)).not.toContain('attached');
    await world.sandbox.settle();
    expect(attachedTo(host)).toEqual([]);
    expect(await world.sandbox.repo.getAssignment(host)).toBeUndefined();
  });

  it('--no-wait prints the execution and exits 0; a second acquire meanwhile exits 7', async () => {
    const other = spareHosts[0] ?? '';
    const env = world.hostEnv(await world.gateway.imdsFor(other));

    const started = await runClient(['acquire', '--pool', 'web', '--no-wait'], env);
    const again = await runClient(['acquire', '--pool', 'web'], env);
    const arn = /acquire started: (\S+)/.exec(started.stdout)?.[1];
    const execution = world.sandbox.sfn.executions.get(arn ?? '');
    await execution?.done;

    expect(started.code).toBe(0);
    expect(execution?.status, `${execution?.error}: ${execution?.cause}`).toBe('SUCCEEDED');
    expect(again.code).toBe(7);
    expect(attachedTo(other)).toHaveLength(1);
  });

  it('in a terminal, release draws one spinner line with the current step and clears it at the end', async () => {
    const other = spareHosts[0] ?? '';
    const held = (await world.sandbox.repo.getAssignment(other))?.volumeId;

    const run = await runInTerminal(
      ['release', '--pool', 'web'],
      world.hostEnv(await world.gateway.imdsFor(other)),
    );

    expect(run.code).toBe(0);
    // Each redraw starts by returning to the line start and erasing it (CR, ESC [2K).
    const redraw = '\r\u001b\\[2K';
    expect(run.stdout).toMatch(new RegExp(`${redraw}[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] release: \\S+ {2}\\d+\\.\\ds`));
    expect(run.stdout).toMatch(new RegExp(`${redraw}released\\s+${held}`));
    expect(attachedTo(other)).toEqual([]);
  });

  it('exits 6 when the workflow does not end within --timeout, naming the execution that goes on', async () => {
    const other = spareHosts[1] ?? '';
    const env = world.hostEnv(await world.gateway.imdsFor(other));

    const run = await runClient(['acquire', '--pool', 'web', '--timeout', '0.05'], env);
    const arn = /the workflow goes on: (\S+)/.exec(run.stderr)?.[1];

    expect(run.code).toBe(6);
    expect(run.stderr).toContain('timed out after 0.05s waiting for acquire');
    expect(world.sandbox.sfn.executions.get(arn ?? '')?.name).toContain(other);
  });
});
