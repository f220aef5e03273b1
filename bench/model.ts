/**
 * The chart writer of the benchmarks (a small SVG line chart on log scales) and its labels. Pure: no I/O.
 * The time-to-ready chart is sandbox-modelled (`bench/warm.ts`); the formula model that stood in
 * for it (copy at boot, the original volsd) is gone (docs/decisions.md, "Copy at boot, measured").
 */

/** Content sizes of the time-to-ready chart, in GB (10^9 bytes). */
export const contentSizesGB: readonly number[] = [1, 10, 100, 500, 1000];

/** Human label of a size in GB. */
export function sizeLabel(sizeGB: number): string {
  return sizeGB >= 1000 ? `${sizeGB / 1000} TB` : `${sizeGB} GB`;
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
