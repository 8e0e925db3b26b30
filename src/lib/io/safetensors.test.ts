import { describe, it, expect } from 'vitest';
import { SafetensorsError } from '../errors';
import {
  bf16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBf16Bits,
  float32ToFloat16Bits,
  parseSafetensorsHeader,
  readSafetensors,
  readTensorAsFloat32,
  readTensorData,
  writeSafetensors,
  type TensorInfo,
  type TensorToWrite,
} from './safetensors.ts';

const FILE = 'weights/model.safetensors';

/** A file built by hand: u64 length + the exact header text (no padding) + the given data bytes. */
function craft(header: string | object, data: Uint8Array | number = 0, lengthField?: number): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const json = new TextEncoder().encode(text);
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  const dv = new DataView(out.buffer);
  const n = lengthField ?? json.length;
  dv.setUint32(0, n % 2 ** 32, true);
  dv.setUint32(4, Math.floor(n / 2 ** 32), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

function expectError(bytes: Uint8Array, ...parts: (string | RegExp)[]): SafetensorsError {
  let caught: unknown;
  try {
    parseSafetensorsHeader(bytes, FILE);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(SafetensorsError);
  const err = caught as SafetensorsError;
  expect(err.name).toBe('SafetensorsError');
  expect(err.message).toContain(FILE);
  expect(err.message).not.toContain('\n');
  for (const p of parts) {
    if (typeof p === 'string') expect(err.message).toContain(p);
    else expect(err.message).toMatch(p);
  }
  // The full reader must fail the same way.
  expect(() => readSafetensors(bytes, FILE)).toThrow(SafetensorsError);
  return err;
}

const f32 = (...xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);

describe('float16 conversions', () => {
  it('encodes known values', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.1, 0x2e66],
      [65504, 0x7bff],
      [65519, 0x7bff], // below the 65520 midpoint
      [65520, 0x7c00], // tie rounds to even, which is Infinity
      [1e9, 0x7c00],
      [-1e9, 0xfc00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [1023 * 2 ** -24, 0x03ff], // largest subnormal
      [1023.5 * 2 ** -24, 0x0400], // tie between subnormal 0x3ff and normal 0x400: even wins
      [2 ** -25, 0x0000], // tie between 0 and 2^-24: even (0)
      [1.5 * 2 ** -25, 0x0001],
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2 ulps: even
      [-(2 ** -24), 0x8001],
      [2 ** -30, 0x0000],
      [-(2 ** -30), 0x8000],
      [1 + 2 ** -11, 0x3c00], // tie: keep even mantissa
      [1 + 3 * 2 ** -11, 0x3c02], // tie: round up to even
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
      [1 + 2 ** -11 - 2 ** -20, 0x3c00],
    ];
    for (const [x, bits] of cases) expect([x, float32ToFloat16Bits(x)]).toEqual([x, bits]);
  });

  it('keeps NaN a NaN', () => {
    const h = float32ToFloat16Bits(NaN);
    expect(h & 0x7c00).toBe(0x7c00);
    expect(h & 0x3ff).not.toBe(0);
    expect(float16BitsToFloat32(h)).toBeNaN();
  });

  it('decodes known values', () => {
    expect(float16BitsToFloat32(0x3c00)).toBe(1);
    expect(float16BitsToFloat32(0xc000)).toBe(-2);
    expect(float16BitsToFloat32(0x7bff)).toBe(65504);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16BitsToFloat32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(float16BitsToFloat32(0x0400)).toBe(2 ** -14);
    expect(float16BitsToFloat32(0x7c00)).toBe(Infinity);
    expect(float16BitsToFloat32(0xfc00)).toBe(-Infinity);
    expect(float16BitsToFloat32(0x7e00)).toBeNaN();
    expect(float16BitsToFloat32(0x7c01)).toBeNaN();
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).toBe(true);
  });

  it('round-trips every non-NaN half exactly', () => {
    for (let h = 0; h < 0x10000; h++) {
      const isNaN16 = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN16) continue;
      const back = float32ToFloat16Bits(float16BitsToFloat32(h));
      if (back !== h) expect(back.toString(16)).toBe(h.toString(16));
    }
  });

  it('rounds random float32 values to the nearest half, ties to even', () => {
    // Reference: binary search in the sorted positive halves, with 65536 standing in for Infinity.
    const values: number[] = [];
    for (let h = 0; h <= 0x7bff; h++) values.push(float16BitsToFloat32(h));
    values.push(65536);
    const reference = (x: number): number => {
      const a = Math.abs(x);
      const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
      if (a >= 65536) return sign | 0x7c00;
      let lo = 0;
      let hi = values.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if ((values[mid] ?? 0) <= a) lo = mid;
        else hi = mid;
      }
      const dl = a - (values[lo] ?? 0);
      const dh = (values[hi] ?? 0) - a;
      const pick = dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi;
      return sign | pick;
    };
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    const buf = new Float32Array(1);
    const bits = new Uint32Array(buf.buffer);
    for (let i = 0; i < 20000; i++) {
      // Random bit patterns over the whole half range, plus exact halfway points between neighbours.
      bits[0] = (Math.floor(rand() * 0x48000000) | (rand() < 0.5 ? 0x80000000 : 0)) >>> 0;
      const x = buf[0] ?? 0;
      expect(float32ToFloat16Bits(x)).toBe(reference(x));
      const h = Math.floor(rand() * 0x7bff);
      const mid = ((values[h] ?? 0) + (values[h + 1] ?? 0)) / 2;
      expect(float32ToFloat16Bits(mid)).toBe(reference(mid));
    }
  });
});

describe('bfloat16 conversions', () => {
  const fromBits = (b: number) => new Float32Array(new Uint32Array([b]).buffer)[0] ?? NaN;

  it('encodes known values with round-to-nearest-even', () => {
    expect(float32ToBf16Bits(1)).toBe(0x3f80);
    expect(float32ToBf16Bits(-2)).toBe(0xc000);
    expect(float32ToBf16Bits(0)).toBe(0x0000);
    expect(float32ToBf16Bits(-0)).toBe(0x8000);
    expect(float32ToBf16Bits(fromBits(0x3f808000))).toBe(0x3f80); // tie, even stays
    expect(float32ToBf16Bits(fromBits(0x3f818000))).toBe(0x3f82); // tie, odd rounds up
    expect(float32ToBf16Bits(fromBits(0x3f808001))).toBe(0x3f81); // above tie
    expect(float32ToBf16Bits(fromBits(0x3f807fff))).toBe(0x3f80); // below tie
    expect(float32ToBf16Bits(fromBits(0x00018000))).toBe(0x0002); // subnormal tie, odd rounds up
    expect(float32ToBf16Bits(fromBits(0x00008000))).toBe(0x0000); // subnormal tie to zero
    expect(float32ToBf16Bits(fromBits(0x7f7fffff))).toBe(0x7f80); // max float32 overflows to Infinity
    expect(float32ToBf16Bits(fromBits(0xff7fffff))).toBe(0xff80);
    expect(float32ToBf16Bits(Infinity)).toBe(0x7f80);
    expect(float32ToBf16Bits(-Infinity)).toBe(0xff80);
    expect(bf16BitsToFloat32(float32ToBf16Bits(NaN))).toBeNaN();
    expect(bf16BitsToFloat32(float32ToBf16Bits(fromBits(0x7f800001)))).toBeNaN(); // payload only in low bits
  });

  it('decodes and round-trips every non-NaN bf16 exactly', () => {
    expect(bf16BitsToFloat32(0x3f80)).toBe(1);
    expect(bf16BitsToFloat32(0x0001)).toBe(fromBits(0x00010000));
    expect(bf16BitsToFloat32(0x7f80)).toBe(Infinity);
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0) continue;
      const back = float32ToBf16Bits(bf16BitsToFloat32(h));
      if (back !== h) expect(back.toString(16)).toBe(h.toString(16));
    }
  });
});

describe('writeSafetensors layout', () => {
  it('matches the Rust crate byte for byte (unpadded header)', () => {
    // test_serialization in huggingface/safetensors: header is exactly 64 bytes, no padding.
    const expected = [
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101,
      34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34,
      100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0,
      0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ];
    const out = writeSafetensors({
      'attn.0': { dtype: 'F32', shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) },
    });
    expect([...out]).toEqual(expected);
  });

  it('pads the header with spaces to a multiple of 8 (Rust crate vector)', () => {
    // test_serialization_forced_alignement: 65 bytes of JSON + 7 spaces.
    const out = writeSafetensors({
      attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) },
    });
    const json = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    expect(json.length).toBe(65);
    const expected = [
      72,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      ...[...json].map((c) => c.charCodeAt(0)),
      32,
      32,
      32,
      32,
      32,
      32,
      32,
    ];
    expected.push(...f32(0, 1, 2, 3, 4, 5));
    expect([...out]).toEqual(expected);
  });

  it('writes empty files and metadata like the Rust crate', () => {
    expect([...writeSafetensors({})]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    expect([...writeSafetensors(new Map(), { framework: 'pt' })]).toEqual([
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123, 34,
      102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32,
    ]);
  });

  it('orders by dtype alignment then name, with hand-computed bytes', () => {
    const out = writeSafetensors(
      new Map<string, TensorToWrite>([
        ['b', { dtype: 'F32', shape: [2], data: new Float32Array([1.5, -2]) }],
        ['a', { dtype: 'F16', shape: [1], data: new Float32Array([1]) }],
        ['z', { dtype: 'F32', shape: [], data: new Float32Array([3]) }],
        ['c', { dtype: 'I64', shape: [1], data: new BigInt64Array([-3n]) }],
        ['d', { dtype: 'BF16', shape: [1], data: new Float32Array([-2]) }],
      ]),
      { k: 'v' },
    );
    const json =
      '{"__metadata__":{"k":"v"},' +
      '"c":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},' +
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},' +
      '"z":{"dtype":"F32","shape":[],"data_offsets":[16,20]},' +
      '"d":{"dtype":"BF16","shape":[1],"data_offsets":[20,22]},' +
      '"a":{"dtype":"F16","shape":[1],"data_offsets":[22,24]}}';
    const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
    const expected = [
      padded.length & 0xff,
      padded.length >> 8,
      0,
      0,
      0,
      0,
      0,
      0,
      ...[...padded].map((c) => c.charCodeAt(0)),
    ];
    expected.push(0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff); // -3 as i64 LE
    expected.push(0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0); // 1.5, -2 as f32 LE
    expected.push(0x00, 0x00, 0x40, 0x40); // 3 as f32
    expected.push(0x00, 0xc0); // -2 as bf16
    expected.push(0x00, 0x3c); // 1 as f16
    expect([...out]).toEqual(expected);
    expect(padded.length % 8).toBe(0);
  });

  it('rejects bad input with named errors', () => {
    const bad = (t: Parameters<typeof writeSafetensors>[0], msg: RegExp) =>
      expect(() => writeSafetensors(t)).toThrow(msg);
    bad({ w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }, /"w".*2 elements.*needs 3/);
    bad({ w: { dtype: 'I32', shape: [2], data: new Float32Array(2) } }, /"w".*Int32Array/);
    bad({ w: { dtype: 'F32', shape: [-1], data: new Float32Array(0) } }, /"w".*shape/);
    bad({ __metadata__: { dtype: 'F32', shape: [0], data: new Float32Array(0) } }, /reserved/);
    expect(() => writeSafetensors({}, { k: 1 as unknown as string })).toThrow(SafetensorsError);
  });
});

describe('round trip', () => {
  it('round-trips several dtypes, metadata, empty and scalar tensors', () => {
    const n = 37;
    const src = new Float32Array(n);
    for (let i = 0; i < n; i++) src[i] = Math.sin(i * 1.7) * 10 ** ((i % 7) - 3);
    const ints = new Int32Array([0, 1, -1, 2 ** 31 - 1, -(2 ** 31)]);
    const longs = new BigInt64Array([0n, -1n, 2n ** 62n, -(2n ** 63n)]);
    const metadata = { format: 'pt', note: 'héllo "quoted" \n ✓ 𝄞', __proto__x: '1' };
    const bytes = writeSafetensors(
      {
        'layer.0.f32': { dtype: 'F32', shape: [n], data: src },
        'layer.0.f16': { dtype: 'F16', shape: [1, n], data: src },
        'layer.0.bf16': { dtype: 'BF16', shape: [n, 1], data: src },
        ints: { dtype: 'I32', shape: [5], data: ints },
        longs: { dtype: 'I64', shape: [2, 2], data: longs },
        empty: { dtype: 'F32', shape: [0], data: new Float32Array(0) },
        empty2d: { dtype: 'F16', shape: [3, 0], data: new Float32Array(0) },
        scalar: { dtype: 'F32', shape: [], data: new Float32Array([42.5]) },
      },
      metadata,
    );
    const { tensors, metadata: meta } = readSafetensors(bytes, FILE);
    expect(meta).toEqual(metadata);
    expect([...tensors.keys()].sort()).toEqual(
      ['empty', 'empty2d', 'ints', 'layer.0.bf16', 'layer.0.f16', 'layer.0.f32', 'longs', 'scalar'].sort(),
    );

    const get = (name: string) => {
      const t = tensors.get(name);
      if (!t) throw new Error(`missing ${name}`);
      return t;
    };
    expect(get('layer.0.f32').data).toEqual(src);
    expect(get('layer.0.f32').data).not.toBe(src);
    expect(get('ints')).toEqual({ dtype: 'I32', shape: [5], data: ints });
    expect(get('longs')).toEqual({ dtype: 'I64', shape: [2, 2], data: longs });
    expect(get('empty')).toEqual({ dtype: 'F32', shape: [0], data: new Float32Array(0) });
    expect(get('empty2d').shape).toEqual([3, 0]);
    expect(get('empty2d').data.length).toBe(0);
    expect(get('scalar')).toEqual({ dtype: 'F32', shape: [], data: new Float32Array([42.5]) });

    // Half types come back as raw bits; the float view must be within half/bf16 precision.
    const f16 = get('layer.0.f16');
    expect(f16.dtype).toBe('F16');
    expect(f16.data).toBeInstanceOf(Uint16Array);
    expect([...f16.data]).toEqual([...src].map(float32ToFloat16Bits));

    const header = parseSafetensorsHeader(bytes, FILE);
    const info = (name: string) => {
      const t = header.tensors.find((x) => x.name === name);
      if (!t) throw new Error(`missing ${name}`);
      return t;
    };
    const asF16 = readTensorAsFloat32(bytes, info('layer.0.f16'));
    const asBf16 = readTensorAsFloat32(bytes, info('layer.0.bf16'));
    for (let i = 0; i < n; i++) {
      const x = src[i] ?? 0;
      // Relative error bounds: half ulp of an 11-bit (f16) / 8-bit (bf16) significand; f16 subnormals are absolute.
      expect(Math.abs((asF16[i] ?? 0) - x)).toBeLessThanOrEqual(Math.max(Math.abs(x) * 2 ** -11, 2 ** -25));
      expect(Math.abs((asBf16[i] ?? 0) - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -8);
    }
    expect(readTensorAsFloat32(bytes, info('layer.0.f32'))).toEqual(src);
    expect(readTensorAsFloat32(bytes, info('ints'))).toEqual(new Float32Array(ints));
    expect(readTensorAsFloat32(bytes, info('longs'))).toEqual(new Float32Array([0, -1, 2 ** 62, -(2 ** 63)]));
    expect(readTensorAsFloat32(bytes, info('empty'))).toEqual(new Float32Array(0));
    expect(readTensorAsFloat32(bytes, info('scalar'))).toEqual(new Float32Array([42.5]));
  });

  it('reports absolute offsets and dataStart', () => {
    const bytes = writeSafetensors({
      a: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
      b: { dtype: 'F32', shape: [1], data: new Float32Array([3]) },
    });
    const h = parseSafetensorsHeader(bytes, FILE);
    const headerLen = new DataView(bytes.buffer).getUint32(0, true);
    expect(h.dataStart).toBe(8 + headerLen);
    expect(h.tensors).toEqual([
      { name: 'a', dtype: 'F32', shape: [2], begin: h.dataStart, end: h.dataStart + 8 },
      { name: 'b', dtype: 'F32', shape: [1], begin: h.dataStart + 8, end: h.dataStart + 12 },
    ]);
    expect(h.metadata).toEqual({});
  });

  it('reads every dtype from unaligned offsets inside a larger buffer', () => {
    // 1-byte tensors first so the following multi-byte data starts at odd offsets.
    const data = new Uint8Array(1 + 1 + 1 + 2 + 8 + 8 + 2 + 2 + 4);
    const dv = new DataView(data.buffer);
    let p = 0;
    const spans: Record<string, [string, number[], number, number]> = {};
    const put = (name: string, dtype: string, shape: number[], size: number, write: (o: number) => void) => {
      write(p);
      spans[name] = [dtype, shape, p, p + size];
      p += size;
    };
    put('bool', 'BOOL', [1], 1, (o) => dv.setUint8(o, 1));
    put('u8', 'U8', [1], 1, (o) => dv.setUint8(o, 200));
    put('i8', 'I8', [1], 1, (o) => dv.setInt8(o, -100));
    put('i16', 'I16', [1], 2, (o) => dv.setInt16(o, -30000, true));
    put('f64', 'F64', [1], 8, (o) => dv.setFloat64(o, Math.PI, true));
    put('i64', 'I64', [1], 8, (o) => dv.setBigInt64(o, -(2n ** 40n), true));
    put('f16', 'F16', [1], 2, (o) => dv.setUint16(o, 0xc100, true)); // -2.5
    put('bf16', 'BF16', [1], 2, (o) => dv.setUint16(o, 0x4049, true)); // 3.140625
    put('f32', 'F32', [], 4, (o) => dv.setFloat32(o, -0.75, true));
    const header = Object.fromEntries(
      Object.entries(spans).map(([k, [dtype, shape, b, e]]) => [k, { dtype, shape, data_offsets: [b, e] }]),
    );
    const file = craft(header, data); // header text is unpadded, so dataStart is arbitrary
    const wrapped = new Uint8Array(file.length + 3);
    wrapped.set(file, 3);
    const bytes = wrapped.subarray(3); // non-zero byteOffset into a larger buffer

    const { tensors } = readSafetensors(bytes, FILE);
    expect(tensors.get('bool')?.data).toEqual(new Uint8Array([1]));
    expect(tensors.get('u8')?.data).toEqual(new Uint8Array([200]));
    expect(tensors.get('i8')?.data).toEqual(new Int8Array([-100]));
    expect(tensors.get('i16')?.data).toEqual(new Int16Array([-30000]));
    expect(tensors.get('f64')?.data).toEqual(new Float64Array([Math.PI]));
    expect(tensors.get('i64')?.data).toEqual(new BigInt64Array([-(2n ** 40n)]));
    expect(tensors.get('f16')?.data).toEqual(new Uint16Array([0xc100]));
    expect(tensors.get('bf16')?.data).toEqual(new Uint16Array([0x4049]));
    expect(tensors.get('f32')?.data).toEqual(new Float32Array([-0.75]));

    const h = parseSafetensorsHeader(bytes, FILE);
    const asF32 = Object.fromEntries(h.tensors.map((t) => [t.name, [...readTensorAsFloat32(bytes, t)]]));
    expect(asF32).toEqual({
      bool: [1],
      u8: [200],
      i8: [-100],
      i16: [-30000],
      f64: [Math.fround(Math.PI)],
      i64: [-(2 ** 40)],
      f16: [-2.5],
      bf16: [3.140625],
      f32: [-0.75],
    });
  });

  it('refuses a TensorInfo that does not fit the bytes', () => {
    const bytes = writeSafetensors({ a: { dtype: 'F32', shape: [2], data: new Float32Array(2) } });
    const h = parseSafetensorsHeader(bytes, FILE);
    const a = h.tensors[0] as TensorInfo;
    expect(() => readTensorAsFloat32(bytes, { ...a, end: a.end + 4 })).toThrow(SafetensorsError);
    expect(() => readTensorAsFloat32(bytes, { ...a, shape: [3] })).toThrow(/"a"/);
    expect(() => readTensorData(bytes.subarray(0, bytes.length - 1), a)).toThrow(SafetensorsError);
  });
});

describe('header validation', () => {
  const one = (entry: unknown, dataLen = 4) => craft({ w: entry }, dataLen);
  const ok = { dtype: 'F32', shape: [1], data_offsets: [0, 4] };

  it('accepts the baseline used below', () => {
    expect(parseSafetensorsHeader(one(ok), FILE).tensors).toHaveLength(1);
  });

  it('rejects files shorter than 8 bytes', () => {
    expectError(new Uint8Array(0), 'shorter than the 8-byte');
    expectError(new Uint8Array(7), 'shorter than the 8-byte');
  });

  it('rejects a header length past the end of the file', () => {
    expectError(craft('{}', 0, 3), 'runs past the end');
    expectError(craft('{}', 0, 99_999_999), 'runs past the end');
  });

  it('fails fast on an absurd header length without allocating for it', () => {
    const origDecoder = globalThis.TextDecoder;
    let decoded = 0;
    // Any attempt to decode (i.e. to read the header) would be a bug at this point.
    globalThis.TextDecoder = class extends origDecoder {
      override decode(...args: Parameters<TextDecoder['decode']>): string {
        decoded++;
        return super.decode(...args);
      }
    };
    try {
      const t0 = performance.now();
      expectError(craft('{}', 8, 2 ** 40), 'absurd', '1099511627776');
      expectError(new Uint8Array([255, 255, 255, 255, 255, 255, 255, 255, 123, 125]), 'absurd');
      expectError(craft('{}', 8, 100_000_001), 'absurd');
      expect(performance.now() - t0).toBeLessThan(500);
      expect(decoded).toBe(0);
    } finally {
      globalThis.TextDecoder = origDecoder;
    }
  });

  it('rejects a header that is not UTF-8, not JSON, or not an object', () => {
    const bad = new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe]);
    expectError(bad, 'not valid UTF-8');
    expectError(craft('{"w": '), 'not valid JSON');
    expectError(craft('[1,2]'), 'not an object');
    expectError(craft('null'), 'not an object');
    expectError(craft('"x"'), 'not an object');
  });

  it('rejects entries with missing or mistyped fields', () => {
    expectError(one({ shape: [1], data_offsets: [0, 4] }), '"w"', 'no dtype');
    expectError(one({ dtype: 'F32', data_offsets: [0, 4] }), '"w"', 'no shape');
    expectError(one({ dtype: 'F32', shape: [1] }), '"w"', 'no data_offsets');
    expectError(one('F32'), '"w"', 'not an object');
    expectError(one([1, 2]), '"w"', 'not an object');
    expectError(one({ ...ok, dtype: 4 }), '"w"', 'dtype 4 is not a string');
    expectError(one({ ...ok, shape: '1' }), '"w"', 'not an array');
    expectError(one({ ...ok, shape: ['1'] }), '"w"', 'not a non-negative integer');
    expectError(one({ ...ok, data_offsets: [0] }), '"w"', 'not a [begin, end] pair');
    expectError(one({ ...ok, data_offsets: { begin: 0, end: 4 } }), '"w"', 'not a [begin, end] pair');
  });

  it('rejects unknown dtypes', () => {
    expectError(one({ ...ok, dtype: 'F8_E4M3', shape: [4] }), '"w"', 'unknown dtype "F8_E4M3"');
    expectError(one({ ...ok, dtype: 'float32' }), '"w"', 'unknown dtype "float32"');
  });

  it('rejects negative, fractional, or overflowing dims', () => {
    expectError(one({ ...ok, shape: [-1] }), '"w"', 'dimension -1');
    expectError(one({ ...ok, shape: [1.5] }), '"w"', 'dimension 1.5');
    expectError(one({ ...ok, shape: [2 ** 30, 2 ** 30, 2 ** 30] }), '"w"', 'too many elements');
  });

  it('rejects bad offsets', () => {
    expectError(one({ ...ok, data_offsets: [0, 4.5] }), '"w"', 'not non-negative integers');
    expectError(one({ ...ok, data_offsets: [-4, 0] }), '"w"', 'not non-negative integers');
    expectError(one({ ...ok, data_offsets: ['0', '4'] }), '"w"', 'not non-negative integers');
    expectError(one({ ...ok, shape: [0], data_offsets: [4, 0] }), '"w"', 'begin after end');
    expectError(one({ ...ok, data_offsets: [4, 8] }), '"w"', 'outside the 4-byte data buffer');
    expectError(one({ ...ok, data_offsets: [2 ** 40, 2 ** 40 + 4] }), '"w"', 'outside');
  });

  it('rejects a span that does not match shape and dtype', () => {
    expectError(one({ ...ok, shape: [2] }), '"w"', 'spans 4 bytes', 'needs 8 bytes');
    expectError(craft({ w: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 8] } }, 8), '"w"', 'needs 12');
  });

  it('rejects overlapping tensors', () => {
    const h = {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    };
    expectError(craft(h, 12), '"b"', 'overlap', '"a"');
    const same = {
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      b: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
    };
    expectError(craft(same, 4), 'overlap');
  });

  it('rejects holes and trailing bytes (spans must tile the buffer)', () => {
    const hole = {
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
    };
    expectError(craft(hole, 12), '"b"', 'hole of 4 bytes');
    expectError(craft({ b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), '"b"', 'hole');
    expectError(one(ok, 8), 'trailing bytes');
    expectError(craft('{}', 1), 'trailing bytes');
  });

  it('accepts empty tensors anywhere and out-of-order entries', () => {
    const h = {
      z: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
      e: { dtype: 'F16', shape: [0, 5], data_offsets: [4, 4] },
      a: { dtype: 'I32', shape: [], data_offsets: [0, 4] },
      end: { dtype: 'U8', shape: [0], data_offsets: [8, 8] },
    };
    const parsed = parseSafetensorsHeader(craft(h, 8), FILE);
    expect(parsed.tensors.map((t) => t.name)).toEqual(['a', 'e', 'z', 'end']);
    expect(parseSafetensorsHeader(craft('{}'), FILE).tensors).toEqual([]);
  });

  it('requires __metadata__ to map strings to strings', () => {
    expectError(craft({ __metadata__: ['a'] }), '__metadata__', 'not an object');
    expectError(craft({ __metadata__: 'a' }), '__metadata__');
    expectError(craft({ __metadata__: { k: 1 } }), '__metadata__', '"k"', 'not a string');
    expectError(craft({ __metadata__: { k: null } }), '"k"');
    expect(parseSafetensorsHeader(craft({ __metadata__: null }), FILE).metadata).toEqual({});
    const odd = parseSafetensorsHeader(craft('{"__metadata__":{"__proto__":"x","a":"b"}}'), FILE).metadata;
    expect(Object.keys(odd)).toEqual(['__proto__', 'a']);
    expect(Object.getPrototypeOf(odd)).toBe(Object.prototype);
  });
});

describe('safetensors: fuzzing findings (src/lib/fuzz)', () => {
  it('names a header value nested thousands deep with SafetensorsError (printing it recursed into RangeError)', () => {
    const deep = '['.repeat(10_000) + ']'.repeat(10_000);
    expect(() =>
      parseSafetensorsHeader(craft(`{"w":{"dtype":${deep},"shape":[],"data_offsets":[0,4]}}`, 4), FILE),
    ).toThrow(SafetensorsError);
    expect(() => parseSafetensorsHeader(craft(`{"__metadata__":${deep}}`), FILE)).toThrow(SafetensorsError);
  });

  it('refuses a header length of 2^40 without allocating for it', () => {
    const before = process.memoryUsage().arrayBuffers;
    expect(() => parseSafetensorsHeader(craft('{}', 0, 2 ** 40), FILE)).toThrow(/absurd/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(2 ** 20);
  });
});
