import { describe, expect, it } from 'vitest';
import {
  contentSizesGB,
  copyAtBootSeconds,
  defaultAssumptions,
  modelMarkdown,
  modelTable,
  originalVolsdSeconds,
  svgLineChart,
  timeToReadySvg,
  volsdSeconds,
  xmlEscape,
} from '../../bench/model.js';

describe('time-to-ready model', () => {
  it('grows strictly with content size for copy at boot', () => {
    // Prepare
    const sizes = [...contentSizesGB];

    // Act
    const seconds = sizes.map((s) => copyAtBootSeconds(s, defaultAssumptions.gp3BaselineMiBs.value));

    // Assess
    for (let i = 1; i < seconds.length; i++) expect(seconds[i]).toBeGreaterThan(seconds[i - 1] ?? Infinity);
  });

  it('gives Volsd and the original volsd the same time at every size', () => {
    // Act
    const rows = modelTable();

    // Assess
    expect(new Set(rows.map((r) => r.volsd)).size).toBe(1);
    expect(new Set(rows.map((r) => r.originalVolsd)).size).toBe(1);
  });

  it('computes Volsd as the boot and agent overlapped with the pre-mount steps, then the mount', () => {
    // Prepare
    const a = structuredClone(defaultAssumptions);
    a.volsdPreMountSeconds.value = 100;

    // Act
    const slowPreMount = volsdSeconds(a);
    const normal = volsdSeconds();

    // Assess
    expect(slowPreMount).toBe(100 + a.volsdMountSeconds.value);
    expect(normal).toBe(
      defaultAssumptions.bootSeconds.value +
        defaultAssumptions.agentSeconds.value +
        defaultAssumptions.volsdMountSeconds.value,
    );
  });

  it('computes the original volsd from its CLI calls and fixed sleeps', () => {
    // Prepare
    const a = defaultAssumptions;

    // Act
    const seconds = originalVolsdSeconds(a);

    // Assess
    expect(seconds).toBeCloseTo(30 + 8 * 0.6 + 2 * 10 + 2, 6);
  });

  it('copies 1 TB at the gp3 baseline in bytes over 125 MiB/s plus per-file overhead plus the boot', () => {
    // Prepare
    const bytes = 1e12;
    const expected = 30 + 0.6 + bytes / (125 * 1024 * 1024) + (bytes / (256 * 1024)) * 0.002;

    // Act
    const seconds = copyAtBootSeconds(1000, 125);

    // Assess
    expect(seconds).toBeCloseTo(expected, 6);
  });

  it('caps copy throughput at the instance network bandwidth', () => {
    // Prepare
    const a = structuredClone(defaultAssumptions);
    a.networkMiBs.value = 100;

    // Act
    const capped = copyAtBootSeconds(100, 1000, a);
    const at100 = copyAtBootSeconds(100, 100, a);

    // Assess
    expect(capped).toBeCloseTo(at100, 6);
  });

  it('has table rows that match the formulas', () => {
    // Act
    const rows = modelTable();

    // Assess
    for (const r of rows) {
      expect(r.copyAtBootBaseline).toBeCloseTo(copyAtBootSeconds(r.sizeGB, 125), 1);
      expect(r.copyAtBootMax).toBeCloseTo(copyAtBootSeconds(r.sizeGB, 1000), 1);
      expect(r.volsd).toBeCloseTo(volsdSeconds(), 1);
      expect(r.originalVolsd).toBeCloseTo(originalVolsdSeconds(), 1);
    }
    expect(rows.map((r) => r.sizeGB)).toEqual([1, 10, 100, 500, 1000]);
  });

  it('states a source for every figure in the Markdown', () => {
    // Act
    const md = modelMarkdown();

    // Assess
    for (const [name, f] of Object.entries(defaultAssumptions)) {
      expect(f.source.length).toBeGreaterThan(0);
      expect(md).toContain(`| ${name} |`);
    }
  });
});

describe('SVG line chart', () => {
  const svg = svgLineChart({
    title: 'T <&>',
    xLabel: 'size',
    yLabel: 'secs',
    series: [
      {
        name: 'a',
        color: 'red',
        points: [
          [1, 10],
          [10, 100],
        ],
      },
      {
        name: 'b',
        color: 'blue',
        points: [
          [1, 5],
          [10, 5],
        ],
      },
    ],
  });

  it('is one svg element, opened first and closed last', () => {
    // Assess
    expect(svg.match(/<svg[\s>]/g)).toHaveLength(1);
    expect(svg.trim().startsWith('<svg')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
  });

  it('draws one polyline per series', () => {
    // Assess
    expect(svg.match(/<polyline /g)).toHaveLength(2);
  });

  it('carries the title, axis labels and legend names, escaped', () => {
    // Assess
    expect(svg).toContain('T &lt;&amp;&gt;');
    expect(svg).toContain('>size</text>');
    expect(svg).toContain('>secs</text>');
    expect(svg).toContain('>a</text>');
    expect(svg).toContain('>b</text>');
  });

  it('balances its text elements and self-closes the others', () => {
    // Assess
    expect(svg.match(/<text /g)?.length).toBe(svg.match(/<\/text>/g)?.length);
    expect(svg).not.toMatch(/<(line|polyline|rect)\b[^>]*[^/]>/);
  });

  it('draws the model chart with the four approaches', () => {
    // Act
    const chart = timeToReadySvg();

    // Assess
    expect(chart.match(/<polyline /g)).toHaveLength(4);
    expect(chart).toContain('Volsd');
    expect(chart).toContain('original volsd');
    expect(chart).toContain('1 TB');
  });

  it('escapes quotes for attributes', () => {
    // Assess
    expect(xmlEscape('"x"')).toBe('&quot;x&quot;');
  });
});
