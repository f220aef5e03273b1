/**
 * Model of time to ready against content size for three approaches (Volsd, copying the tree at boot,
 * the original volsd), with every figure's source, and a small SVG line-chart writer. Pure: no I/O.
 */

/** One figure of the model with where it comes from ("assumed" when it is an assumption). */
export interface Figure {
  value: number;
  unit: string;
  source: string;
}

/** Every input of the model. */
export interface ModelAssumptions {
  /** Instance boot to running OS (sim latency model instanceBoot 20-40 s: midpoint). */
  bootSeconds: Figure;
  /** SSM agent registration after boot, needed for the mount over Run Command (sim: 8-12 s). */
  agentSeconds: Figure;
  /** Volsd: claim + unmount on the worker + detach + attach, overlapped with the boot. */
  volsdPreMountSeconds: Figure;
  /** Volsd: mount over SSM, generation check, lifecycle completion. */
  volsdMountSeconds: Figure;
  /** gp3 baseline throughput. */
  gp3BaselineMiBs: Figure;
  /** gp3 provisioned maximum throughput. */
  gp3MaxMiBs: Figure;
  /** The instance's sustained network bandwidth. */
  networkMiBs: Figure;
  /** The instance's EBS bandwidth. */
  ebsBandwidthMiBs: Figure;
  /** Average file size of the content tree. */
  averageFileKiB: Figure;
  /** Effective per-file overhead of `aws s3 sync` (request latency / concurrent requests). */
  perFileSeconds: Figure;
  /** One AWS CLI process per AWS call. */
  cliCallSeconds: Figure;
  /** AWS CLI calls the original volsd makes per acquire. */
  originalCliCalls: Figure;
  /** The original's fixed sleep between polls. */
  originalSleepSeconds: Figure;
  /** Polls (sleeps) the original makes per acquire: one after detach, one after attach. */
  originalPolls: Figure;
  /** The original's unmount on the worker and mount on the instance (ssh + mount). */
  originalMountSeconds: Figure;
}

/** The model's default inputs, each with its source. */
export const defaultAssumptions: ModelAssumptions = {
  bootSeconds: { value: 30, unit: 's', source: 'sandbox latency model instanceBoot 20-40 s, midpoint' },
  agentSeconds: { value: 10, unit: 's', source: 'sandbox latency model agentRegistration 8-12 s, midpoint' },
  volsdPreMountSeconds: {
    value: 8,
    unit: 's',
    source:
      'sandbox latency model: claim ~0.5 s + unmount on worker over SSM ~2 s + detach 1-4 s + attach 1-4 s (midpoints)',
  },
  volsdMountSeconds: {
    value: 2,
    unit: 's',
    source: 'sandbox latency model: SSM delivery 0.5-1.5 s + execution 0.5-1.5 s (midpoints)',
  },
  gp3BaselineMiBs: { value: 125, unit: 'MiB/s', source: 'FACTS.md gp3 performance (baseline included)' },
  gp3MaxMiBs: { value: 1000, unit: 'MiB/s', source: 'FACTS.md gp3 performance (2023 maximum)' },
  networkMiBs: {
    value: 1192,
    unit: 'MiB/s',
    source: 'assumed: an instance with 10 Gbit/s sustained network (e.g. a large m6in/c6in size)',
  },
  ebsBandwidthMiBs: {
    value: 1192,
    unit: 'MiB/s',
    source: 'assumed: the same instance with 10 Gbit/s EBS bandwidth',
  },
  averageFileKiB: { value: 256, unit: 'KiB', source: 'assumed: web tree of many small files' },
  perFileSeconds: {
    value: 0.002,
    unit: 's',
    source: 'assumed: ~20 ms per S3 GET + file create, 10 concurrent requests (AWS CLI default)',
  },
  cliCallSeconds: { value: 0.6, unit: 's', source: 'DESIGN.md: each AWS CLI process costs about 0.6 s' },
  originalCliCalls: {
    value: 8,
    unit: 'calls',
    source:
      'assumed: describe-instances, describe-volumes, create-tags (claim), describe-volumes (verify), detach-volume, describe-volumes (poll), attach-volume, describe-volumes (poll)',
  },
  originalSleepSeconds: { value: 10, unit: 's', source: 'assumed: fixed sleeps of 5-10 s, upper value' },
  originalPolls: {
    value: 2,
    unit: 'sleeps',
    source: 'assumed: one after detach, one after attach (1-4 s each)',
  },
  originalMountSeconds: {
    value: 2,
    unit: 's',
    source: 'assumed: umount on the worker over ssh + local mount',
  },
};

/** Content sizes of the model, in GB (10^9 bytes). */
export const contentSizesGB: readonly number[] = [1, 10, 100, 500, 1000];

const MiB = 1024 * 1024;

/**
 * Volsd: the boot (and SSM agent) overlaps the claim, unmount, detach and attach; the mount follows
 * whichever ends last. Independent of the content size.
 */
export function volsdSeconds(a: ModelAssumptions = defaultAssumptions): number {
  return (
    Math.max(a.bootSeconds.value + a.agentSeconds.value, a.volsdPreMountSeconds.value) +
    a.volsdMountSeconds.value
  );
}

/**
 * Copy at boot: boot, then `aws s3 sync` of the whole tree at the slowest of the volume's throughput,
 * the instance's network and its EBS bandwidth, plus a per-file overhead.
 */
export function copyAtBootSeconds(
  sizeGB: number,
  volumeMiBs: number,
  a: ModelAssumptions = defaultAssumptions,
): number {
  const bytes = sizeGB * 1e9;
  const throughput = Math.min(volumeMiBs, a.networkMiBs.value, a.ebsBandwidthMiBs.value) * MiB;
  const files = bytes / (a.averageFileKiB.value * 1024);
  return a.bootSeconds.value + a.cliCallSeconds.value + bytes / throughput + files * a.perFileSeconds.value;
}

/**
 * The original volsd: after the boot its daemon runs one CLI process per AWS call and fixed sleeps
 * between polls, then mounts. The volume already holds the tree: independent of the content size.
 */
export function originalVolsdSeconds(a: ModelAssumptions = defaultAssumptions): number {
  return (
    a.bootSeconds.value +
    a.originalCliCalls.value * a.cliCallSeconds.value +
    a.originalPolls.value * a.originalSleepSeconds.value +
    a.originalMountSeconds.value
  );
}

/** One row of the model table: seconds to ready for one content size. */
export interface ModelRow {
  sizeGB: number;
  volsd: number;
  copyAtBootBaseline: number;
  copyAtBootMax: number;
  originalVolsd: number;
}

/** The model table, one row per content size, seconds rounded to 0.1. */
export function modelTable(a: ModelAssumptions = defaultAssumptions, sizes = contentSizesGB): ModelRow[] {
  const r = (n: number) => Math.round(n * 10) / 10;
  return sizes.map((sizeGB) => ({
    sizeGB,
    volsd: r(volsdSeconds(a)),
    copyAtBootBaseline: r(copyAtBootSeconds(sizeGB, a.gp3BaselineMiBs.value, a)),
    copyAtBootMax: r(copyAtBootSeconds(sizeGB, a.gp3MaxMiBs.value, a)),
    originalVolsd: r(originalVolsdSeconds(a)),
  }));
}

/** Human label of a size in GB. */
export function sizeLabel(sizeGB: number): string {
  return sizeGB >= 1000 ? `${sizeGB / 1000} TB` : `${sizeGB} GB`;
}

/** Human label of a duration in seconds. */
export function durationLabel(seconds: number): string {
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** The model table and its sources as Markdown. */
export function modelMarkdown(a: ModelAssumptions = defaultAssumptions): string {
  const rows = modelTable(a);
  const lines = [
    `| content | Volsd | copy at boot, gp3 ${a.gp3BaselineMiBs.value} MiB/s | copy at boot, gp3 ${a.gp3MaxMiBs.value} MiB/s | original volsd |`,
    '| --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${sizeLabel(r.sizeGB)} | ${durationLabel(r.volsd)} | ${durationLabel(r.copyAtBootBaseline)} | ${durationLabel(r.copyAtBootMax)} | ${durationLabel(r.originalVolsd)} |`,
    ),
    '',
    'Formulas:',
    '- Volsd = max(boot + SSM agent, pre-mount) + mount.',
    '- copy at boot = boot + one CLI start + bytes / min(gp3 throughput, network, EBS bandwidth) + files × per-file overhead (files = bytes / average file size).',
    '- original volsd = boot + CLI calls × CLI start + polls × fixed sleep + mount.',
    '',
    '| figure | value | source |',
    '| --- | --- | --- |',
    ...Object.entries(a).map(
      ([name, f]: [string, Figure]) => `| ${name} | ${f.value} ${f.unit} | ${f.source} |`,
    ),
  ];
  return lines.join('\n');
}

/** One line of a chart. */
export interface Series {
  name: string;
  color: string;
  points: readonly (readonly [number, number])[];
}

/** What {@link svgLineChart} draws. */
export interface ChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  /** Tick label of an x value. */
  xTick?: (x: number) => string;
  width?: number;
  height?: number;
}

/** Escapes text for XML content and attributes. */
export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * A line chart as a standalone SVG document, both axes on a log10 scale: title, axis labels, decade
 * ticks, one `<polyline>` per series and a legend. Values must be positive.
 */
export function svgLineChart(spec: ChartSpec): string {
  const width = spec.width ?? 760;
  const height = spec.height ?? 460;
  const m = { left: 80, right: 220, top: 50, bottom: 60 };
  const xs = spec.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = spec.series.flatMap((s) => s.points.map((p) => p[1]));
  const x0 = Math.log10(Math.min(...xs));
  const x1 = Math.log10(Math.max(...xs));
  const y0 = Math.floor(Math.log10(Math.min(...ys)));
  const y1 = Math.ceil(Math.log10(Math.max(...ys)));
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const px = (x: number) => m.left + (x1 > x0 ? ((Math.log10(x) - x0) / (x1 - x0)) * plotW : plotW / 2);
  const py = (y: number) =>
    m.top + plotH - (y1 > y0 ? ((Math.log10(y) - y0) / (y1 - y0)) * plotH : plotH / 2);
  const f = (n: number) => n.toFixed(1);
  const xTick = spec.xTick ?? String;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12" role="img">`,
    // The accessible name of the chart (screen readers, and Biome's a11y lint).
    `<title>${xmlEscape(spec.title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="28" text-anchor="middle" font-size="16">${xmlEscape(spec.title)}</text>`,
  ];
  for (let d = y0; d <= y1; d++) {
    const y = py(10 ** d);
    out.push(
      `<line x1="${m.left}" y1="${f(y)}" x2="${m.left + plotW}" y2="${f(y)}" stroke="#ddd"/>`,
      `<text x="${m.left - 6}" y="${f(y + 4)}" text-anchor="end">${xmlEscape(String(10 ** d))}</text>`,
    );
  }
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
    out.push(
      `<line x1="${f(px(x))}" y1="${m.top}" x2="${f(px(x))}" y2="${m.top + plotH}" stroke="#eee"/>`,
      `<text x="${f(px(x))}" y="${m.top + plotH + 18}" text-anchor="middle">${xmlEscape(xTick(x))}</text>`,
    );
  }
  out.push(
    `<rect x="${m.left}" y="${m.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${m.left + plotW / 2}" y="${height - 15}" text-anchor="middle">${xmlEscape(spec.xLabel)}</text>`,
    `<text x="20" y="${m.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 20 ${m.top + plotH / 2})">${xmlEscape(spec.yLabel)}</text>`,
  );
  spec.series.forEach((s, i) => {
    const pts = s.points.map(([x, y]) => `${f(px(x))},${f(py(y))}`).join(' ');
    out.push(`<polyline fill="none" stroke="${xmlEscape(s.color)}" stroke-width="2" points="${pts}"/>`);
    const ly = m.top + 10 + i * 22;
    const lx = m.left + plotW + 15;
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${xmlEscape(s.color)}" stroke-width="2"/>`,
      `<text x="${lx + 30}" y="${ly + 4}">${xmlEscape(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** The model's series for the chart (x: content size in GB, y: seconds). */
export function modelSeries(a: ModelAssumptions = defaultAssumptions): Series[] {
  const rows = modelTable(a);
  return [
    { name: 'Volsd', color: '#1b7837', points: rows.map((r) => [r.sizeGB, r.volsd] as const) },
    {
      name: `copy at boot, ${a.gp3BaselineMiBs.value} MiB/s`,
      color: '#b2182b',
      points: rows.map((r) => [r.sizeGB, r.copyAtBootBaseline] as const),
    },
    {
      name: `copy at boot, ${a.gp3MaxMiBs.value} MiB/s`,
      color: '#ef8a62',
      points: rows.map((r) => [r.sizeGB, r.copyAtBootMax] as const),
    },
    {
      name: 'original volsd',
      color: '#2166ac',
      points: rows.map((r) => [r.sizeGB, r.originalVolsd] as const),
    },
  ];
}

/** The time-to-ready chart of the model as an SVG document. */
export function timeToReadySvg(a: ModelAssumptions = defaultAssumptions): string {
  return svgLineChart({
    title: 'Time to ready against content size (model)',
    xLabel: 'content size (log scale)',
    yLabel: 'seconds to ready (log scale)',
    series: modelSeries(a),
    xTick: sizeLabel,
  });
}
