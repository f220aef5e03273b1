import { describe, expect, it } from 'vitest';
import { svgLineChart, xmlEscape } from '../../bench/model.js';

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

  it('escapes quotes for attributes', () => {
    // Assess
    expect(xmlEscape('"x"')).toBe('&quot;x&quot;');
  });
});
