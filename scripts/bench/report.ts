/** The printed table: plain text, columns padded, numbers right-aligned. */
import type { JobResult } from './measure';

const fmt = (x: number, digits = 0): string =>
  x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

export function table(rows: JobResult[]): string {
  const head = ['engine', 'measurement', 'params trained', 'median ms', 'min-max ms', 'tokens/s', 'cpu ms'];
  const cells = rows.map((r) => {
    const trained = r.trainedParams === null ? '-' : fmt(r.trainedParams);
    return r.timing.ok
      ? [
          r.engine,
          r.what,
          trained,
          fmt(r.timing.value.medianMs, 1),
          `${fmt(r.timing.value.minMs, 0)}-${fmt(r.timing.value.maxMs, 0)}`,
          fmt(r.timing.value.tokensPerSec),
          fmt(r.timing.value.cpuMedianMs, 1),
        ]
      : [r.engine, r.what, '', 'n/a', '', `not measured: ${r.timing.reason}`];
  });
  const right = [false, false, true, true, true, true, true];
  // A reason in the last column runs on unpadded, so it does not widen the numeric columns.
  const widths = head.map((h, i) =>
    Math.max(
      h.length,
      ...cells.filter((c) => i < 3 || !c[5]!.startsWith('not measured')).map((c) => c[i]!.length),
    ),
  );
  const line = (c: string[]): string =>
    c
      .map((x, i) =>
        i === 5 && x.startsWith('not measured')
          ? x
          : right[i]
            ? x.padStart(widths[i]!)
            : x.padEnd(widths[i]!),
      )
      .join(' | ')
      .trimEnd();
  const sep = widths.map((w) => '-'.repeat(w)).join('-+-');
  return [line(head), sep, ...cells.map(line)].join('\n');
}

export interface Ratio {
  label: string;
  /** From wall-clock medians. */
  wall: number | null;
  /** From CPU-time medians (less sensitive to other processes). */
  cpu: number | null;
  aim?: { op: '<=' | '>='; target: number };
}

export function ratios(rs: Ratio[]): string {
  const w = Math.max(...rs.map((r) => r.label.length));
  const x = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(2)}x`).padStart(7);
  const met = (r: Ratio, v: number | null): string =>
    v === null || !r.aim
      ? ''
      : (r.aim.op === '<=' ? v <= r.aim.target : v >= r.aim.target)
        ? 'met'
        : 'NOT met';
  const lines = [`${''.padEnd(w)}     wall      cpu   aim`];
  for (const r of rs) {
    const aim =
      r.aim && r.wall !== null && r.cpu !== null
        ? `${r.aim.op} ${r.aim.target}x: wall ${met(r, r.wall)}, cpu ${met(r, r.cpu)}`
        : r.aim
          ? `${r.aim.op} ${r.aim.target}x`
          : '';
    lines.push(`${r.label.padEnd(w)}  ${x(r.wall)}  ${x(r.cpu)}   ${aim}`.trimEnd());
  }
  return lines.join('\n');
}

export { fmt };
