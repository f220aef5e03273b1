/**
 * Time to ready against content size, measured in the sandbox (warm volumes, issue 17): for each content
 * size, one burst of 2 launches on a pool of 1 idle volume made from the latest snapshot, so one launch is
 * served from the pool and one is a direct creation, under each `coldDirectVolume` setting. Each run is
 * its own process (the workflow configuration is read once per process) running the burst scenario with
 * the documents' in-process twins (`--agent model`). Writes `docs/warm.json` and
 * `docs/time-to-ready-warm.svg`; `bench/report.ts` renders the section of `docs/benchmarks.md` from them.
 *
 *   npx tsx bench/warm.ts [--sizes 1,10,100,500,1000] [--time-scale 0.005]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sizeLabel, svgLineChart } from './model.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const warmJson = join(repo, 'docs', 'warm.json');
const warmSvgPath = join(repo, 'docs', 'time-to-ready-warm.svg');

/** One measured run: a content size under one setting. */
export interface WarmPoint {
  contentGB: number;
  setting: 'hold' | 'continue';
  ready: string;
  fromPoolSeconds: number | null;
  directSeconds: number | null;
  coldAtReady: number;
  coldFromPool: number;
  initializationSecondsMax: number | null;
  wallSeconds: number;
}

/** Runs one burst and reads its JSON (the last line of stdout). */
function measure(contentGB: number, setting: 'hold' | 'continue', timeScale: number): WarmPoint {
  // GB on the chart, GiB in the simulator: 1 GB = 0.931 GiB.
  const contentGiB = (contentGB * 1e9) / 2 ** 30;
  const out = execFileSync(
    'npx',
    [
      'tsx',
      'sandbox/cli.ts',
      '--scenario',
      'burst',
      '--instances',
      '2',
      '--idle-per-az',
      '1',
      '--azs',
      '1',
      '--agent',
      'model',
      '--time-scale',
      String(timeScale),
      '--content-gib',
      contentGiB.toFixed(3),
      '--cold-direct-volume',
      setting,
      '--json',
    ],
    { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 * 2 ** 20 },
  );
  const r = JSON.parse(out.trim().split('\n').pop() ?? '{}') as {
    instancesLaunched: number;
    instancesReady: number;
    coldAtReady: number;
    coldFromPool: number;
    initializationSeconds: { max?: number | null; p99?: number | null };
    timeToReadyByPath: { fromPool: { p50: number | null }; direct: { p50: number | null } };
    wallSeconds: number;
  };
  return {
    contentGB,
    setting,
    ready: `${r.instancesReady}/${r.instancesLaunched}`,
    fromPoolSeconds: r.timeToReadyByPath.fromPool.p50,
    directSeconds: r.timeToReadyByPath.direct.p50,
    coldAtReady: r.coldAtReady,
    coldFromPool: r.coldFromPool,
    initializationSecondsMax: r.initializationSeconds.max ?? r.initializationSeconds.p99 ?? null,
    wallSeconds: r.wallSeconds,
  };
}

/** The chart of the measured points (x: content GB, y: modelled seconds to ready). */
export function warmSvg(points: readonly WarmPoint[]): string {
  const series = (name: string, color: string, pick: (p: WarmPoint) => number | null, setting: string) => ({
    name,
    color,
    points: points
      .filter((p) => p.setting === setting)
      .flatMap((p) => {
        const y = pick(p);
        return y === null ? [] : [[p.contentGB, y] as const];
      }),
  });
  return svgLineChart({
    title: 'Time to ready against content size (sandbox-modelled, measured)',
    xLabel: 'content size (log scale)',
    yLabel: 'modelled seconds to InService (log scale)',
    series: [
      series('served from the pool', '#1b7837', (p) => p.fromPoolSeconds, 'hold'),
      series('direct creation, hold', '#b2182b', (p) => p.directSeconds, 'hold'),
      series('direct creation, continue (cold)', '#ef8a62', (p) => p.directSeconds, 'continue'),
    ],
    xTick: sizeLabel,
  });
}

/** The markdown section of docs/benchmarks.md, from docs/warm.json; empty when it was never measured. */
export function warmSection(): string[] {
  if (!existsSync(warmJson)) return [];
  const data = JSON.parse(readFileSync(warmJson, 'utf8')) as {
    date: string;
    timeScale: number;
    points: WarmPoint[];
  };
  const cell = (n: number | null) => (n === null ? '-' : `${n.toFixed(1)} s`);
  return [
    '## Time to ready against content size, measured in the sandbox (warm volumes)',
    '',
    '![time to ready, measured](time-to-ready-warm.svg)',
    '',
    `\`npx tsx bench/warm.ts\` (${data.date}, time scale ${data.timeScale}, documents as their in-process twins): per`,
    'content size, a burst of 2 launches on a pool of 1 idle volume made from the latest snapshot, pool',
    'initialization at the default provisioned rate (300 MiB/s), so one launch is served from the pool and one is a',
    'direct creation. Each cell is one launch (a single sample). Seconds are sandbox-modelled (lifecycle event to',
    'InService), not measured on AWS. The',
    'default-rate model, the 60-300 s lag of DescribeVolumeStatus and the rest are in docs/sandbox.md',
    '("volumeInitialization"). Copy at boot is not measured here (see the model above): no point of it is claimed.',
    '',
    '| content | setting | ready | from the pool | direct creation | cold at ready | cold from pool | slowest initialization | wall |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...data.points.map(
      (p) =>
        `| ${sizeLabel(p.contentGB)} | ${p.setting} | ${p.ready} | ${cell(p.fromPoolSeconds)} | ${cell(p.directSeconds)} | ${p.coldAtReady} | ${p.coldFromPool} | ${cell(p.initializationSecondsMax)} | ${p.wallSeconds} s |`,
    ),
    '',
  ];
}

async function main() {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '1,10,100,500,1000' },
      'time-scale': { type: 'string', default: '0.005' },
    },
  });
  const sizes = String(values.sizes)
    .split(',')
    .map(Number)
    .filter((n) => n > 0);
  const timeScale = Number(values['time-scale']);
  const points: WarmPoint[] = [];
  for (const size of sizes) {
    for (const setting of ['hold', 'continue'] as const) {
      const p = measure(size, setting, timeScale);
      console.error(JSON.stringify(p));
      points.push(p);
    }
  }
  writeFileSync(
    warmJson,
    `${JSON.stringify({ date: new Date().toISOString().slice(0, 10), timeScale, points }, null, 2)}\n`,
  );
  writeFileSync(warmSvgPath, warmSvg(points));
  console.log(`wrote ${warmJson} and ${warmSvgPath}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
