/**
 * The "Ready at boot" section of docs/benchmarks.md: the acquire's figures for the boot-unit and SSM
 * paths of one `npm run bench -- --json` run, beside a run of the code before the boot unit (the same
 * bench on that commit, `--paths ssm`). Usage:
 * `npx tsx bench/boot-report.ts --after after.json --before before.json --before-label "commit abc"`
 * rewrites the section between its markers (bench/report.ts keeps it when it regenerates the file).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

type Pct = { p50: number | null; p99: number | null };
/** The acquire figures of one path, as bench/run.ts reports them. */
interface PathAcquire {
  executions: number;
  succeeded: number;
  seconds: Pct;
  addedAfterBootSeconds?: Pct;
  computedOrchestrationSeconds: number;
  computedOrchestrationPerExecution?: Pct;
  perOperation: {
    awsCalls: number;
    stateTransitions: number;
    lambdaInvocations: number;
    tableWrites: number;
  };
  dollarsPer1000: number;
}
interface PathRun {
  path: string;
  servedFromPool: number;
  acquire: PathAcquire;
}
/** The parts of a bench/run.ts JSON report this section reads. */
export interface BootBenchRun {
  launches: number;
  azs: number;
  timeScale: number;
  paths: Record<string, PathRun>;
}

export const sectionStart = '<!-- ready-at-boot:start -->';
export const sectionEnd = '<!-- ready-at-boot:end -->';

const v = (n: number | null | undefined) => (n === null || n === undefined ? '-' : String(n));

function row(label: string, r: PathRun): string {
  const a = r.acquire;
  return `| ${label} | ${a.succeeded}/${a.executions} (${r.servedFromPool} from the pool) | ${v(a.addedAfterBootSeconds?.p50)} | ${v(a.addedAfterBootSeconds?.p99)} | ${v(a.seconds.p50)} | ${a.perOperation.lambdaInvocations} | ${a.perOperation.stateTransitions} | ${a.perOperation.awsCalls} | ${a.computedOrchestrationSeconds} | ${v(a.computedOrchestrationPerExecution?.p50)} | $${a.dollarsPer1000} |`;
}

/** Issue 20's targets for the boot-unit path, each with the figure of this run and whether it is met. */
function targetsLines(after: BootBenchRun): string[] {
  const a = after.paths['boot-unit']?.acquire;
  if (!a) return [];
  const added = a.addedAfterBootSeconds as (Pct & { p95?: number | null }) | undefined;
  const check = (label: string, value: number | null | undefined, limit: number) =>
    `- ${label}: ${v(value)} (target at most ${limit}: ${value !== null && value !== undefined && value <= limit ? 'met' : 'NOT met'})`;
  return [
    '',
    'Targets of the boot-unit path (issue 20), this run:',
    check('added after boot p50 s', added?.p50, 2),
    `${check('added after boot p99 s', added?.p99, 5)}; p95 ${v(added?.p95)} s. With 50 launches p99 is the slowest launch; not analysed per launch, the likely cause is the 5 % of attaches and detaches that the attachTail rule makes 2-8 times longer (docs/sandbox.md), which the 6-9 s OS boot does not hide.`,
    check('Lambda invocations per acquire', a.perOperation.lambdaInvocations, 10),
    check('state transitions per acquire', a.perOperation.stateTransitions, 25),
    `${check('computed orchestration p50 s', a.computedOrchestrationPerExecution?.p50, 1.5)}: about 17 EC2, SSM, Auto Scaling and Step Functions calls at 100 ms each remain (docs/decisions.md, "Ready at boot").`,
  ];
}

/** The section, markers included. */
export function readyAtBootMarkdown(
  after: BootBenchRun,
  before?: { label: string; run: BootBenchRun },
  afterLabel = 'after',
): string {
  const rows: string[] = [];
  if (before)
    for (const r of Object.values(before.run.paths)) rows.push(row(`before (${before.label}): ${r.path}`, r));
  for (const r of Object.values(after.paths)) rows.push(row(`${afterLabel}: ${r.path}`, r));
  return [
    sectionStart,
    `## Ready at boot: boot-unit and SSM paths (${after.launches} launches on a pool of ${after.launches} in ${after.azs} AZs)`,
    '',
    `\`npm run bench -- --json\` (time scale ${after.timeScale}: the unit and the scripts do real work at wall speed, so at 1 their time is their own, on 2 shared cores). One run each; sandbox-modelled seconds, not measured on AWS.`,
    '',
    '| acquire | succeeded | added after boot p50 s | added after boot p99 s | time to ready p50 s | Lambda invocations | state transitions | AWS calls | computed orchestration s (mean) | computed orchestration p50 s | $ per 1,000 |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    "Added after boot = the instance's OS ready (the moment its web server could start) to its lifecycle action completed",
    '(InService). Lambda invocations count every function the acquire causes: its own steps, the events function',
    '(unmount status, instance running) and the host function (the signal). Computed orchestration = the counts priced',
    'at assumed AWS latencies (Lambda invoke 30 ms, transition 20 ms, DynamoDB 8 ms, other API 100 ms; `bench/run.ts`),',
    'most of which is spent while the instance boots.',
    ...targetsLines(after),
    sectionEnd,
  ].join('\n');
}

/** `text` with its section replaced by `section` (appended when it has none). */
export function withSection(text: string, section: string): string {
  const start = text.indexOf(sectionStart);
  const end = text.indexOf(sectionEnd);
  if (start < 0 || end < start) return `${text.trimEnd()}\n\n${section}\n`;
  return `${text.slice(0, start)}${section}${text.slice(end + sectionEnd.length)}`;
}

const isMain = process.argv[1]?.endsWith('bench/boot-report.ts') ?? false;
if (isMain) {
  const { values } = parseArgs({
    options: {
      after: { type: 'string' },
      before: { type: 'string' },
      'before-label': { type: 'string', default: 'before the boot unit' },
      'after-label': { type: 'string', default: 'after' },
    },
  });
  if (!values.after) {
    console.error(
      'usage: npx tsx bench/boot-report.ts --after run.json [--before run.json --before-label TEXT]',
    );
    process.exit(2);
  }
  const read = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as BootBenchRun;
  const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'benchmarks.md');
  const section = readyAtBootMarkdown(
    read(values.after),
    values.before ? { label: values['before-label'] ?? 'before', run: read(values.before) } : undefined,
    values['after-label'],
  );
  writeFileSync(file, withSection(readFileSync(file, 'utf8'), section));
  console.log('wrote the Ready at boot section of docs/benchmarks.md');
}
