/**
 * A short one-line printable form of any value read from outside, for error messages. Safe on
 * anything JSON or a structured clone can hold: `JSON.stringify` and `String` both recurse, so a
 * value nested a few thousand levels deep (a 30 KB file can do that) would throw RangeError from
 * inside the very message that reports the fault; this walks at most `MAX_DEPTH` levels instead.
 */
const MAX_DEPTH = 4;
const MAX_ITEMS = 8;

function walk(v: unknown, depth: number): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 77)}...` : v);
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v === null || typeof v === 'boolean' || v === undefined) return String(v);
  if (typeof v !== 'object') return typeof v;
  if (depth >= MAX_DEPTH) return Array.isArray(v) ? '[...]' : '{...}';
  if (Array.isArray(v)) {
    const items = v.slice(0, MAX_ITEMS).map((x) => walk(x, depth + 1));
    if (v.length > MAX_ITEMS) items.push('...');
    return `[${items.join(',')}]`;
  }
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${v.byteLength} bytes)`;
  const keys = Object.keys(v);
  const items = keys
    .slice(0, MAX_ITEMS)
    .map((k) => `${JSON.stringify(k)}:${walk((v as Record<string, unknown>)[k], depth + 1)}`);
  if (keys.length > MAX_ITEMS) items.push('...');
  return `{${items.join(',')}}`;
}

/** `v` as short JSON-like text, at most `max` characters; never throws. */
export function showValue(v: unknown, max = 60): string {
  const s = walk(v, 0);
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}
