/**
 * Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
 * 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON header, then the data buffer.
 * Validation follows the Rust crate's `read_metadata` + `Metadata::validate`: tensors, sorted by
 * offsets, must tile the data buffer from 0 to its end with no holes and no overlaps.
 * Framework-free: plain typed arrays in and out, works in Node and the browser.
 */
import { SafetensorsError } from '../errors';
import { showValue } from '../util/show';

export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** One tensor's entry in the header; `begin`/`end` are absolute byte offsets in the file. */
export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** In file (offset) order. */
  tensors: TensorInfo[];
  metadata: Record<string, string>;
  /** Absolute offset of the data buffer (8 + header length). */
  dataStart: number;
}

/**
 * Raw tensor data as stored: F16 and BF16 come back as their Uint16Array bit patterns (use
 * `readTensorAsFloat32` or the bit helpers to get floats), BOOL as Uint8Array of 0/1.
 */
export type TensorData =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

export interface LoadedTensor {
  dtype: DType;
  shape: number[];
  data: TensorData;
}

export interface TensorToWrite {
  dtype: 'F32' | 'F16' | 'BF16' | 'I32' | 'I64';
  shape: number[];
  data: Float32Array | Int32Array | BigInt64Array;
}

/** The Rust crate's limit; a larger header is treated as corrupt rather than read. */
export const MAX_HEADER_BYTES = 100_000_000;

const DTYPE_SIZE: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** Position in the Rust `Dtype` enum (increasing alignment); the writer sorts by it, descending. */
const DTYPE_RANK: Record<DType, number> = {
  BOOL: 0,
  U8: 1,
  I8: 2,
  I16: 3,
  F16: 4,
  BF16: 5,
  I32: 6,
  F32: 7,
  F64: 8,
  I64: 9,
};

function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Short printable form of an untrusted header value, kept to one line (never throws, however deep). */
const show = (v: unknown): string => showValue(v);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Product of dims, or null when it leaves the exactly representable range (the crate's ValidationOverflow). */
function elementCount(shape: readonly number[]): number | null {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) return null;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Header parsing
// ---------------------------------------------------------------------------------------------

/** Parses and validates the header without touching (or allocating for) the tensor data. */
export function parseSafetensorsHeader(bytes: Uint8Array, fileName: string): SafetensorsHeader {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${fileName}: ${msg}`);
  };
  if (bytes.byteLength < 8) {
    fail(`file is ${bytes.byteLength} bytes, shorter than the 8-byte header length; not a safetensors file`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Two u32 halves: exact below 2^53, and anything above that is rejected as absurd anyway.
  const headerLen = dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
  if (headerLen > MAX_HEADER_BYTES) {
    fail(
      `header length ${headerLen} is absurd (limit ${MAX_HEADER_BYTES} bytes); file is corrupt or not safetensors`,
    );
  }
  const dataStart = 8 + headerLen;
  if (dataStart > bytes.byteLength) {
    fail(
      `header length ${headerLen} runs past the end of the ${bytes.byteLength}-byte file; file is truncated`,
    );
  }

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart));
  } catch {
    return fail('header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`);
  }
  if (!isPlainObject(json)) return fail(`header JSON is ${show(json)}, not an object`);

  const dataLen = bytes.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const name of Object.keys(json)) {
    const entry = json[name];
    if (name === '__metadata__') {
      if (entry === null) continue; // The crate reads it as Option<..>, so null means absent.
      if (!isPlainObject(entry)) return fail(`__metadata__ is ${show(entry)}, not an object of strings`);
      for (const k of Object.keys(entry)) {
        const v = entry[k];
        if (typeof v !== 'string')
          return fail(`__metadata__ key ${show(k)} has value ${show(v)}, not a string`);
        // defineProperty so a "__proto__" key is kept as data instead of hitting the prototype setter.
        Object.defineProperty(metadata, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      continue;
    }
    const t = `tensor ${show(name)}`;
    if (!isPlainObject(entry)) return fail(`${t} entry is ${show(entry)}, not an object`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (dtype === undefined) return fail(`${t} has no dtype`);
    if (shape === undefined) return fail(`${t} has no shape`);
    if (offsets === undefined) return fail(`${t} has no data_offsets`);
    if (typeof dtype !== 'string') return fail(`${t} dtype ${show(dtype)} is not a string`);
    if (!isDType(dtype)) {
      return fail(`${t} has unknown dtype ${show(dtype)} (supported: ${Object.keys(DTYPE_SIZE).join(', ')})`);
    }
    if (!Array.isArray(shape)) return fail(`${t} shape ${show(shape)} is not an array`);
    for (const d of shape as unknown[]) {
      if (!isUint(d))
        return fail(`${t} shape ${show(shape)} has dimension ${show(d)}, not a non-negative integer`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2) {
      return fail(`${t} data_offsets ${show(offsets)} is not a [begin, end] pair`);
    }
    const [begin, end] = offsets as unknown[];
    if (!isUint(begin) || !isUint(end)) {
      return fail(`${t} data_offsets ${show(offsets)} are not non-negative integers`);
    }
    if (begin > end) return fail(`${t} data_offsets [${begin}, ${end}] have begin after end`);
    if (end > dataLen) {
      return fail(`${t} data_offsets [${begin}, ${end}] lie outside the ${dataLen}-byte data buffer`);
    }
    const dims = shape as number[];
    const count = elementCount(dims);
    if (count === null) return fail(`${t} shape ${show(dims)} has too many elements`);
    const expected = count * DTYPE_SIZE[dtype];
    if (end - begin !== expected) {
      return fail(
        `${t} spans ${end - begin} bytes but shape ${show(dims)} of ${dtype} needs ${expected} bytes`,
      );
    }
    tensors.push({ name, dtype, shape: dims, begin, end });
  }

  // Same order as the crate: by (begin, end). Then the spans must tile [0, dataLen) exactly.
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev: TensorInfo | undefined;
  for (const info of tensors) {
    if (info.begin < cursor) {
      return fail(
        `tensor ${show(info.name)} data_offsets [${info.begin}, ${info.end}] overlap tensor ${show(prev?.name)}`,
      );
    }
    if (info.begin > cursor) {
      return fail(
        `tensor ${show(info.name)} starts at data offset ${info.begin}, leaving a hole of ${info.begin - cursor} bytes after offset ${cursor}`,
      );
    }
    cursor = info.end;
    prev = info;
  }
  if (cursor !== dataLen) {
    fail(`data buffer is ${dataLen} bytes but the tensors cover only ${cursor}; file has trailing bytes`);
  }

  for (const info of tensors) {
    info.begin += dataStart;
    info.end += dataStart;
  }
  return { tensors, metadata, dataStart };
}

// ---------------------------------------------------------------------------------------------
// Reading tensor data
// ---------------------------------------------------------------------------------------------

/** Checks that `info` fits `bytes`, so the readers never index past the buffer; returns the element count. */
function checkedCount(bytes: Uint8Array, info: TensorInfo): number {
  const size = DTYPE_SIZE[info.dtype];
  const count = elementCount(info.shape);
  if (
    !isUint(info.begin) ||
    !isUint(info.end) ||
    info.end > bytes.byteLength ||
    info.begin > info.end ||
    count === null ||
    info.end - info.begin !== count * size
  ) {
    throw new SafetensorsError(
      `tensor ${show(info.name)}: byte range [${info.begin}, ${info.end}] does not fit shape ${show(info.shape)} of ${info.dtype} in a ${bytes.byteLength}-byte file`,
    );
  }
  return count;
}

/** One copy of the span into a fresh (hence aligned) buffer, byte-swapped on a big-endian host. */
function copySpan(bytes: Uint8Array, info: TensorInfo): ArrayBuffer {
  const out = new Uint8Array(info.end - info.begin);
  out.set(bytes.subarray(info.begin, info.end));
  const size = DTYPE_SIZE[info.dtype];
  if (!LITTLE_ENDIAN && size > 1) {
    for (let i = 0; i < out.length; i += size) out.subarray(i, i + size).reverse();
  }
  return out.buffer;
}

/** Copies one tensor's data out as the typed array matching its dtype (see `TensorData`). */
export function readTensorData(bytes: Uint8Array, info: TensorInfo): TensorData {
  checkedCount(bytes, info);
  const buf = copySpan(bytes, info);
  switch (info.dtype) {
    case 'F64':
      return new Float64Array(buf);
    case 'F32':
      return new Float32Array(buf);
    case 'F16':
    case 'BF16':
      return new Uint16Array(buf);
    case 'I64':
      return new BigInt64Array(buf);
    case 'I32':
      return new Int32Array(buf);
    case 'I16':
      return new Int16Array(buf);
    case 'I8':
      return new Int8Array(buf);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buf);
  }
}

/** Parses, validates, and copies out every tensor (in file order). */
export function readSafetensors(
  bytes: Uint8Array,
  fileName: string,
): { tensors: Map<string, LoadedTensor>; metadata: Record<string, string> } {
  const header = parseSafetensorsHeader(bytes, fileName);
  const tensors = new Map<string, LoadedTensor>();
  for (const info of header.tensors) {
    tensors.set(info.name, { dtype: info.dtype, shape: info.shape, data: readTensorData(bytes, info) });
  }
  return { tensors, metadata: header.metadata };
}

let f16Table: Float32Array | undefined;

/** All 65536 half values, built once (256 KB) so large F16 checkpoints upcast with one lookup each. */
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = float16BitsToFloat32(h);
  }
  return f16Table;
}

/**
 * Copies one tensor out as a fresh Float32Array: F32 copied, F16/BF16 upcast exactly, F64 rounded
 * to nearest float32, integers converted (I64 beyond 2^24 loses precision, as any float32 would).
 */
export function readTensorAsFloat32(bytes: Uint8Array, info: TensorInfo): Float32Array {
  const n = checkedCount(bytes, info);
  if (info.dtype === 'F32') return new Float32Array(copySpan(bytes, info));
  const out = new Float32Array(n);
  // DataView reads are unaligned-safe and little-endian regardless of the host.
  const dv = new DataView(bytes.buffer, bytes.byteOffset + info.begin, info.end - info.begin);
  switch (info.dtype) {
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      break;
    case 'F16': {
      const table = halfTable();
      for (let i = 0; i < n; i++) out[i] = table[dv.getUint16(i * 2, true)] ?? NaN;
      break;
    }
    case 'BF16': {
      // bf16 is the top half of a float32: shift into place and reinterpret.
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = dv.getUint16(i * 2, true) << 16;
      break;
    }
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      break;
    case 'I16':
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(i * 2, true);
      break;
    case 'I8':
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
      break;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = dv.getUint8(i);
      break;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Float16 / BFloat16 bit conversions
// ---------------------------------------------------------------------------------------------

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function f32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0] ?? 0;
}

/**
 * IEEE binary16 bits of `x`, after rounding `x` to float32 (what a Float32Array holds), then to half
 * with round-to-nearest-even. Overflow gives ±Infinity, tiny values go subnormal or ±0, NaN stays NaN.
 */
export function float32ToFloat16Bits(x: number): number {
  const f = f32Bits(x);
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  const frac = f & 0x7fffff;
  if (exp === 0xff) return frac !== 0 ? sign | 0x7e00 | (frac >>> 13) : sign | 0x7c00; // NaN kept quiet
  if (exp >= 143) return sign | 0x7c00; // |x| >= 2^16: beyond half range even after rounding
  if (exp >= 113) {
    // Normal half. A carry out of the mantissa correctly bumps the exponent (and 65520 -> Infinity).
    const bits = ((exp - 112) << 10) | (frac >>> 13);
    const rem = frac & 0x1fff;
    return sign | (rem > 0x1000 || (rem === 0x1000 && (bits & 1) === 1) ? bits + 1 : bits);
  }
  if (exp < 102) return sign; // below half the smallest subnormal (2^-25): rounds to zero
  // Subnormal half: value = m * 2^-24 with m = significand >> (126 - exp); rounding may reach 0x400 (min normal).
  const sig = frac | 0x800000;
  const shift = 126 - exp;
  const m = sig >>> shift;
  const rem = sig & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  return sign | (rem > halfway || (rem === halfway && (m & 1) === 1) ? m + 1 : m);
}

/** Value of IEEE binary16 bits (exactly representable as float32). */
export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac !== 0 ? NaN : sign * Infinity;
  return sign * (1024 + frac) * 2 ** (exp - 25);
}

/** bfloat16 bits of `x` (rounded to float32 first) with round-to-nearest-even; NaN stays NaN. */
export function float32ToBf16Bits(x: number): number {
  const f = f32Bits(x);
  if ((f & 0x7f800000) === 0x7f800000 && (f & 0x7fffff) !== 0) return (f >>> 16) | 0x40; // quiet NaN
  // Adding 0x7fff plus the kept LSB rounds ties to even; the carry may reach Infinity, as it should.
  return ((f + 0x7fff + ((f >>> 16) & 1)) / 0x10000) & 0xffff;
}

/** Value of bfloat16 bits. */
export function bf16BitsToFloat32(h: number): number {
  scratchU32[0] = (h & 0xffff) << 16;
  return scratchF32[0] ?? NaN;
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/** Code-point order, which is the crate's byte-wise UTF-8 `String` order (UTF-16 units differ above U+D7FF). */
function compareNames(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const cx = x.value.codePointAt(0) ?? 0;
    const cy = y.value.codePointAt(0) ?? 0;
    if (cx !== cy) return cx - cy;
  }
}

interface Prepared {
  name: string;
  t: TensorToWrite;
  count: number;
  nbytes: number;
}

/**
 * Serialises tensors the way the Python/Rust library does: sorted by dtype alignment (descending)
 * then name, so every tensor's data starts aligned; `__metadata__` first in the header; header padded
 * with spaces to a multiple of 8. F16/BF16 are converted from Float32Array with round-to-nearest-even.
 */
export function writeSafetensors(
  tensors: Record<string, TensorToWrite> | Map<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const prepared: Prepared[] = [];
  for (const [name, t] of entries) {
    const where = `cannot write tensor ${show(name)}`;
    if (name === '__metadata__') throw new SafetensorsError(`${where}: the name is reserved for metadata`);
    if (!['F32', 'F16', 'BF16', 'I32', 'I64'].includes(t.dtype)) {
      throw new SafetensorsError(`${where}: dtype ${show(t.dtype)} cannot be written`);
    }
    if (!Array.isArray(t.shape) || !t.shape.every(isUint)) {
      throw new SafetensorsError(`${where}: shape ${show(t.shape)} must be non-negative integers`);
    }
    const wantCtor = t.dtype === 'I32' ? Int32Array : t.dtype === 'I64' ? BigInt64Array : Float32Array;
    if (!(t.data instanceof wantCtor)) {
      throw new SafetensorsError(`${where}: ${t.dtype} data must be a ${wantCtor.name}`);
    }
    const count = elementCount(t.shape);
    if (count === null || t.data.length !== count) {
      throw new SafetensorsError(
        `${where}: data has ${t.data.length} elements but shape ${show(t.shape)} needs ${count ?? 'too many'}`,
      );
    }
    prepared.push({ name, t, count, nbytes: count * DTYPE_SIZE[t.dtype] });
  }
  prepared.sort((a, b) => DTYPE_RANK[b.t.dtype] - DTYPE_RANK[a.t.dtype] || compareNames(a.name, b.name));

  // serde_json's compact output and JSON.stringify agree on strings, so the header is byte-identical.
  const parts: string[] = [];
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw new SafetensorsError(`cannot write metadata key ${show(k)}: value ${show(v)} is not a string`);
      }
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const p of prepared) {
    const info = `{"dtype":"${p.t.dtype}","shape":${JSON.stringify(p.t.shape)},"data_offsets":[${offset},${offset + p.nbytes}]}`;
    parts.push(`${JSON.stringify(p.name)}:${info}`);
    offset += p.nbytes;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLen = Math.ceil(json.length / 8) * 8;
  const dataStart = 8 + headerLen;

  const out = new Uint8Array(dataStart + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, headerLen % 2 ** 32, true);
  dv.setUint32(4, Math.floor(headerLen / 2 ** 32), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, dataStart); // space padding keeps the header valid JSON

  let pos = dataStart;
  for (const { t, count, nbytes } of prepared) {
    const data = t.data;
    if (t.dtype === 'F16' || t.dtype === 'BF16') {
      const conv = t.dtype === 'F16' ? float32ToFloat16Bits : float32ToBf16Bits;
      const src = data as Float32Array;
      for (let i = 0; i < count; i++) dv.setUint16(pos + i * 2, conv(src[i] ?? 0), true);
    } else if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(data.buffer, data.byteOffset, nbytes), pos);
    } else if (data instanceof BigInt64Array) {
      for (let i = 0; i < count; i++) dv.setBigInt64(pos + i * 8, data[i] ?? 0n, true);
    } else if (data instanceof Int32Array) {
      for (let i = 0; i < count; i++) dv.setInt32(pos + i * 4, data[i] ?? 0, true);
    } else {
      for (let i = 0; i < count; i++) dv.setFloat32(pos + i * 4, data[i] ?? 0, true);
    }
    pos += nbytes;
  }
  return out;
}
