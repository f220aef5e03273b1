import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { poolTag } from '../../lambdas/shared/tags.js';
import { scriptRunning } from '../../sandbox/agent/model-runner.js';
import { NodeSha256 } from '../../sandbox/boot-wiring.js';
import { checkInvariants, volumeGeneration } from '../../sandbox/invariants.js';
import { Sandbox } from '../../sandbox/runtime.js';
import type { LocalExecution } from '../../sandbox/stepfunctions.js';
import { groupMembers, putContent } from '../helpers/sandbox.js';

let sandbox: Sandbox;
let desired = 0;

beforeAll(async () => {
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: 4, timeScale: 0.1, seed: 11, bootUnit: true });
  await putContent(sandbox, 'live/index.html', 'v1');
  await sandbox.repo.bumpGeneration(sandbox.options.pool); // as the fan-out does for a push
  await sandbox.replenishAll();
}, 600_000);

afterAll(async () => {
  await sandbox?.stop();
});

/** Scales out by `count` and returns the new instances (before anything settles). */
function launch(count: number): string[] {
  const before = new Set(groupMembers(sandbox).map((m) => m.instanceId));
  desired += count;
  sandbox.scaleTo(desired);
  return groupMembers(sandbox)
    .map((m) => m.instanceId)
    .filter((id) => !before.has(id));
}

async function settle(): Promise<void> {
  await sandbox.settle();
  await sandbox.boot.idle();
}

function acquireOf(instanceId: string): LocalExecution {
  const found = [...sandbox.sfn.executions.values()].find(
    (e) => e.stateMachineArn === sandbox.wiring.stateMachines.acquire && e.name.includes(instanceId),
  );
  if (!found) throw new Error(`no acquire for ${instanceId}`);
  return found;
}

const states = (e: LocalExecution) => e.path.map((p) => p.state);

/** An acquire on the events' path: one Task from the unmount to the unit's signal (detach, attach in the events function). */
const eventsPath = ['Resolve', 'Claimed?', 'UnmountOnWorker', 'BootUnit?', 'Direct?', 'Finish', 'Acquired'];

/** The pool volume EC2 shows attached to the instance (ground truth). */
function volumeOf(instanceId: string) {
  return sandbox.cloud
    .snapshotState()
    .volumes.find((v) => v.tags[poolTag] === sandbox.options.pool && v.attachment?.instanceId === instanceId);
}

function served(instanceId: string): string {
  return readFileSync(join(sandbox.cloud.hostRoot(instanceId), 'srv/www/index.html'), 'utf8');
}

function lifecycleStateOf(instanceId: string) {
  return groupMembers(sandbox).find((m) => m.instanceId === instanceId)?.lifecycleState;
}

/** The instance holds its pool volume (attached, deleted with it), is InService and serves `content`. */
function expectServing(instanceId: string, content: string): void {
  expect(volumeOf(instanceId)?.attachment).toMatchObject({ state: 'attached', deleteOnTermination: true });
  expect(lifecycleStateOf(instanceId)).toBe('InService');
  expect(served(instanceId)).toBe(content);
}

/** POSTs a boot signal to the host function URL, signed with `credentials` (SigV4, service lambda). */
async function signalAs(
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string },
  body: object,
): Promise<{ status: number; body: { status?: string; reason?: string } }> {
  const url = new URL(sandbox.boot.signalUrl);
  const text = JSON.stringify(body);
  const signer = new SignatureV4({ credentials, region: 'us-east-1', service: 'lambda', sha256: NodeSha256 });
  const signed = await signer.sign({
    method: 'POST',
    protocol: 'http:',
    hostname: url.hostname,
    port: Number(url.port),
    path: '/',
    query: {},
    headers: { host: url.host, 'content-type': 'application/json' },
    body: text,
  });
  const response = await fetch(url, { method: 'POST', headers: signed.headers, body: text });
  return { status: response.status, body: (await response.json()) as { status?: string } };
}

describe('boot unit', () => {
  it('mounts, signals and puts the instance InService with no SSM mount and at most 10 Lambda invocations', async () => {
    const [instanceId = ''] = launch(1);
    await settle();

    expectServing(instanceId, 'v1');
    const acquire = acquireOf(instanceId);
    expect(acquire.status).toBe('SUCCEEDED');
    // One Task from the unmount to the unit's signal: the detach and the attach ran in the events function.
    expect(states(acquire)).toEqual(eventsPath);
    expect(sandbox.boot.runs.get(instanceId)?.exitCode).toBe(0);
    expect(sandbox.accounting.forOperation(`acquire:${acquire.name}`).lambdaInvocation).toBeLessThanOrEqual(
      10,
    );
    expect((await checkInvariants(sandbox)).violations).toEqual([]);
  }, 600_000);

  it("has the twins of SSM documents take the unit's flock on its host while the unit runs", async () => {
    const [instanceId = ''] = launch(1);
    const hostRoot = sandbox.cloud.hostRoot(instanceId);
    const samples: { running: boolean; marked: boolean }[] = [];
    const sampler = setInterval(() => {
      const run = sandbox.boot.runs.get(instanceId);
      if (run && run.exitCode === undefined) samples.push({ running: true, marked: scriptRunning(hostRoot) });
    }, 5);
    try {
      await settle();
    } finally {
      clearInterval(sampler);
    }
    expect(sandbox.boot.runs.get(instanceId)?.exitCode).toBe(0);
    expect(samples.length).toBeGreaterThan(0);
    expect(samples.filter((s) => !s.marked)).toEqual([]);
    expect(scriptRunning(hostRoot)).toBe(false);
    expect(lifecycleStateOf(instanceId)).toBe('InService');
  }, 600_000);

  it("takes the poll path when EC2 throttles the Task's detach past the SDK retries, instead of re-running the Task", async () => {
    const [instanceId = ''] = launch(1);
    // Every SDK attempt (the sandbox's retry strategy: 8) of the first DetachVolume: the events function's,
    // on the unmount's Success event (nothing else detaches while one instance launches).
    for (let i = 0; i < 8; i++) sandbox.cloud.faults.once('throttle', { action: 'DetachVolume' });
    await settle();

    const acquire = acquireOf(instanceId);
    expect(sandbox.cloud.faults.armed()).toEqual([]);
    expect(acquire.status).toBe('SUCCEEDED');
    expect(
      (JSON.parse(acquire.output ?? '{}') as { stageError?: { Error?: string } }).stageError?.Error,
    ).toBe('RequestLimitExceeded');
    // One detach call retried by DetachFromWorker, not the unmount, its event and the detach again.
    expect(states(acquire)).toEqual([
      'Resolve',
      'Claimed?',
      'UnmountOnWorker',
      'UnmountAgain',
      'WaitUnmount',
      'DetachFromWorker',
      'BootUnit?',
      'AttachForUnit',
      'Direct?',
      'Finish',
      'Acquired',
    ]);
    expectServing(instanceId, 'v1');
    expect((await checkInvariants(sandbox)).violations).toEqual([]);
  }, 600_000);

  it("takes the poll path when the Task's invocation dies after it sent the unmount", async () => {
    const [instanceId = ''] = launch(1);
    // The unmount step ran (Volsd-Unmount sent, its wait stored), then the runtime died: the invocation is
    // synchronous, so the Task fails though its token was handed on; the unmount's event comes later
    // for a token whose Task no longer waits.
    sandbox.sfn.crashNext('UnmountOnWorker', 1);
    await settle();

    const acquire = acquireOf(instanceId);
    expect(acquire.status).toBe('SUCCEEDED');
    expect(
      (JSON.parse(acquire.output ?? '{}') as { stageError?: { Error?: string } }).stageError?.Error,
    ).toBe('Runtime.ExitError');
    expect(states(acquire).slice(0, 4)).toEqual(['Resolve', 'Claimed?', 'UnmountOnWorker', 'UnmountAgain']);
    expect(states(acquire).at(-1)).toBe('Acquired');
    expectServing(instanceId, 'v1');
    expect((await checkInvariants(sandbox)).violations).toEqual([]);
  }, 600_000);

  it('answers each event once when EventBridge delivers it twice, and when Lambda runs it again after a crash', async () => {
    const before = { ...sandbox.boot.eventFaults };
    // Both events of the launch come twice: the unmount's status and the instance's `running`.
    sandbox.boot.injectEventFault('duplicate', 2);
    const [first = ''] = launch(1);
    await settle();
    expect(sandbox.boot.eventFaults.duplicated - before.duplicated).toBe(2);
    // The next two invocations run, then their runtime dies: Lambda runs the same event again a minute later.
    sandbox.boot.injectEventFault('crashAfter', 2);
    const [second = ''] = launch(1);
    await settle();
    expect(sandbox.boot.eventFaults.crashed - before.crashed).toBe(2);

    for (const instanceId of [first, second]) {
      const acquire = acquireOf(instanceId);
      expect(acquire.status).toBe('SUCCEEDED');
      // The events' path: the detach and the attach ran in the events function, once.
      expect(states(acquire)).toEqual(eventsPath);
      expectServing(instanceId, 'v1');
    }
    expect((await checkInvariants(sandbox)).violations).toEqual([]);
  }, 600_000);

  it('brings the volume current when a push lands between attach and mount, before InService', async () => {
    let pushed: Promise<void> | undefined;
    const [instanceId = ''] = launch(1);
    // The attach follows the instance's `running` at once; its OS (and the unit) comes 6-9 s later.
    sandbox.cloud.ec2.onInstance((id, event) => {
      if (id !== instanceId || event !== 'running' || pushed) return;
      pushed = (async () => {
        await putContent(sandbox, 'live/index.html', 'v2');
        await sandbox.repo.bumpGeneration(sandbox.options.pool);
      })();
    });
    await settle();
    await pushed;

    expect(pushed).toBeDefined();
    expect(lifecycleStateOf(instanceId)).toBe('InService');
    const acquire = acquireOf(instanceId);
    const unit = sandbox.boot.runs.get(instanceId);
    expect(states(acquire), `${unit?.stdout}\n${unit?.stderr}`).not.toContain('Mount');
    expect(sandbox.boot.runs.get(instanceId)?.stderr).toMatch(
      /a push landed meanwhile: syncing to generation/,
    );
    expect(served(instanceId)).toBe('v2');
    const volume = volumeOf(instanceId);
    expect(volumeGeneration(sandbox, volume?.volumeId ?? '')).toBe(
      (await sandbox.repo.getPool(sandbox.options.pool)).generation,
    );
  }, 600_000);

  it('refuses a signal for another instance: only its own acquire can be completed', async () => {
    sandbox.boot.setUnitMode('missing');
    try {
      const [a = '', b = ''] = launch(2);
      // Both acquires wait for a signal, each with its volume attached.
      await sandbox.cloud.waitFor(
        () => [a, b].every((id) => volumeOf(id)?.attachment?.state === 'attached'),
        600,
        'both volumes attached',
      );
      const volumeOfA = volumeOf(a)?.volumeId ?? '';
      const mounted = { status: 'mounted', volumeId: volumeOfA, generation: 1_000_000 };

      const fromB = await signalAs(sandbox.boot.credentialsOf(b), mounted);
      const forged = await signalAs(
        {
          accessKeyId: 'ASIAFORGEDFORGEDFORG',
          secretAccessKey: 'x'.repeat(40),
          sessionToken: 'volsd-sandbox-session-token',
        },
        mounted,
      );
      await settle();

      expect(fromB.status).toBe(409);
      expect(fromB.body).toMatchObject({ status: 'refused' });
      expect(fromB.body.reason).toContain(volumeOfA);
      expect(forged.status).toBe(403);
      // Neither acquire was completed by the signal: both went on over SSM once theirs timed out.
      for (const id of [a, b]) {
        const acquire = acquireOf(id);
        expect(acquire.status).toBe('SUCCEEDED');
        expect(states(acquire)).toEqual(expect.arrayContaining(['UnmountAgain', 'Attach', 'Mount']));
        expect(lifecycleStateOf(id)).toBe('InService');
      }
    } finally {
      sandbox.boot.setUnitMode('real');
    }
  }, 600_000);

  it('falls back to SSM when the unit is missing, after the wait its heartbeat bounds', async () => {
    sandbox.boot.setUnitMode('missing');
    try {
      const [instanceId = ''] = launch(1);
      await settle();

      const acquire = acquireOf(instanceId);
      expect(acquire.status).toBe('SUCCEEDED');
      expect(states(acquire)).toEqual(expect.arrayContaining(['UnmountAgain', 'Attach', 'Mount', 'Finish']));
      expect(
        (JSON.parse(acquire.output ?? '{}') as { bootUnitError?: { Error?: string } }).bootUnitError?.Error,
      ).toBe('States.HeartbeatTimeout');
      // Bounded: the Task's HeartbeatSeconds (150) from the unmount, then the SSM path at once.
      const entered = (state: string) => acquire.path.find((p) => p.state === state)?.at ?? Number.NaN;
      const waited = (entered('UnmountAgain') - entered('UnmountOnWorker')) / 1000;
      expect(waited).toBeGreaterThanOrEqual(150);
      expect(waited).toBeLessThan(165);
      expect(lifecycleStateOf(instanceId)).toBe('InService');
      expect(served(instanceId)).toBe('v2');
    } finally {
      sandbox.boot.setUnitMode('real');
    }
  }, 600_000);

  it('falls back to SSM at once when the unit cannot mount and says so', async () => {
    sandbox.boot.setConfigOverride(() => ({ VOLSD_MOUNT_PATH: '/etc/www' }));
    try {
      const [instanceId = ''] = launch(1);
      await settle();

      const acquire = acquireOf(instanceId);
      expect(sandbox.boot.runs.get(instanceId)?.stdout).toMatch(/"code":"bad-parameters"/);
      expect(
        (JSON.parse(acquire.output ?? '{}') as { bootUnitError?: { Error?: string } }).bootUnitError?.Error,
      ).toBe('BootUnitFailed');
      expect(states(acquire)).toEqual(expect.arrayContaining(['UnmountAgain', 'Attach', 'Mount', 'Finish']));
      expect(lifecycleStateOf(instanceId)).toBe('InService');
      expect(served(instanceId)).toBe('v2');
    } finally {
      sandbox.boot.setConfigOverride(undefined);
    }
  }, 600_000);
});
