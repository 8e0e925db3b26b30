/**
 * Generators of near-valid inputs for the readers' fuzzing: a valid file or object with a few
 * mutations that real broken files have (a field removed, the wrong type, huge or negative numbers,
 * NaN/Infinity literals, duplicate keys, deep nesting, truncation, unicode junk), so most inputs get
 * past the first check and reach the deep ones. Random bytes alone are refused at byte 0.
 */
import fc from 'fast-check';

/** Values that break readers: limits of integers and floats, wrong types, empty and odd strings. */
export const WEIRD_VALUES: readonly unknown[] = [
  0,
  -0,
  -1,
  0.5,
  1.5,
  2 ** 31,
  2 ** 32,
  2 ** 40,
  2 ** 53,
  2 ** 53 + 2,
  2 ** 64,
  -(2 ** 40),
  1e308,
  -1e308,
  5e-324,
  Number.MAX_SAFE_INTEGER,
  NaN,
  Infinity,
  -Infinity,
  '',
  ' ',
  'auto',
  'null',
  'none',
  '__proto__',
  'constructor',
  '\u0000',
  '\ud800',
  '\ufeff',
  '😀'.repeat(3),
  'a'.repeat(10_000),
  null,
  true,
  false,
  [],
  {},
  [0, 0],
  [-1, 2 ** 40],
  [1, 0],
  { __proto__: null, toString: 1 },
];

/** A value nested `depth` levels: arrays or objects, which recursive code (stringify, String) cannot take. */
export function deepValue(depth: number, kind: 'array' | 'object'): unknown {
  let v: unknown = 0;
  for (let i = 0; i < depth; i++) v = kind === 'array' ? [v] : { a: v };
  return v;
}

export const weirdValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...WEIRD_VALUES) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.integer({ min: 500, max: 20_000 }),
        fc.constantFrom('array', 'object') as fc.Arbitrary<'array' | 'object'>,
      )
      .map(([d, k]) => deepValue(d, k)),
  },
);

type Path = (string | number)[];

/**
 * Paths into `v` (containers and leaves), the root included as []: at most `limit`, and no deeper
 * than 32 levels (a deep value mutated again is left whole; walking it is quadratic).
 */
function paths(v: unknown, prefix: Path = [], out: Path[] = [], limit = 2000): Path[] {
  out.push(prefix);
  if (out.length >= limit || prefix.length >= 32 || typeof v !== 'object' || v === null) return out;
  const entries = Array.isArray(v) ? v.map((x, i) => [i, x] as const) : Object.entries(v);
  for (const [k, x] of entries) {
    if (out.length >= limit) break;
    paths(x, [...prefix, k], out, limit);
  }
  return out;
}

function parentOf(root: unknown, path: Path): Record<string | number, unknown> | undefined {
  let cur: unknown = root;
  for (const k of path.slice(0, -1)) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return typeof cur === 'object' && cur !== null ? (cur as Record<string | number, unknown>) : undefined;
}

export type ValueOp =
  | { op: 'remove'; at: number }
  | { op: 'set'; at: number; value: unknown }
  | { op: 'add'; at: number; key: string; value: unknown }
  | { op: 'swap'; at: number; to: number };

const valueOp: fc.Arbitrary<ValueOp> = fc.oneof(
  fc.record({ op: fc.constant('remove' as const), at: fc.nat() }),
  { weight: 3, arbitrary: fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: weirdValue }) },
  fc.record({
    op: fc.constant('add' as const),
    at: fc.nat(),
    key: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__proto__', 'constructor', '__metadata__')),
    value: weirdValue,
  }),
  fc.record({ op: fc.constant('swap' as const), at: fc.nat(), to: fc.nat() }),
);

/** Applies the ops to a deep copy of `valid` (JSON-shaped): remove, replace, add or copy values. */
export function applyValueOps(valid: unknown, ops: readonly ValueOp[]): unknown {
  let root: unknown = structuredClone(valid);
  for (const o of ops) {
    const all = paths(root);
    const path = all[o.at % all.length]!;
    const key = path[path.length - 1];
    const parent = parentOf(root, path);
    if (o.op === 'set') {
      if (path.length === 0) root = o.value;
      else if (parent && key !== undefined) parent[key] = o.value;
    } else if (o.op === 'remove') {
      if (parent && key !== undefined) {
        if (Array.isArray(parent)) parent.splice(Number(key), 1);
        else delete parent[key];
      }
    } else if (o.op === 'add') {
      const target = path.length === 0 ? root : parent?.[key!];
      if (typeof target === 'object' && target !== null && !Array.isArray(target)) {
        // defineProperty: a "__proto__" key becomes data, as JSON.parse makes it.
        Object.defineProperty(target, o.key, {
          value: o.value,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else if (Array.isArray(target)) target.push(o.value);
    } else {
      // Copy one value over another (overlapping data_offsets, two tensors with one shape...).
      const from = all[o.to % all.length]!;
      const src = parentOf(root, from)?.[from[from.length - 1]!];
      // Shared, not cloned: a value nested thousands deep cannot be cloned (clone recurses).
      if (parent && key !== undefined && from.length > 0) parent[key] = src;
    }
  }
  return root;
}

/** `valid` with one to four value mutations. */
export function mutatedValue(valid: unknown): fc.Arbitrary<unknown> {
  return fc.array(valueOp, { minLength: 1, maxLength: 4 }).map((ops) => applyValueOps(valid, ops));
}

/** JSON.stringify that gives `null` for what it cannot write (a value nested too deep to recurse). */
function safeStringify(v: unknown): string {
  try {
    return JSON.stringify(v) ?? 'null';
  } catch {
    return 'null';
  }
}

const NUMBER_LITERAL = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

export type TextOp =
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; text: string }
  | { op: 'number'; nth: number; literal: string }
  | { op: 'duplicate-key'; nth: number; value: string }
  | { op: 'nest'; nth: number; depth: number; open: string; close: string }
  | { op: 'delete'; at: number; length: number };

const junk = fc.oneof(
  fc.constantFrom(
    '\ud800',
    '\udfff',
    '\ufeff',
    '\u0000',
    '\u202e',
    '\r',
    '\r\n',
    '"',
    '\\',
    ',',
    '}',
    ']',
    '{',
    '[',
    '\t',
  ),
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
);

const textOp: fc.Arbitrary<TextOp> = fc.oneof(
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), text: junk }),
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('number' as const),
      nth: fc.nat(),
      literal: fc.constantFrom(
        'NaN',
        'Infinity',
        '-Infinity',
        '1e999',
        '-1e999',
        '1e-999',
        '123456789012345678901234567890',
        '-0',
        '0.0000001',
        '1099511627776',
        '18446744073709551616',
        '9007199254740993',
        '-1',
        '"7"',
        'null',
        'true',
      ),
    }),
  },
  fc.record({
    op: fc.constant('duplicate-key' as const),
    nth: fc.nat(),
    value: weirdValue.map(safeStringify),
  }),
  fc.record({
    op: fc.constant('nest' as const),
    nth: fc.nat(),
    depth: fc.integer({ min: 100, max: 100_000 }),
    open: fc.constantFrom('[', '{"a":'),
    close: fc.constantFrom(']', '}'),
  }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 20 }) }),
);

function nthMatch(s: string, re: RegExp, nth: number): RegExpExecArray | undefined {
  const all = [...s.matchAll(re)];
  return all.length ? all[nth % all.length] : undefined;
}

/** Applies text mutations to JSON text: literals JSON forbids, duplicate keys, deep nesting, cuts. */
export function applyTextOps(text: string, ops: readonly TextOp[]): string {
  let s = text;
  for (const o of ops) {
    const len = s.length + 1;
    switch (o.op) {
      case 'truncate':
        s = s.slice(0, o.at % len);
        break;
      case 'insert': {
        const at = o.at % len;
        s = s.slice(0, at) + o.text + s.slice(at);
        break;
      }
      case 'delete': {
        const at = o.at % len;
        s = s.slice(0, at) + s.slice(at + o.length);
        break;
      }
      case 'number': {
        const m = nthMatch(s, NUMBER_LITERAL, o.nth);
        if (m) s = s.slice(0, m.index) + o.literal + s.slice(m.index + m[0].length);
        break;
      }
      case 'duplicate-key': {
        // `"k":` becomes `"k":WEIRD,"k":` (the last wins in JSON.parse) or the weird one is appended last.
        const m = nthMatch(s, /"((?:[^"\\]|\\.)*)"\s*:/g, o.nth);
        if (!m) break;
        if (o.nth % 2 === 0) {
          s = s.slice(0, m.index) + `${m[0]}${o.value},` + s.slice(m.index);
        } else {
          const close = s.indexOf('}', m.index);
          if (close > 0) s = s.slice(0, close) + `,${m[0]}${o.value}` + s.slice(close);
        }
        break;
      }
      case 'nest': {
        const m = nthMatch(s, NUMBER_LITERAL, o.nth);
        const nested = o.open.repeat(o.depth) + '0' + o.close.repeat(o.depth);
        if (m) s = s.slice(0, m.index) + nested + s.slice(m.index + m[0].length);
        else s = nested;
        break;
      }
    }
  }
  return s;
}

/** JSON text of `valid` with value mutations, text mutations, or both. */
export function mutatedJsonText(valid: unknown, pretty = false): fc.Arbitrary<string> {
  const write = (v: unknown): string => (pretty ? (JSON.stringify(v, null, 2) ?? 'null') : safeStringify(v));
  return fc.oneof(
    mutatedValue(valid).map(safeStringify),
    fc.array(textOp, { minLength: 1, maxLength: 3 }).map((ops) => applyTextOps(write(valid), ops)),
    fc
      .tuple(
        fc.array(valueOp, { minLength: 1, maxLength: 3 }),
        fc.array(textOp, { minLength: 1, maxLength: 2 }),
      )
      .map(([vo, to]) => applyTextOps(safeStringify(applyValueOps(valid, vo)), to)),
  );
}

/** `valid` itself now and then, so the harness also checks that good inputs are accepted. */
export function nearValid<T>(valid: T, mutant: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof({ weight: 1, arbitrary: fc.constant(valid) }, { weight: 15, arbitrary: mutant });
}

export type ByteOp =
  | { op: 'flip'; at: number; xor: number }
  | { op: 'truncate'; at: number }
  | { op: 'append'; bytes: Uint8Array }
  | { op: 'u64'; at: number; value: number };

/** Length fields that lie: 0, off by one, 2^32, 2^40, 2^53 and beyond. */
const LYING_LENGTHS = [0, 1, 7, 8, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 40, 2 ** 53 - 1, 2 ** 63, 2 ** 64 - 1];

const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('append' as const), bytes: fc.uint8Array({ maxLength: 16 }) }),
  fc.record({
    op: fc.constant('u64' as const),
    at: fc.constantFrom(0, 0, 0, 8),
    value: fc.oneof(fc.constantFrom(...LYING_LENGTHS), fc.nat()),
  }),
);

/** Applies byte mutations: bit flips, truncation, trailing junk, a little-endian u64 overwritten. */
export function applyByteOps(bytes: Uint8Array, ops: readonly ByteOp[]): Uint8Array {
  let b = bytes.slice();
  for (const o of ops) {
    if (o.op === 'flip') {
      if (b.length) b[o.at % b.length]! ^= o.xor;
    } else if (o.op === 'truncate') b = b.slice(0, o.at % (b.length + 1));
    else if (o.op === 'append') {
      const out = new Uint8Array(b.length + o.bytes.length);
      out.set(b);
      out.set(o.bytes, b.length);
      b = out;
    } else if (b.length >= o.at + 8) {
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      dv.setUint32(o.at, o.value % 2 ** 32, true);
      dv.setUint32(o.at + 4, Math.min(Math.floor(o.value / 2 ** 32), 2 ** 32 - 1), true);
    }
  }
  return b;
}

export function mutatedBytes(valid: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.array(byteOp, { minLength: 1, maxLength: 4 }).map((ops) => applyByteOps(valid, ops));
}

/** A safetensors file from a header object and a body, with its length field as given or as it should be. */
export function safetensorsFile(header: unknown, body: Uint8Array, claimedLength?: number): Uint8Array {
  let json: string;
  try {
    json = JSON.stringify(header) ?? 'null';
  } catch {
    json = 'null';
  }
  const h = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + h.length + body.length);
  const dv = new DataView(out.buffer);
  const len = claimedLength ?? h.length;
  dv.setUint32(0, len % 2 ** 32, true);
  dv.setUint32(4, Math.min(Math.floor(len / 2 ** 32), 2 ** 32 - 1), true);
  out.set(h, 8);
  out.set(body, 8 + h.length);
  return out;
}

/** Splits a safetensors file into its parsed header and body (for valid seed files only). */
export function splitSafetensors(file: Uint8Array): { header: unknown; body: Uint8Array } {
  const n = new DataView(file.buffer, file.byteOffset, file.byteLength).getUint32(0, true);
  return {
    header: JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n))),
    body: file.slice(8 + n),
  };
}

/** A valid safetensors file with a mutated header (offsets, shapes, dtypes...), body kept or cut. */
export function mutatedSafetensors(valid: Uint8Array): fc.Arbitrary<Uint8Array> {
  const { header, body } = splitSafetensors(valid);
  return fc.oneof(
    { weight: 3, arbitrary: mutatedBytes(valid) },
    {
      weight: 3,
      arbitrary: fc
        .tuple(mutatedValue(header), fc.option(fc.nat({ max: body.length }), { nil: undefined }))
        .map(([h, cut]) => safetensorsFile(h, cut === undefined ? body : body.slice(0, cut))),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(...LYING_LENGTHS), fc.nat({ max: 64 }))
        .map(([claimed, extra]) => safetensorsFile(header, body.slice(0, extra), claimed)),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  );
}

/** Text as bytes with invalid UTF-8 now and then (a lone continuation byte, a cut sequence, an overlong form). */
export function textBytes(text: fc.Arbitrary<string>): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(
      text,
      fc.option(
        fc.tuple(fc.nat(), fc.constantFrom([0x80], [0xc0, 0x80], [0xe2, 0x82], [0xff], [0xed, 0xa0, 0x80])),
      ),
    )
    .map(([t, bad]) => {
      const b = new TextEncoder().encode(t);
      if (!bad) return b;
      const [at, seq] = bad;
      const i = at % (b.length + 1);
      const out = new Uint8Array(b.length + seq.length);
      out.set(b.subarray(0, i));
      out.set(seq, i);
      out.set(b.subarray(i), i + seq.length);
      return out;
    });
}
