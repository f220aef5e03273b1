/**
 * Regenerates `docs/benchmarks.md`, `docs/bench.json` (the acquire/release run)
 * and `docs/cost.md` (generated from that JSON and `docs/scale.json`, bench/cost-page.ts): runs the acquire/release bench
 * (`bench/run.ts --json`) and the push bench (`bench/push.ts --json`) as child processes, then writes
 * their figures and the control-plane cost per 1,000 operations; the time-to-ready section comes from
 * `docs/warm.json` (`bench/warm.ts`).
 * Usage: `npx tsx bench/report.ts [--launches N] [--push-instances 10[,100]] [--run-json F] [--push-json F]`
 * (`--run-json`/`--push-json` reuse a saved `--json` output instead of running that bench).
 */

import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { sectionEnd, sectionStart, withSection } from './boot-report.js';
import { currentCommit } from './commit.js';
import { tailOf } from './cost.js';
import { committedCostMarkdown } from './cost-page.js';
import { writeJson } from './json.js';
import type { PushBenchRun } from './push.js';
import { warmSection } from './warm.js';

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

type Pct = { p50: number | null; p95: number | null; p99: number | null; max: number | null };
/** The parts of `bench/run.ts --json` the report reads. */
interface OpSummary {
  executions: number;
  succeeded: number;
  seconds: Pct;
  orchestrationOverheadSeconds: Pct;
  waitingForBootSeconds: Pct;
  computedOrchestrationSeconds: number;
  dollarsPer1000: number;
  stepsP50: Record<string, number | null>;
  perOperation: {
    awsCalls: number;
    stateTransitions: number;
    lambdaInvocations: number;
    tableWrites: number;
  };
}
interface RunReport {
  launches: number;
  timeScale: number;
  /** The simulator's AWS-strict rules in force for the run (absent in reports older than them). */
  strictRules?: string[];
  acquire: OpSummary;
  release: OpSummary;
}

/** The acquire and release rows of an earlier report, shown beside this run's (`--before-json`). */
export interface BeforeRows {
  /** Where the figures come from (report, commit, what differed). */
  label: string;
  acquire: OpSummary;
  release: OpSummary;
}

async function json<T>(args: string[]): Promise<T> {
  const { stdout } = await run('npx', ['tsx', ...args, '--json'], {
    cwd: repo,
    maxBuffer: 64 * 1024 * 1024,
  });
  const last = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as T;
}

const v = (n: number | null | undefined) => (n === null || n === undefined ? 'n/a' : String(n));

/** The cells of an operation's row after its name. */
function opCells(o: OpSummary, samples: number): string {
  const p = o.perOperation;
  return `${o.succeeded}/${o.executions} | ${v(o.seconds.p50)} | ${v(tailOf(o.seconds, samples).value)} | ${v(o.orchestrationOverheadSeconds.p50)} | ${o.computedOrchestrationSeconds} | ${p.awsCalls} | ${p.stateTransitions} | ${p.lambdaInvocations} | ${p.tableWrites} | $${o.dollarsPer1000} |`;
}

/** One operation's row; `samples` (the fewest of the table's rows) picks p99 or max for every row alike. */
function opRow(name: string, o: OpSummary, samples: number): string {
  return `| ${name} | ${opCells(o, samples)}`;
}

/**
 * Where the acquire waited for the instance's boot. The boot-unit path has no state of its own for it: its
 * UnmountOnWorker Task runs from the unmount to the instance's `running` and the unit's signal (one Task, so
 * the wait is inside it and `waitingForBootSeconds`, which counts the SSM path's states, is 0 there).
 */
function bootWaitText(a: OpSummary): string {
  const inTask = a.stepsP50?.UnmountOnWorker;
  if ((a.waitingForBootSeconds.p50 ?? 0) === 0 && inTask !== undefined)
    return `the boot is waited for inside the one UnmountOnWorker Task (unmount, detach, running, attach, the unit's signal), p50 ${v(inTask)} s`;
  return `waiting for the boot p50 ${v(a.waitingForBootSeconds.p50)} s`;
}

/** The Markdown of `docs/benchmarks.md`. */
export function benchmarksMarkdown(o: {
  date: string;
  cores: number;
  runReport: RunReport;
  push: PushBenchRun[];
  pushNote: string;
  commit?: string;
  before?: BeforeRows;
}): string {
  const r = o.runReport;
  const samples = Math.min(
    ...[r.acquire, r.release, ...(o.before ? [o.before.acquire, o.before.release] : [])].map(
      (x) => x.succeeded,
    ),
  );
  const tail = tailOf({ p99: null, max: null }, samples).label;
  const pushRows = o.push.flatMap((run) =>
    run.pushes.map(
      (p) =>
        `| ${run.instances} | ${run.azs} × ${run.idlePerAz} | ${p.changeBytes} | ${p.seconds} | ${v(p.toFanOutSeconds)} | ${p.status} | ${p.instancesTargeted} | ${p.volumesCurrent}/${p.volumesTotal} | ${p.bytesPerVolume.min}-${p.bytesPerVolume.max} (${p.bytesPerVolume.volumes} volumes) | ${p.ssmCommands} | ${p.lambdaInvocations.fanOut} + ${p.lambdaInvocations.status} |`,
    ),
  );
  const pushScales = [...new Set(o.push.map((p) => p.timeScale))].join(', ');
  return [
    '# Benchmarks',
    '',
    `Regenerate with \`npx tsx bench/report.ts\` (runs \`bench/run.ts --json\` and \`bench/push.ts --json\`, then writes`,
    'this file, `bench.json` and `cost.md`; the time-to-ready section comes from `warm.json`, written with',
    '`time-to-ready-warm.svg` by `npx tsx bench/warm.ts`). Generated by that command; do not edit by hand.',
    '',
    `- Date: ${o.date}. Machine: ${o.cores} cores, Node ${process.versions.node}, no AWS account: every figure comes from the sandbox (\`docs/sandbox.md\`).`,
    `- Time scale: acquire/release bench ${r.timeScale}, push bench ${pushScales} (wall seconds per modelled second). Times are modelled AWS seconds.`,
    ...(o.commit ? [`- Code: commit ${o.commit}.`] : []),
    `- AWS-strict rules of the simulator in force (docs/sandbox.md): ${r.strictRules?.length ? r.strictRules.join(', ') : 'none'}.`,
    '- Caveat (docs/sandbox.md): the shell scripts and the AWS CLI they run do real work at wall speed, so at a small',
    '  time scale their share of every modelled figure is inflated by 1 / time scale (one AWS CLI start costs ~0.6 s of',
    '  wall time). The figures are upper bounds for the script and CLI parts; the "computed" column prices the same',
    '  calls at AWS latencies instead.',
    '',
    `## Acquire and release (${r.launches} launches on a pool of ${r.launches}, one AZ, EC2 throttling on)`,
    '',
    `| operation | succeeded | p50 s | ${tail} s | orchestration overhead p50 s | computed orchestration s | AWS calls | state transitions | Lambda invocations | table writes | $ per 1,000 |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    opRow('acquire', r.acquire, samples),
    opRow('release', r.release, samples),
    ...(o.before
      ? [
          opRow(`acquire, before: ${o.before.label}`, o.before.acquire, samples),
          opRow(`release, before: ${o.before.label}`, o.before.release, samples),
        ]
      : []),
    '',
    `Acquire time includes the instance's boot (modelled 20-40 s) and SSM agent (8-12 s): of it, ${bootWaitText(r.acquire)}.`,
    'Overhead = duration - states waiting on AWS (attach, detach, SSM) - boot wait. Computed = the counts priced at',
    'assumed AWS latencies (Lambda invoke 30 ms, transition 20 ms, DynamoDB 8 ms, other API 100 ms; `bench/run.ts`).',
    '',
    '## Cost per 1,000 operations',
    '',
    'Method of `docs/cost.md` (us-east-1 list prices from `shared/aws-reference/FACTS.md`; Lambda 512 MB × 150 ms',
    'per step assumed; free tiers ignored), from the counts of this run:',
    '',
    '| operation | $ per 1,000 |',
    '| --- | --- |',
    `| acquire | $${r.acquire.dollarsPer1000} |`,
    `| release | $${r.release.dollarsPer1000} |`,
    '| push (one fan-out, one generation bump, one record, one SendCommand, status) | well under $0.10 per 1,000 (docs/cost.md) |',
    '',
    '## Push: a one-file change to every instance and idle volume',
    '',
    `\`npx tsx bench/push.ts\`: a base tree of 20 files, then one \`aws s3 cp\` (the real CLI) per change size; time from the`,
    'start of the copy to the push outcome collected (batching window 20 s, notification delay 1 s, as wired in AWS).',
    '',
    '| instances | AZs × idle | change bytes | seconds | of which to fan-out | status | command invocations | volumes current | bytes moved per volume | SSM commands | Lambda (fan-out + status) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...pushRows,
    '',
    'Each push is one fan-out invocation and one SSM command whatever the fleet size; every volume moves exactly the',
    'changed bytes (Volsd-Sync `bytesChanged`). The seconds are dominated by the caveat above: every instance runs',
    'the real AWS CLI at wall speed on 2 shared cores, inflated by 1 / time scale. On AWS a one-file push is expected',
    'at about notification (~1 s) + batching window (20 s) + SSM delivery (~1 s) + one sync (CLI start 0.6 s + LIST +',
    'GET, ~2-3 s per volume) + status event (~1 s): roughly 25-30 s, more with MaxConcurrency waves past 50 instances',
    "(estimate from the sandbox's latency figures, not measured).",
    '',
    o.pushNote,
    '',
    '## At scale and under faults',
    '',
    '- [scale.md](scale.md) (`npm run bench:scale`, JSON in `scale.json`): 1,000 instances over 3 AZs in bursts of 200 on',
    '  a pool of 20 idle volumes per AZ and on one sized for the burst (67), a push after each burst: time to ready',
    '  p50/p99 per burst, direct creations,',
    '  pool recovery, push convergence, EC2 throttling met and absorbed, counts and cost per acquire and per push.',
    '- [chaos.md](chaos.md) (`npm run bench:chaos`, JSON in `chaos.json`): 10,000 random operations under injected',
    '  faults for each of 3 seeds, then reconcile and every invariant checked against ground truth.',
    '- Both run the documents as the scripts\' in-process twins (docs/sandbox.md, "Two agents").',
    '',
    ...warmSection(),
  ].join('\n');
}

const isMain = process.argv[1]?.endsWith('bench/report.ts') ?? false;
if (isMain) {
  const { values } = parseArgs({
    options: {
      launches: { type: 'string', default: '10' },
      'push-instances': { type: 'string', default: '10' },
      'run-json': { type: 'string' },
      'push-json': { type: 'string' },
      'push-note': { type: 'string' },
      'before-json': { type: 'string' },
      commit: { type: 'string' },
    },
  });
  const runReport = values['run-json']
    ? (JSON.parse(readFileSync(values['run-json'], 'utf8')) as RunReport)
    : await json<RunReport>(['bench/run.ts', '--launches', values.launches ?? '10']);
  const pushReport = values['push-json']
    ? (JSON.parse(readFileSync(values['push-json'], 'utf8')) as { runs: PushBenchRun[] })
    : await json<{ runs: PushBenchRun[] }>([
        'bench/push.ts',
        '--instances',
        values['push-instances'] ?? '10',
      ]);
  const ran = pushReport.runs.map((p) => `${p.instances} (${p.wallSeconds} s wall)`).join(', ');
  const pushNote =
    values['push-note'] ??
    `Fleet sizes run: ${ran}. Larger fleets (100, 500) run the same way (\`--instances 10,100,500\`) but each Volsd-Sync starts the real AWS CLI per instance at wall speed, so on 2 cores they take far longer than the ~10 minutes this report allows.`;
  // The Ready at boot section comes from its own runs (bench/boot-report.ts): kept as it is.
  const previous = readFileSync(join(repo, 'docs', 'benchmarks.md'), 'utf8');
  const bootSection = previous.slice(
    previous.indexOf(sectionStart),
    previous.indexOf(sectionEnd) + sectionEnd.length,
  );
  const commit = values.commit ?? currentCommit();
  const rendered = benchmarksMarkdown({
    date: new Date().toISOString().slice(0, 10),
    cores: cpus().length,
    runReport,
    push: pushReport.runs,
    pushNote,
    ...(commit ? { commit } : {}),
    ...(values['before-json']
      ? { before: JSON.parse(readFileSync(values['before-json'], 'utf8')) as BeforeRows }
      : {}),
  });
  writeFileSync(
    join(repo, 'docs', 'benchmarks.md'),
    previous.includes(sectionStart) ? withSection(rendered, bootSection) : rendered,
  );
  // The run's JSON, committed, and the cost page generated from it (bench/cost-page.ts).
  const benchJson = {
    ...runReport,
    date: new Date().toISOString().slice(0, 10),
    ...(commit ? { commit } : {}),
  };
  writeJson(join(repo, 'docs', 'bench.json'), benchJson);
  writeFileSync(join(repo, 'docs', 'cost.md'), committedCostMarkdown());
  console.log('wrote docs/benchmarks.md, docs/bench.json and docs/cost.md');
}
