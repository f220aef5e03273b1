/**
 * `npm run bench`: a burst of launches served from the pool, then their releases, in the sandbox,
 * measured in modelled AWS seconds, with the AWS calls, state transitions, Lambda invocations and
 * table writes each operation costs; once per acquire path: `boot-unit` (the instances run Volsd's
 * boot unit, scripts/volsd-boot.sh) and `ssm` (they do not: Volsd-Mount over SSM). Prints a report;
 * `--json` prints one JSON object instead. Options: --launches N (default 50), --azs N (2; the pool
 * holds launches/azs idle volumes per AZ), --paths boot-unit,ssm, --time-scale X (1: the scripts and
 * the unit do real work at wall speed, so at 1 their time is their own; below 1 it is inflated).
 */

import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Sandbox } from '../sandbox/runtime.js';
import { percentiles, round } from '../sandbox/scenarios/report.js';
import { type Counts, countKinds } from '../sandbox/sim/accounting.js';
import type { LocalExecution } from '../sandbox/stepfunctions.js';
import { currentCommit } from './commit.js';
import { costPerThousand } from './cost.js';
import { phases, TimelineRecorder } from './timeline.js';

// Node 20 runs the tests and the sandbox here; the Lambdas run on Node 22. The SDK's notice about it is noise.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const { values } = parseArgs({
  options: {
    launches: { type: 'string', default: '50' },
    azs: { type: 'string', default: '2' },
    paths: { type: 'string', default: 'boot-unit,ssm' },
    'time-scale': { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  },
});
const launches = Number(values.launches);
const timeScale = Number(values['time-scale']);
const azCount = Number(values.azs);
const paths = String(values.paths).split(',');
type AcquirePath = 'boot-unit' | 'ssm';
if (
  !Number.isInteger(launches) ||
  launches < 1 ||
  !Number.isInteger(azCount) ||
  azCount < 1 ||
  azCount > 6 ||
  launches % azCount !== 0 ||
  !paths.every((p) => p === 'boot-unit' || p === 'ssm') ||
  !(timeScale > 0 && timeScale <= 1)
) {
  console.error(
    'usage: npm run bench -- [--launches N] [--azs N (dividing N)] [--paths boot-unit,ssm] [--time-scale X] [--json]',
  );
  process.exit(2);
}

/**
 * Assumed per-unit latencies on AWS for the computed orchestration cost: a warm Lambda invoke from Step
 * Functions, one Standard state transition, one DynamoDB request in-Region, one EC2/SSM/Auto Scaling/SFN
 * API call (the simulator's own api latency is drawn from 0.05-0.15 s).
 */
const unitCost = { lambdaInvoke: 0.03, stateTransition: 0.02, dynamoCall: 0.008, awsCall: 0.1 };

/** States that wait for AWS to finish something asynchronous (attach, detach, an SSM command, a boot). */
const waitingStates = new Set([
  // Callback Tasks: each waits for an event (the unmount's status; the boot unit's signal).
  'UnmountOnWorker',
  'AttachForUnit',
  'WaitUnmount',
  'WaitDetached',
  'WaitAttached',
  'WaitMount',
  'WaitSync',
  'WaitCompensation',
]);

/** Modelled seconds spent in each state of an execution (a state visited twice counts twice). */
function stepTimes(e: LocalExecution): Record<string, number> {
  const out: Record<string, number> = {};
  const end = e.stopDate?.getTime() ?? e.startDate.getTime();
  e.path.forEach((p, i) => {
    const next = e.path[i + 1]?.at ?? end;
    out[p.state] = (out[p.state] ?? 0) + (next - p.at) / 1000;
  });
  return out;
}

/** The counts of one operation priced at the assumed AWS latencies (`unitCost`), in seconds. */
function computedSeconds(sandbox: Sandbox, operation: string): number {
  return priced(sandbox.accounting.forOperation(operation));
}

/** Counts priced at the assumed AWS latencies (`unitCost`), in seconds. */
function priced(c: Counts): number {
  let dynamo = 0;
  let other = 0;
  for (const [detail, n] of Object.entries(c.byDetail.awsCall)) {
    if (detail.startsWith('dynamodb:')) dynamo += n;
    else if (!detail.startsWith('fault:')) other += n;
  }
  return (
    c.lambdaInvocation * unitCost.lambdaInvoke +
    c.stateTransition * unitCost.stateTransition +
    dynamo * unitCost.dynamoCall +
    other * unitCost.awsCall
  );
}

function summarize(
  sandbox: Sandbox,
  machine: 'acquire' | 'release',
  executions: LocalExecution[],
  recorder?: TimelineRecorder,
) {
  const done = executions.filter((e) => e.status === 'SUCCEEDED');
  const totals = done.map((e) => ((e.stopDate?.getTime() ?? 0) - e.startDate.getTime()) / 1000);
  const steps: Record<string, number[]> = {};
  const overhead: number[] = [];
  const bootWait: number[] = [];
  for (const e of done) {
    const t = stepTimes(e);
    for (const [state, seconds] of Object.entries(t)) {
      steps[state] = [...(steps[state] ?? []), seconds];
    }
    const total = ((e.stopDate?.getTime() ?? 0) - e.startDate.getTime()) / 1000;
    const waiting = Object.entries(t)
      .filter(([s]) => waitingStates.has(s))
      .reduce((a, [, v]) => a + v, 0);
    // Attach retries on InstanceNotReady while the instance is pending, and Mount until its agent
    // answers: that is the boot, not Volsd (each also holds one API call of ~0.1 s).
    // DetachFromWorker waits (callback) for the instance to run: the boot too.
    const boot = machine === 'acquire' ? (t.Attach ?? 0) + (t.Mount ?? 0) + (t.DetachFromWorker ?? 0) : 0;
    bootWait.push(boot);
    overhead.push(Math.max(0, total - waiting - boot));
  }
  const counts: Record<string, number> = Object.fromEntries(countKinds.map((k) => [k, 0]));
  const calls: Record<string, number> = {};
  const transitionsByState: Record<string, number> = {};
  const invocationsByFunction: Record<string, number> = {};
  for (const e of done) {
    const c = sandbox.accounting.forOperation(`${machine}:${e.name}`);
    for (const k of countKinds) counts[k] = (counts[k] ?? 0) + c[k];
    for (const [detail, n] of Object.entries(c.byDetail.awsCall)) calls[detail] = (calls[detail] ?? 0) + n;
    for (const [detail, n] of Object.entries(c.byDetail.stateTransition))
      transitionsByState[detail] = (transitionsByState[detail] ?? 0) + n;
    for (const [detail, n] of Object.entries(c.byDetail.lambdaInvocation))
      invocationsByFunction[detail] = (invocationsByFunction[detail] ?? 0) + n;
  }
  const per = (n: number) => round(n / Math.max(1, done.length), 1);
  // What Volsd adds to the instance's own boot: from its OS being ready (the moment its web server
  // could start) to the lifecycle action completed (InService), per launch.
  const completedAt = new Map(
    sandbox.cloud
      .lifecycleActions()
      .filter((a) => a.completedAt !== undefined && a.result === 'CONTINUE')
      .map((a) => [a.instanceId, a.completedAt ?? 0]),
  );
  const added = done.flatMap((e) => {
    const instanceId = (JSON.parse(e.input) as { instanceId?: string }).instanceId ?? '';
    const ready = recorder?.osReadyAt(instanceId);
    const inService = completedAt.get(instanceId);
    return ready === undefined || inService === undefined ? [] : [inService - ready];
  });
  const computedPerExecution = done.map((e) => computedSeconds(sandbox, `${machine}:${e.name}`));
  // Orchestration cost computed from the counts, at the latencies the model assumes per unit (the
  // measured figure above also carries the local CPU's speed: dynalite and the scripts run at wall speed).
  const dynamoCalls = Object.entries(calls)
    .filter(([k]) => k.startsWith('dynamodb:'))
    .reduce((a, [, n]) => a + n, 0);
  const otherCalls = Object.entries(calls)
    .filter(([k]) => !k.startsWith('dynamodb:') && !k.startsWith('fault:'))
    .reduce((a, [, n]) => a + n, 0);
  const computed =
    ((counts.lambdaInvocation ?? 0) * unitCost.lambdaInvoke +
      (counts.stateTransition ?? 0) * unitCost.stateTransition +
      dynamoCalls * unitCost.dynamoCall +
      otherCalls * unitCost.awsCall) /
    Math.max(1, done.length);
  const reads =
    ['dynamodb:GetItem', 'dynamodb:Query'].reduce((a, k) => a + (calls[k] ?? 0), 0) /
    Math.max(1, done.length);
  const perOperation = {
    awsCalls: per(counts.awsCall ?? 0),
    stateTransitions: per(counts.stateTransition ?? 0),
    lambdaInvocations: per(counts.lambdaInvocation ?? 0),
    tableWrites: per(counts.tableWrite ?? 0),
  };
  return {
    computedOrchestrationSeconds: round(computed, 2),
    /** The same pricing per execution. */
    computedOrchestrationPerExecution: percentiles(computedPerExecution),
    ...(machine === 'acquire' ? { addedAfterBootSeconds: percentiles(added) } : {}),
    ...(recorder
      ? {
          /**
           * The same pricing of only what the acquire did between the instance's OS being up and its
           * lifecycle action completed (bench/timeline.ts): the orchestration on the critical path after
           * boot, per launch. Beside the figure above, not instead of it (docs/decisions.md).
           */
          computedAfterBootSeconds: percentiles(
            done.flatMap((e) => {
              const instanceId = (JSON.parse(e.input) as { instanceId?: string }).instanceId ?? '';
              const w = recorder.afterBootCounts(instanceId);
              return w ? [round(priced(w), 3)] : [];
            }),
          ),
        }
      : {}),
    dollarsPer1000: costPerThousand(perOperation, reads),
    executions: executions.length,
    succeeded: done.length,
    seconds: percentiles(totals),
    orchestrationOverheadSeconds: percentiles(overhead),
    waitingForBootSeconds: percentiles(bootWait),
    stepsP50: Object.fromEntries(Object.entries(steps).map(([s, v]) => [s, percentiles(v).p50])),
    perOperation,
    awsCallsByAction: Object.fromEntries(
      Object.entries(calls)
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => [k, per(n)]),
    ),
    /** Per operation: state transitions by state (entered or retried), Lambda invocations by function. */
    transitionsByState: Object.fromEntries(Object.entries(transitionsByState).map(([k, n]) => [k, per(n)])),
    invocationsByFunction: Object.fromEntries(
      Object.entries(invocationsByFunction).map(([k, n]) => [k, per(n)]),
    ),
  };
}

async function runPath(path: AcquirePath) {
  const sandbox = await Sandbox.start({
    azs: azCount,
    idlePerAz: launches / azCount,
    timeScale,
    seed: 42,
    throttling: true,
    bootUnit: path === 'boot-unit',
  });
  try {
    await sandbox.replenishAll();
    const recorder = new TimelineRecorder(sandbox);
    const before = new Set(sandbox.sfn.executions.keys());
    sandbox.scaleTo(launches);
    await sandbox.settle();
    recorder.stop();
    const all = [...sandbox.sfn.executions.values()].filter((e) => !before.has(e.executionArn));
    const acquires = all.filter((e) => e.stateMachineArn === sandbox.wiring.stateMachines.acquire);
    const acquire = summarize(sandbox, 'acquire', acquires, recorder);
    // Per launch: what the slowest waited on (bench/timeline.ts).
    const timelines = acquires.filter((e) => e.status === 'SUCCEEDED').map((e) => recorder.timeline(e));
    const slowest = [...timelines]
      .sort((a, b) => (b.addedAfterBoot ?? 0) - (a.addedAfterBoot ?? 0))
      .slice(0, 5);
    const served = all.filter(
      (e) =>
        e.stateMachineArn === sandbox.wiring.stateMachines.acquire &&
        e.status === 'SUCCEEDED' &&
        !(JSON.parse(e.output ?? '{}') as { direct?: boolean }).direct,
    ).length;
    const unitRuns = [...(sandbox.boot?.runs.values() ?? [])];
    sandbox.scaleTo(0);
    await sandbox.settle();
    const after = [...sandbox.sfn.executions.values()].filter((e) => !before.has(e.executionArn));
    const release = summarize(
      sandbox,
      'release',
      after.filter((e) => e.stateMachineArn === sandbox.wiring.stateMachines.release),
    );
    const replenishes = after.filter((e) => e.stateMachineArn === sandbox.wiring.stateMachines.replenish);
    return {
      path,
      servedFromPool: served,
      bootUnits: {
        ran: unitRuns.length,
        signalled: unitRuns.filter((r) => r.exitCode === 0).length,
        secondsP50: percentiles(unitRuns.map((r) => (r.endedAt ?? r.startedAt) - r.startedAt)).p50,
      },
      acquire,
      /** After the OS is up, what each launch waited on (percentiles), and the 5 slowest launches. */
      phases: phases(timelines),
      slowest,
      release,
      replenish: summarize(sandbox, 'replenish' as 'release', replenishes),
      strictRules: sandbox.cloud.strictRules(),
    };
  } finally {
    await sandbox.stop();
  }
}

// The machine's load while the bench runs (1-minute load average, sampled every 10 s): the scripts and the
// unit run at wall speed, so a loaded machine inflates their share of the modelled seconds.
const loads: number[] = [loadavg()[0] ?? 0];
const loadProbe = setInterval(() => loads.push(loadavg()[0] ?? 0), 10_000);
loadProbe.unref();
const results: Partial<Record<AcquirePath, Awaited<ReturnType<typeof runPath>>>> = {};
for (const path of paths as AcquirePath[]) results[path] = await runPath(path);
clearInterval(loadProbe);
loads.push(loadavg()[0] ?? 0);
const first = results[paths[0] as AcquirePath];
if (!first) throw new Error('no path ran');
const report = {
  bench: 'acquire-release',
  launches,
  azs: azCount,
  timeScale,
  commit: currentCommit(),
  strictRules: first.strictRules,
  machineLoad: {
    cores: cpus().length,
    loadAverage1m: {
      min: round(Math.min(...loads), 1),
      mean: round(loads.reduce((a, b) => a + b, 0) / loads.length, 1),
      max: round(Math.max(...loads), 1),
    },
  },
  note: 'modelled AWS seconds; instance pending 20-40 s, OS boot 6-9 s and SSM agent 2-3 s after it are part of time to ready',
  /** The first path's figures (boot-unit by default), as before this bench ran two paths. */
  acquire: first.acquire,
  release: first.release,
  replenish: first.replenish,
  paths: results,
};
if (values.json) console.log(JSON.stringify(report));
else {
  const line = (name: string, r: typeof first.acquire) => {
    console.log(`\n${name}: ${r.succeeded}/${r.executions} succeeded`);
    console.log(`  duration p50 ${r.seconds.p50} s, p99 ${r.seconds.p99} s (modelled)`);
    if (r.addedAfterBootSeconds)
      console.log(
        `  added after the instance's own boot (OS ready -> InService): p50 ${r.addedAfterBootSeconds.p50} s, p99 ${r.addedAfterBootSeconds.p99} s`,
      );
    console.log(
      `  orchestration overhead p50 ${r.orchestrationOverheadSeconds.p50} s, p99 ${r.orchestrationOverheadSeconds.p99} s; computed at AWS latencies ${r.computedOrchestrationSeconds} s (p50 ${r.computedOrchestrationPerExecution.p50} s)`,
    );
    console.log(`  per operation: ${JSON.stringify(r.perOperation)}`);
    console.log(
      `  control-plane cost: $${r.dollarsPer1000} per 1,000 (list prices, us-east-1; docs/cost.md)`,
    );
    console.log(
      `  steps (p50 s): ${Object.entries(r.stepsP50)
        .map(([s, v]) => `${s} ${v}`)
        .join(', ')}`,
    );
    console.log(
      `  AWS calls by action: ${Object.entries(r.awsCallsByAction)
        .map(([s, v]) => `${s} ${v}`)
        .join(', ')}`,
    );
  };
  console.log(
    `Volsd bench: ${launches} launches on a pool of ${launches} idle volumes in ${azCount} AZs, time scale ${timeScale}`,
  );
  for (const r of Object.values(results)) {
    console.log(
      `\n=== ${r.path} path: ${r.servedFromPool} served from the pool, boot units ${JSON.stringify(r.bootUnits)}`,
    );
    line('acquire', r.acquire);
    line('release', r.release);
  }
}
