/**
 * `npm run bench`: acquire and release in the sandbox, measured in modelled AWS seconds, with the AWS
 * calls, state transitions, Lambda invocations and table writes each operation costs. Prints a report;
 * `--json` prints one JSON object instead. Options: --launches N (default 10), --time-scale X (0.1).
 */

import { parseArgs } from 'node:util';
import { Sandbox } from '../sandbox/runtime.js';
import { percentiles, round } from '../sandbox/scenarios/report.js';
import { countKinds } from '../sandbox/sim/accounting.js';
import type { LocalExecution } from '../sandbox/stepfunctions.js';
import { costPerThousand } from './cost.js';

// Node 20 runs the tests and the sandbox here; the Lambdas run on Node 22. The SDK's notice about it is noise.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const { values } = parseArgs({
  options: {
    launches: { type: 'string', default: '10' },
    'time-scale': { type: 'string', default: '0.1' },
    json: { type: 'boolean', default: false },
  },
});
const launches = Number(values.launches);
const timeScale = Number(values['time-scale']);
if (!Number.isInteger(launches) || launches < 1 || !(timeScale > 0 && timeScale <= 1)) {
  console.error('usage: npm run bench -- [--launches N] [--time-scale X] [--json]');
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

function summarize(sandbox: Sandbox, machine: 'acquire' | 'release', executions: LocalExecution[]) {
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
    const boot = machine === 'acquire' ? (t.Attach ?? 0) + (t.Mount ?? 0) : 0;
    bootWait.push(boot);
    overhead.push(Math.max(0, total - waiting - boot));
  }
  const counts: Record<string, number> = Object.fromEntries(countKinds.map((k) => [k, 0]));
  const calls: Record<string, number> = {};
  for (const e of done) {
    const c = sandbox.accounting.forOperation(`${machine}:${e.name}`);
    for (const k of countKinds) counts[k] = (counts[k] ?? 0) + c[k];
    for (const [detail, n] of Object.entries(c.byDetail.awsCall)) calls[detail] = (calls[detail] ?? 0) + n;
  }
  const per = (n: number) => round(n / Math.max(1, done.length), 1);
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
  };
}

const sandbox = await Sandbox.start({ azs: 1, idlePerAz: launches, timeScale, seed: 42, throttling: true });
try {
  await sandbox.replenishAll();
  sandbox.scaleTo(launches);
  await sandbox.settle();
  const all = [...sandbox.sfn.executions.values()];
  const acquire = summarize(
    sandbox,
    'acquire',
    all.filter((e) => e.stateMachineArn === sandbox.wiring.stateMachines.acquire),
  );
  sandbox.scaleTo(0);
  await sandbox.settle();
  const after = [...sandbox.sfn.executions.values()];
  const release = summarize(
    sandbox,
    'release',
    after.filter((e) => e.stateMachineArn === sandbox.wiring.stateMachines.release),
  );
  const replenishes = after.filter((e) => e.stateMachineArn === sandbox.wiring.stateMachines.replenish);
  const report = {
    bench: 'acquire-release',
    launches,
    timeScale,
    strictRules: sandbox.cloud.strictRules(),
    note: 'modelled AWS seconds; instance pending 20-40 s, OS boot and SSM agent ~10 s are part of time to ready',
    acquire,
    release,
    replenish: summarize(sandbox, 'replenish' as 'release', replenishes),
  };
  if (values.json) console.log(JSON.stringify(report));
  else {
    const line = (name: string, r: typeof acquire) => {
      console.log(`\n${name}: ${r.succeeded}/${r.executions} succeeded`);
      console.log(`  duration p50 ${r.seconds.p50} s, p99 ${r.seconds.p99} s (modelled)`);
      console.log(
        `  orchestration overhead p50 ${r.orchestrationOverheadSeconds.p50} s, p99 ${r.orchestrationOverheadSeconds.p99} s`,
      );
      if (name === 'acquire')
        console.log(`  of which waiting for the instance to boot: p50 ${r.waitingForBootSeconds.p50} s`);
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
      `Volsd bench: ${launches} launches on a pool of ${launches} idle volumes, time scale ${timeScale}`,
    );
    line('acquire', acquire);
    line('release', release);
    line('replenish', report.replenish);
  }
} finally {
  await sandbox.stop();
}
