/**
 * Time to ready against content size, sandbox-modelled (warm volumes, issue 17): for each content
 * size, one burst of 2 launches on a pool of 1 idle volume made from the latest snapshot, so one launch is
 * served from the pool and one is a direct creation, under each `coldDirectVolume` setting; and one
 * launch of a group without Volsd that copies the whole content at boot (`--scenario copy-at-boot`,
 * `sandbox/copy-at-boot.ts`). Each run is its own process (the workflow configuration is read once per
 * process) running with the documents' in-process twins (`--agent model`). Writes `docs/warm.json` and
 * `docs/time-to-ready-warm.svg`; `bench/report.ts` renders the section of `docs/benchmarks.md` from them.
 *
 *   npx tsx bench/warm.ts [--sizes 1,10,100,500,1000] [--time-scale 0.005]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { copyLimits } from '../sandbox/copy-at-boot.js';
import { currentCommit } from './commit.js';
import { writeJson } from './json.js';
import { sizeLabel, svgLineChart } from './model.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const warmJson = join(repo, 'docs', 'warm.json');
const warmSvgPath = join(repo, 'docs', 'time-to-ready-warm.svg');

/** One run: a content size under one setting. */
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

/** One launch that copies the content at boot (no Volsd). */
export interface CopyPoint {
  contentGB: number;
  ready: string;
  readySeconds: number | null;
  /** End of the boot to the new volume attached and mounted (create, attach, mkfs, mount). */
  prepareSeconds: number | null;
  /** The modelled copy of the content (the slowest limit at each moment). */
  copySeconds: number | null;
  staleAtReady: number;
  wallSeconds: number;
}

/** GB on the chart, GiB in the simulator: 1 GB = 0.931 GiB. */
const gibOf = (contentGB: number) => ((contentGB * 1e9) / 2 ** 30).toFixed(3);

/** Runs the copy-at-boot scenario for one launch and reads its JSON (the last line of stdout). */
function measureCopy(contentGB: number, timeScale: number): CopyPoint {
  const out = execFileSync(
    'npx',
    [
      'tsx',
      'sandbox/cli.ts',
      '--scenario',
      'copy-at-boot',
      '--instances',
      '1',
      '--time-scale',
      String(timeScale),
      '--content-gib',
      gibOf(contentGB),
      '--json',
    ],
    { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 * 2 ** 20 },
  );
  const r = JSON.parse(out.trim().split('\n').pop() ?? '{}') as {
    instancesLaunched: number;
    instancesReady: number;
    staleAtReady: number;
    timeToReady: { p50: number | null };
    prepareSeconds: { p50: number | null };
    copySeconds: { p50: number | null };
    wallSeconds: number;
  };
  return {
    contentGB,
    ready: `${r.instancesReady}/${r.instancesLaunched}`,
    readySeconds: r.timeToReady.p50,
    prepareSeconds: r.prepareSeconds.p50,
    copySeconds: r.copySeconds.p50,
    staleAtReady: r.staleAtReady,
    wallSeconds: r.wallSeconds,
  };
}

/** Runs one burst and reads its JSON (the last line of stdout). */
function measure(contentGB: number, setting: 'hold' | 'continue', timeScale: number): WarmPoint {
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
      gibOf(contentGB),
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

/** The chart of the points (x: content GB, y: sandbox-modelled seconds to ready). */
export function warmSvg(points: readonly WarmPoint[], copies: readonly CopyPoint[] = []): string {
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
    title: 'Time to ready against content size (sandbox-modelled)',
    xLabel: 'content size (log scale)',
    yLabel: 'modelled seconds to InService (log scale)',
    series: [
      series('served from the pool', '#1b7837', (p) => p.fromPoolSeconds, 'hold'),
      series('direct creation, hold', '#b2182b', (p) => p.directSeconds, 'hold'),
      series('direct creation, continue (cold)', '#ef8a62', (p) => p.directSeconds, 'continue'),
      {
        name: 'copy at boot (no Volsd)',
        color: '#2166ac',
        points: copies.flatMap((c) =>
          c.readySeconds === null ? [] : [[c.contentGB, c.readySeconds] as const],
        ),
      },
    ],
    xTick: sizeLabel,
  });
}

/** The markdown section of docs/benchmarks.md, from docs/warm.json; empty when it was never run. */
export function warmSection(): string[] {
  if (!existsSync(warmJson)) return [];
  const data = JSON.parse(readFileSync(warmJson, 'utf8')) as {
    date: string;
    commit?: string;
    timeScale: number;
    points: WarmPoint[];
    copyAtBoot?: CopyPoint[];
  };
  const cell = (n: number | null) => (n === null ? '-' : `${n.toFixed(1)} s`);
  const copies = data.copyAtBoot ?? [];
  const MBps = (bytes: number) => `${Math.round(bytes / 1e4) / 100} MB/s`;
  return [
    '## Time to ready against content size, sandbox-modelled',
    '',
    '![time to ready, sandbox-modelled](time-to-ready-warm.svg)',
    '',
    `\`npx tsx bench/warm.ts\` (${data.date}, ${data.commit ? `commit ${data.commit}, ` : ''}time scale ${data.timeScale}, documents as their in-process twins). Seconds are`,
    'sandbox-modelled (lifecycle event to InService), not measured on AWS. Each cell is one launch (a single sample).',
    "The wall time of the in-process work (the document twins, the copy's real files) counts as modelled time, 200",
    'modelled seconds per wall second at 0.005 (docs/sandbox.md, "Time"), so on a loaded machine a single cell varies',
    'by tens of seconds between runs; the growth with content size is what the chart shows.',
    '',
    '### Volsd: served from the pool, and direct creation under each setting',
    '',
    'Per content size, a burst of 2 launches on a pool of 1 idle volume made from the latest snapshot, pool',
    'initialization at the default provisioned rate (300 MiB/s), so one launch is served from the pool and one is a',
    'direct creation. The default-rate model, the 60-300 s lag of DescribeVolumeStatus and the rest are in',
    'docs/sandbox.md ("volumeInitialization").',
    '',
    '| content | setting | ready | from the pool | direct creation | cold at ready | cold from pool | slowest initialization | wall |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...data.points.map(
      (p) =>
        `| ${sizeLabel(p.contentGB)} | ${p.setting} | ${p.ready} | ${cell(p.fromPoolSeconds)} | ${cell(p.directSeconds)} | ${p.coldAtReady} | ${p.coldFromPool} | ${cell(p.initializationSecondsMax)} | ${p.wallSeconds} s |`,
    ),
    '',
    ...(copies.length
      ? [
          '### Copy at boot, without Volsd',
          '',
          '`npm run sandbox -- --scenario copy-at-boot --instances 1 --content-gib G` (`sandbox/copy-at-boot.ts`): a group',
          'without Volsd whose instances, at the end of their boot, create a new empty gp3 volume, attach it, make an XFS file',
          "system, mount it and copy the bucket's whole `live/` tree onto it, then complete their launch hook (with",
          'heartbeats). Every EC2 and Auto Scaling call goes through the simulator and its strict rules; the files copied are',
          "the sandbox's real (small) tree, and InService is checked against the bucket (`stale at ready`). What is",
          "**modelled** is the copy's duration for the stated content size: mkfs 2 s, mount 1 s, one AWS CLI start 0.6 s,",
          "then the bytes at the slowest of these limits at each moment (m7g.large, the web instances' type):",
          '',
          '| limit | first | then | source |',
          '| --- | --- | --- | --- |',
          ...copyLimits('m7g.large').map(
            (l) =>
              `| ${l.name} | ${MBps(l.burst)}${l.burstSeconds ? ` for ${l.burstSeconds / 60} min` : ''} | ${MBps(l.baseline)} | ${l.source} |`,
          ),
          '',
          "So the copy runs at the gp3 volume's 131 MB/s for 5 minutes, at the network baseline (117 MB/s) until minute 30,",
          "then at the instance's EBS baseline (78.75 MB/s). Left out, which can only make copy at boot look faster than on",
          'AWS: the per-object cost of `aws s3 sync` (one request per file), and the rest of the user data (packages, the web',
          "server). A launch template's block device mapping would give the volume at launch rather than at the end of the",
          "boot: the `prepare` column's create and attach (about 5-20 s) would overlap the boot.",
          '',
          '| content | ready | time to ready | of which prepare (create, attach, mkfs, mount) | of which copy (modelled) | stale at ready | wall |',
          '| --- | --- | --- | --- | --- | --- | --- |',
          ...copies.map(
            (c) =>
              `| ${sizeLabel(c.contentGB)} | ${c.ready} | ${cell(c.readySeconds)} | ${cell(c.prepareSeconds)} | ${cell(c.copySeconds)} | ${c.staleAtReady} | ${c.wallSeconds} s |`,
          ),
          '',
        ]
      : []),
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
  const copyAtBoot: CopyPoint[] = [];
  for (const size of sizes) {
    for (const setting of ['hold', 'continue'] as const) {
      const p = measure(size, setting, timeScale);
      console.error(JSON.stringify(p));
      points.push(p);
    }
    const c = measureCopy(size, timeScale);
    console.error(JSON.stringify(c));
    copyAtBoot.push(c);
  }
  writeJson(warmJson, {
    date: new Date().toISOString().slice(0, 10),
    commit: currentCommit(),
    timeScale,
    points,
    copyAtBoot,
  });
  writeFileSync(warmSvgPath, warmSvg(points, copyAtBoot));
  console.log(`wrote ${warmJson} and ${warmSvgPath}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
