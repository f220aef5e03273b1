/** Renders rows under a header, columns padded to their widest cell; `-` stands for an empty cell. */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  // One line per row: a line break inside a cell (an error message) becomes a space.
  const cells = rows.map((row) =>
    headers.map((_, i) =>
      row[i] === undefined || row[i] === '' ? '-' : row[i].replace(/\s*[\r\n]+\s*/g, ' '),
    ),
  );
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (row: readonly string[]) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(headers), ...cells.map(line)].join('\n')}\n`;
}

/** Renders `key  value` lines with the keys aligned; pairs with an undefined value are left out. */
export function renderPairs(pairs: readonly (readonly [string, string | number | undefined])[]): string {
  const shown = pairs.filter(
    (p): p is readonly [string, string | number] => p[1] !== undefined && p[1] !== '',
  );
  const width = Math.max(0, ...shown.map(([key]) => key.length));
  return `${shown.map(([key, value]) => `${key.padEnd(width)}  ${value}`).join('\n')}\n`;
}

/** A short age: `42s`, `7m`, `3h12m`, `5d4h`. Negative ages (clock skew) show as `0s`. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${m % 60 ? `${m % 60}m` : ''}`;
  const d = Math.floor(h / 24);
  return `${d}d${h % 24 ? `${h % 24}h` : ''}`;
}

/** Elapsed time for progress lines: `3.4s`, `2m05s`. */
export function formatElapsed(ms: number): string {
  const seconds = Math.max(0, ms) / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const m = Math.floor(seconds / 60);
  return `${m}m${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;
}

/** Seconds from an ISO timestamp to `nowMs`; undefined when the timestamp does not parse. */
export function secondsSince(iso: string | undefined, nowMs: number): number | undefined {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : Math.max(0, (nowMs - t) / 1000);
}
