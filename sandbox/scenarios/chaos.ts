import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DocumentName } from '../../lambdas/shared/documents.js';
import { poolTag, Role, roleTag } from '../../lambdas/shared/tags.js';
import { type PushPipeline, wirePushPipeline } from '../push-wiring.js';
import { Sandbox, type SandboxOptions } from '../runtime.js';
import { localCredentials, localRegion } from '../servers.js';
import { Rng } from '../sim/rng.js';
import { pipelineFigures, ScenarioRecorder, type ScenarioResult } from './report.js';

export interface ChaosOptions {
  /** AWS-strict rules switched off, for comparison only. @default every rule on */
  rules?: SandboxOptions['rules'];
  operations: number;
  seed: number;
  timeScale: number;
  azs?: number;
  /** How documents run: the scripts' in-process twins (fast) or the real scripts. @default 'model' */
  agent?: 'scripts' | 'model';
  /**
   * The served group's instances run the boot unit (the events function's path, sandbox/boot-wiring.ts),
   * whose events are then also delivered twice (20%, as the lifecycle events) and run again after a crash
   * (2%, as the Lambda crashes) at random. @default false: the SSM path
   */
  bootUnit?: boolean;
  log?: (line: string) => void;
}

/** What the chaos run did, beside the scenario figures. */
export interface ChaosResult extends ScenarioResult {
  operations: Record<string, number>;
  /** The operations in the order issued (one letter each), to show a seed reproduces its run. */
  sequence: string;
  duplicateEvents: number;
  /** Manual clients terminated after their release succeeded. */
  clientsRetired: number;
  /**
   * Why the launches that did not go InService failed, by the error their acquire ended on (from the
   * executions' output): mostly InstanceGone (scaled in or terminated before it was ready) and the
   * injected SSM failures. Each was compensated and its lifecycle action completed (the invariants).
   */
  failedLaunchesBy: Record<string, number>;
  /** Whether the served group ran the boot unit ({@link ChaosOptions.bootUnit}). */
  bootUnit: boolean;
  /** With the boot unit: the signals the host function answered (the unit's path taken). */
  bootUnitSignals?: number;
  /**
   * Every Lambda invocation of the run's plain Tasks, by state (workflow:state): how many, their
   * modelled seconds (p50, p99, max), the longest in wall milliseconds, and how many ran past their
   * Task's TimeoutSeconds. Shows where modelled time goes, and whether the sandbox's own wall-speed
   * work leaks into it.
   */
  invocationsByState: Record<
    string,
    { n: number; p50: number; p99: number; max: number; maxWallMs: number; timedOut: number }
  >;
  /**
   * For each lifecycle action that timed out or never completed (empty when none): the action and the
   * executions that concerned its instance, with the states they went through, to find the cause.
   */
  lifecycleDiagnostics: LifecycleDiagnostic[];
  /**
   * For each instance that went InService behind the bucket with no push in flight (the invariant
   * `currentAtReady`; empty when none): its acquire's states, the volume and generation it ended with,
   * the Volsd-Sync runs sent to it, and the fan-outs sent around that moment, to find the cause.
   */
  staleDiagnostics: StaleDiagnostic[];
  /** What the end of the run did: the reconcile's findings and each AZ's last replenish. */
  endOfRun: EndOfRun;
}

/** The closing reconcile and replenish runs, from their executions' output. */
export interface EndOfRun {
  reconcile?: {
    status: string;
    outcome?: string;
    found?: number;
    truncated?: boolean;
    repaired?: Record<string, number>;
    failedRepairs?: number;
    unresolved?: string[];
  };
  replenish: {
    az: string;
    status: string;
    created?: number;
    retired?: number;
    /** Rounds run, and volumes set aside (an attach to the worker not done in time). */
    rounds?: number;
    setAside?: number;
    /** The error a failed run ended on, and its cause. */
    error?: string;
    cause?: string;
    states: string[];
  }[];
}

/** A lifecycle action that did not complete in time, and what the workflows did about its instance. */
export interface LifecycleDiagnostic {
  instanceId: string;
  transition: string;
  startedAt: number;
  deadlineAt: number;
  completedAt?: number;
  heartbeats: number;
  executions: {
    name: string;
    status: string;
    error?: string;
    /** Modelled seconds, as the action's times. */
    startedAt: number;
    stoppedAt?: number;
    /** The states entered, with the modelled second each was entered (the last 30). */
    states: string[];
    /**
     * Its Lambda invocations that took 20 modelled seconds or more:
     * `State@start +modelled s (wall ms, AWS calls)[ error]`.
     */
    slowInvocations: string[];
    /** Its failed state attempts (retried or caught): `State@second error`, the last 30. */
    failures: string[];
  }[];
  /** Wall seconds the sandbox's clock had stood still (process running late), at the end of the run. */
  clockLagSeconds: number;
}

/**
 * Random launches, terminations, pushes, target changes and manual acquires over several AZs, with
 * faults injected at random, a sync worker replaced, then one reconcile and the invariants, checked
 * against ground truth. The seed makes the sequence of operations and of faults reproducible.
 */
export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const log = o.log ?? (() => undefined);
  // The operations draw from their own stream, so the sequence of operations depends on the seed
  // alone; duplicate deliveries (drawn as events happen) have another.
  const rng = new Rng(o.seed);
  const duplicates = new Rng(o.seed ^ 0xd0b1e);
  const sandbox = await Sandbox.start({
    azs: o.azs ?? 2,
    idlePerAz: 2,
    seed: o.seed,
    timeScale: o.timeScale,
    lambdaCrashRate: 0.02,
    heartbeatTimeout: 900,
    agent: o.agent ?? 'model',
    ...(o.rules ? { rules: o.rules } : {}),
    ...(o.bootUnit ? { bootUnit: true } : {}),
  });
  if (o.bootUnit) sandbox.boot.setEventFaultRates({ duplicate: 0.2, crashAfter: 0.02 });
  const s3 = new S3Client({
    endpoint: sandbox.s3.endpoint,
    region: localRegion,
    credentials: localCredentials,
    forcePathStyle: true,
  });
  const ops: Record<string, number> = {};
  const sequence: string[] = [];
  let duplicateEvents = 0;
  let clientsRetired = 0;
  let push: PushPipeline | undefined;
  try {
    const recorder = new ScenarioRecorder(sandbox);
    push = await wirePushPipeline(sandbox, { batchingWindowSeconds: 5 });
    await sandbox.replenishAll();
    // A snapshot, as the schedule takes one: an AZ without idle volumes then gets one created for the
    // launching instance (direct creation) rather than waiting for replenish.
    if (sandbox.wiring.stateMachines.snapshot) {
      sandbox.sfn.start(
        sandbox.wiring.stateMachines.snapshot,
        `chaos-snapshot-${o.seed}`,
        JSON.stringify({ pool: sandbox.options.pool, reason: 'chaos' }),
      );
      await sandbox.settle();
    }
    // 20% of lifecycle events are delivered twice, as EventBridge and SQS may.
    sandbox.cloud.events.on('event', (event: { source?: string; 'detail-type'?: string }) => {
      if (event.source !== 'aws.autoscaling' || !/Lifecycle Action$/.test(event['detail-type'] ?? '')) return;
      if (duplicates.chance(0.2)) {
        duplicateEvents++;
        sandbox.intake.send(JSON.stringify(event));
      }
    });
    sandbox.cloud.faults.set({
      throttleRate: 0.1,
      stuckAttachRate: 0.02,
      incorrectStateRate: 0.02,
      terminateOnAttachRate: 0.02,
      ssmFailureRate: 0.02,
    });
    let desired = 0;
    const files = new Set<string>();
    const bucketOps: BucketOp[] = [];
    // What s3rver itself announced (ObjectCreated / ObjectRemoved), beside what the run asked for.
    sandbox.s3.server.on(
      'event',
      (event: { Records?: { eventName?: string; s3?: { object?: { key?: string } } }[] }) => {
        for (const r of event.Records ?? []) {
          const key = decodeURIComponent((r.s3?.object?.key ?? '').replace(/\+/g, ' '));
          if (key.startsWith('live/page-'))
            bucketOps.push({ at: sandbox.cloud.clock.now(), key, op: `s3rver ${r.eventName ?? '?'}` });
        }
      },
    );
    const manual: string[] = [];
    const workerReplacedAt = Math.floor(o.operations / 2);
    const progressEvery = Math.max(100, Math.ceil(o.operations / 20));
    const wallStart = Date.now();
    for (let i = 0; i < o.operations; i++) {
      const roll = rng.next();
      let op: string;
      if (i === workerReplacedAt) {
        op = 'replaceWorker';
        const az = sandbox.options.azs[0] ?? 'us-east-1a';
        const worker = sandbox.cloud
          .snapshotState()
          .instances.find((x) => x.az === az && x.state === 'running' && x.tags[roleTag] === Role.Worker);
        if (worker) sandbox.cloud.terminateInstance(worker.instanceId);
      } else if (roll < 0.3) {
        op = 'launch';
        desired = Math.min(12, desired + rng.int(1, 3));
        sandbox.scaleTo(desired);
      } else if (roll < 0.45) {
        op = 'terminate';
        desired = Math.max(0, desired - rng.int(1, 2));
        sandbox.scaleTo(desired);
      } else if (roll < 0.7) {
        op = 'push';
        const key = `live/page-${rng.int(0, 9)}.html`;
        if (files.has(key) && rng.chance(0.3)) {
          await s3.send(new DeleteObjectCommand({ Bucket: sandbox.wiring.bucket, Key: key }));
          files.delete(key);
          bucketOps.push({ at: sandbox.cloud.clock.now(), key, op: 'delete' });
        } else {
          await s3.send(new PutObjectCommand({ Bucket: sandbox.wiring.bucket, Key: key, Body: `op ${i}` }));
          files.add(key);
          bucketOps.push({ at: sandbox.cloud.clock.now(), key, op: `put op ${i}` });
        }
      } else if (roll < 0.8) {
        op = 'target';
        await sandbox.repo.setTarget(sandbox.options.pool, rng.int(1, 4));
      } else if (roll < 0.9) {
        op = 'manualAcquire';
        const az = sandbox.options.azs[rng.int(0, sandbox.options.azs.length - 1)] ?? 'us-east-1a';
        const instanceId = sandbox.cloud.launchInstance({
          az,
          tags: { [poolTag]: sandbox.options.pool, [roleTag]: Role.Client },
        });
        manual.push(instanceId);
        const input = {
          pool: sandbox.options.pool,
          instanceId,
          action: 'manual-acquire',
          requestId: `chaos-${i}`,
        };
        sandbox.sfn.start(
          sandbox.wiring.stateMachines.acquire,
          `manual-acquire-${instanceId}-chaos-${i}`,
          JSON.stringify(input),
        );
      } else {
        op = 'manualRelease';
        const instanceId = manual.shift();
        if (instanceId) {
          const input = {
            pool: sandbox.options.pool,
            instanceId,
            action: 'manual-release',
            requestId: `chaos-${i}`,
          };
          const { executionArn } = sandbox.sfn.start(
            sandbox.wiring.stateMachines.release,
            `manual-release-${instanceId}-chaos-${i}`,
            JSON.stringify(input),
          );
          // The host is then retired, as a host that gave its volume back is. Left running it would stay
          // tagged with the pool and receive every later push: 10% of the operations add one, so the
          // pushes of a 10,000-operation run would each reach a thousand idle hosts. A host whose release
          // failed stays, holding its volume, for the reconcile.
          const execution = sandbox.sfn.executions.get(executionArn);
          void execution?.done.then(() => {
            if (execution.status !== 'SUCCEEDED' || sandbox.cloud.clock.isClosed) return;
            sandbox.cloud.terminateInstance(instanceId);
            clientsRetired++;
          });
        }
      }
      ops[op] = (ops[op] ?? 0) + 1;
      sequence.push(op === 'manualRelease' ? 'R' : op === 'manualAcquire' ? 'A' : op.charAt(0));
      await sandbox.cloud.clock.sleep(rng.int(2, 20));
      if ((i + 1) % progressEvery === 0)
        log(
          `chaos seed ${o.seed}: ${i + 1}/${o.operations} operations, ${Math.round((Date.now() - wallStart) / 1000)} s wall, heap ${Math.round(process.memoryUsage().heapUsed / 1e6)} MB`,
        );
    }
    log(`chaos: ${o.operations} operations issued; settling with faults off`);
    sandbox.cloud.faults.set({
      throttleRate: 0,
      stuckAttachRate: 0,
      incorrectStateRate: 0,
      terminateOnAttachRate: 0,
      ssmFailureRate: 0,
    });
    await settleAll(sandbox, push);
    await sandbox.waitForWorkers();
    const endOfRun: EndOfRun = { replenish: [] };
    if (sandbox.wiring.stateMachines.reconcile) {
      const { executionArn } = sandbox.sfn.start(
        sandbox.wiring.stateMachines.reconcile,
        `chaos-reconcile-${o.seed}`,
        // Everything has settled (faults off, nothing running): no grace is needed before repairing.
        // One run repairs up to the schema's 100 (25 by default; a schedule's next run takes the rest).
        JSON.stringify({
          pool: sandbox.options.pool,
          reason: 'chaos',
          graceSeconds: 0,
          claimMaxAgeSeconds: 0,
          maxRepairs: 100,
        }),
      );
      await settleAll(sandbox, push);
      const execution = sandbox.sfn.executions.get(executionArn);
      const out = JSON.parse(execution?.output ?? '{}') as NonNullable<EndOfRun['reconcile']>;
      endOfRun.reconcile = {
        status: execution?.status ?? 'unknown',
        outcome: out.outcome,
        found: out.found,
        truncated: out.truncated,
        repaired: out.repaired,
        failedRepairs: out.failedRepairs,
        unresolved: out.unresolved,
      };
    }
    for (const arn of await sandbox.replenishAll()) {
      const e = sandbox.sfn.executions.get(arn);
      if (!e) continue;
      const out = JSON.parse(e.output ?? '{}') as {
        created?: number;
        retired?: number;
        round?: number;
        setAside?: number;
      };
      const az = (JSON.parse(e.input) as { az?: string }).az ?? '?';
      // The states entered, once each, in order: shows where a run ended (AnotherRunHoldsTheAz, Failed).
      const states = [...new Set(e.path.map((p) => p.state))];
      endOfRun.replenish.push({
        az,
        status: e.status,
        created: out.created,
        retired: out.retired,
        rounds: out.round,
        setAside: out.setAside,
        error: e.error,
        cause: e.cause,
        states,
      });
    }
    // The last push: afterwards every InService instance must be current.
    await s3.send(
      new PutObjectCommand({ Bucket: sandbox.wiring.bucket, Key: 'live/last.html', Body: 'last' }),
    );
    await settleAll(sandbox, push);
    const result = await recorder.result('chaos', await pipelineFigures(push));
    return {
      ...result,
      ...(o.bootUnit
        ? {
            faultsInjected: {
              ...result.faultsInjected,
              eventDuplicate: sandbox.boot.eventFaults.duplicated,
              eventCrash: sandbox.boot.eventFaults.crashed,
            },
          }
        : {}),
      bootUnit: o.bootUnit === true,
      ...(o.bootUnit ? { bootUnitSignals: sandbox.boot.signals.length } : {}),
      operations: ops,
      sequence: sequence.join(''),
      duplicateEvents,
      clientsRetired,
      failedLaunchesBy: failedLaunches(sandbox),
      invocationsByState: invocationsByState(sandbox),
      lifecycleDiagnostics: lifecycleDiagnostics(sandbox),
      staleDiagnostics: staleDiagnostics(sandbox, bucketOps),
      endOfRun,
    };
  } finally {
    push?.close();
    s3.destroy();
    await sandbox.stop();
  }
}

function failedLaunches(sandbox: Sandbox): Record<string, number> {
  const by: Record<string, number> = {};
  for (const e of sandbox.sfn.executions.values()) {
    if (e.stateMachineArn !== sandbox.wiring.stateMachines.acquire || !e.name.startsWith('launch-')) continue;
    const outcome = (JSON.parse(e.output ?? '{}') as { outcome?: string }).outcome ?? '';
    if (e.status === 'SUCCEEDED' && !outcome.startsWith('failed')) continue;
    const reason = outcome.replace(/^failed: /, '') || e.error || e.status;
    by[reason] = (by[reason] ?? 0) + 1;
  }
  return by;
}

function invocationsByState(sandbox: Sandbox): ChaosResult['invocationsByState'] {
  const by = new Map<string, { seconds: number[]; maxWallMs: number; timedOut: number }>();
  for (const e of sandbox.sfn.executions.values()) {
    const workflow = e.stateMachineArn.split(':').pop() ?? '?';
    for (const i of e.invocations) {
      const key = `${workflow}:${i.state}`;
      let entry = by.get(key);
      if (!entry) {
        entry = { seconds: [], maxWallMs: 0, timedOut: 0 };
        by.set(key, entry);
      }
      entry.seconds.push(i.seconds);
      entry.maxWallMs = Math.max(entry.maxWallMs, i.wallMs);
      if (i.error === 'States.Timeout') entry.timedOut++;
    }
  }
  const round = (x: number) => Math.round(x * 10) / 10;
  const out: ChaosResult['invocationsByState'] = {};
  for (const [key, { seconds, maxWallMs, timedOut }] of [...by].sort(([a], [b]) => a.localeCompare(b))) {
    seconds.sort((a, b) => a - b);
    const at = (q: number) => seconds[Math.min(seconds.length - 1, Math.floor(q * seconds.length))] ?? 0;
    out[key] = {
      n: seconds.length,
      p50: round(at(0.5)),
      p99: round(at(0.99)),
      max: round(seconds.at(-1) ?? 0),
      maxWallMs,
      timedOut,
    };
  }
  return out;
}

function lifecycleDiagnostics(sandbox: Sandbox): LifecycleDiagnostic[] {
  const late = sandbox.cloud.lifecycleActions().filter((a) => a.timedOut || a.completedAt === undefined);
  if (late.length === 0) return [];
  const executions = [...sandbox.sfn.executions.values()];
  const epochMs = sandbox.cloud.clock.date(0).getTime(); // path times in the clock's modelled seconds
  return late.map((a) => ({
    instanceId: a.instanceId,
    transition: a.transition,
    startedAt: a.startedAt,
    deadlineAt: a.deadlineAt,
    ...(a.completedAt !== undefined ? { completedAt: a.completedAt } : {}),
    heartbeats: a.heartbeats.length,
    executions: executions
      .filter((e) => e.input.includes(a.instanceId))
      .map((e) => ({
        name: e.name,
        status: e.status,
        ...(e.error ? { error: e.error } : {}),
        startedAt: Math.round((e.startDate.getTime() - epochMs) / 1000),
        ...(e.stopDate ? { stoppedAt: Math.round((e.stopDate.getTime() - epochMs) / 1000) } : {}),
        states: e.path.slice(-30).map((p) => `${p.state}@${Math.round((p.at - epochMs) / 1000)}`),
        slowInvocations: e.invocations
          .filter((i) => i.seconds >= 20)
          .map(
            (i) =>
              `${i.state}@${Math.round((i.at - epochMs) / 1000)} +${Math.round(i.seconds)} s (${i.wallMs} ms, ${i.awsCalls} calls)${i.error ? ` ${i.error}` : ''}`,
          ),
        failures: e.failures
          .slice(-30)
          .map((f) => `${f.state}@${Math.round((f.at - epochMs) / 1000)} ${f.error}`),
      })),
    clockLagSeconds: Math.round(sandbox.cloud.clock.lagSeconds),
  }));
}

/** One instance that went InService behind the bucket, and what led there. */
export interface StaleDiagnostic {
  instanceId: string;
  /** Modelled second it went InService, and how its tree differed from the bucket then. */
  at: number;
  differences: string[];
  executions: {
    name: string;
    status: string;
    volumeId?: string;
    generation?: number;
    states: string[];
  }[];
  /** Volsd-Sync runs sent to the instance itself (by id): generation asked, when, how they ended. */
  syncs: { requestedAt: number; generation?: string; status: string }[];
  /** Fan-outs (Volsd-Sync by tag) sent in the 10 modelled minutes before it went InService. */
  fanOuts: { requestedAt: number; generation?: string }[];
  /** The pushes of the keys that differed, up to that moment (modelled second, key, put or delete). */
  keyHistory: BucketOp[];
  /** The Volsd-Sync stderr lines about its volume in the 15 modelled minutes before (command time, generation). */
  volumeLog?: string[];
  /** What the store and the host held for each differing path at that moment. */
  evidence?: Record<string, { store: string[]; served: string }>;
}

/** One push of the run: an object put or deleted in the push bucket. */
export interface BucketOp {
  at: number;
  key: string;
  op: string;
}

function staleDiagnostics(sandbox: Sandbox, bucketOps: BucketOp[]): StaleDiagnostic[] {
  const stale = sandbox.readiness.staleAtReady(sandbox.wiring.groupName);
  if (stale.length === 0) return [];
  const executions = [...sandbox.sfn.executions.values()];
  const epochMs = sandbox.cloud.clock.date(0).getTime();
  const commands = sandbox.cloud.ssm.view().filter((c) => c.documentName === DocumentName.Sync);
  const round = (s: number) => Math.round(s * 10) / 10;
  const volumeLog = (volumeId: string | undefined, at: number) =>
    volumeId === undefined
      ? []
      : commands
          .filter((c) => c.requestedAt <= at && c.requestedAt >= at - 900)
          .flatMap((c) =>
            sandbox.cloud.ssm.stderrOf(c.commandId).flatMap((o) =>
              o.stderr
                .split('\n')
                .filter((l) => l.includes(volumeId))
                .map(
                  (l) =>
                    `[cmd ${round(c.requestedAt)} gen ${c.parameters.Generation?.[0] ?? '-'} on ${o.instanceId}] ${l.slice(0, 300)}`,
                ),
            ),
          );
  const launchVolume = (instanceId: string) => {
    const e = executions.find(
      (x) => x.name.startsWith(`launch-${instanceId}`) && x.status === 'SUCCEEDED' && x.output,
    );
    return e ? (JSON.parse(e.output ?? '{}') as { volumeId?: string }).volumeId : undefined;
  };
  return stale.map((r) => ({
    instanceId: r.instanceId,
    volumeLog: volumeLog(launchVolume(r.instanceId), r.at),
    at: round(r.at),
    differences: r.differences.slice(0, 5),
    ...(r.evidence ? { evidence: r.evidence } : {}),
    executions: executions
      .filter((e) => e.input.includes(r.instanceId))
      .map((e) => {
        const out = (e.output ? JSON.parse(e.output) : (e.lastStateInput ?? {})) as {
          volumeId?: string;
          generation?: number;
        };
        return {
          name: e.name,
          status: e.status,
          ...(out.volumeId ? { volumeId: out.volumeId } : {}),
          ...(typeof out.generation === 'number' ? { generation: out.generation } : {}),
          states: e.path.slice(-40).map((p) => `${p.state}@${round((p.at - epochMs) / 1000)}`),
        };
      }),
    syncs: commands
      .filter((c) => !c.byTag && c.invocations.some((i) => i.instanceId === r.instanceId))
      .map((c) => ({
        requestedAt: round(c.requestedAt),
        ...(c.parameters.Generation?.[0] ? { generation: c.parameters.Generation[0] } : {}),
        status: c.statusDetails,
      })),
    fanOuts: commands
      .filter((c) => c.byTag && c.requestedAt <= r.at && c.requestedAt >= r.at - 600)
      .map((c) => ({
        requestedAt: round(c.requestedAt),
        ...(c.parameters.Generation?.[0] ? { generation: c.parameters.Generation[0] } : {}),
      })),
    keyHistory: bucketOps
      .filter(
        (b) => b.at <= r.at && r.differences.some((d) => d.endsWith(` ${b.key.replace(/^live\//, '')}`)),
      )
      .map((b) => ({ ...b, at: round(b.at) })),
  }));
}

async function settleAll(sandbox: Sandbox, push: { drained(timeoutSeconds?: number): Promise<void> }) {
  for (let i = 0; i < 3; i++) {
    await sandbox.cloud.clock.sleep(6); // let the last object events reach the push queue
    await push.drained(3600);
    await sandbox.settle();
  }
}
