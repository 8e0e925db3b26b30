/**
 * A minimal WebAssembly module emitter: just enough of the binary format (WebAssembly Core
 * Specification 2.0, chapter 5 "Binary Format", and the fixed-width SIMD proposal's opcodes, now
 * part of 2.0) to write our SIMD kernels (simd.ts) as bytes from TypeScript, with no toolchain and
 * no npm dependency. A module here imports one memory (`env.memory`, the wasm backend's heap) and
 * exports functions; a function body is a flat list of instructions built with `Body`.
 */

export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;
export type ValType = typeof I32 | typeof F32 | typeof V128;

/** Unsigned LEB128 (spec 5.2.2). */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of a 32-bit integer (spec 5.2.2). */
function sleb(n: number): number[] {
  const out: number[] = [];
  n |= 0;
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function f32Bytes(x: number): number[] {
  return [...new Uint8Array(new Float32Array([x]).buffer)];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(s: string): number[] {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
}

/** SIMD instructions: prefix 0xfd, then the opcode as unsigned LEB128. */
const SIMD = {
  load: 0x00,
  store: 0x0b,
  const: 0x0c,
  f32x4Splat: 0x13,
  f32x4ExtractLane: 0x1f,
  f32x4Nearest: 0x6a,
  i32x4Shl: 0xab,
  i32x4Add: 0xae,
  f32x4Add: 0xe4,
  f32x4Sub: 0xe5,
  f32x4Mul: 0xe6,
  f32x4Div: 0xe7,
  f32x4Min: 0xe8,
  f32x4Max: 0xe9,
  i32x4TruncSatF32x4S: 0xf8,
  f32x4Sqrt: 0xe3,
  /** Relaxed SIMD proposal (WebAssembly 3.0): a * b + c, fused or not as the engine chooses. */
  f32x4RelaxedMadd: 0x105,
} as const;

/**
 * One function body. Control flow follows the spec's structured form: `loopWhile` is
 * `block; loop; <cond>; i32.eqz; br_if 1; <body>; br 0; end; end`.
 */
export class Body {
  readonly code: number[] = [];
  readonly locals: ValType[] = [];
  constructor(readonly params: ValType[]) {}

  /** A new local of type t; returns its index (after the parameters). */
  local(t: ValType): number {
    this.locals.push(t);
    return this.params.length + this.locals.length - 1;
  }

  get(i: number): this {
    this.code.push(0x20, ...uleb(i));
    return this;
  }
  set(i: number): this {
    this.code.push(0x21, ...uleb(i));
    return this;
  }
  tee(i: number): this {
    this.code.push(0x22, ...uleb(i));
    return this;
  }
  i32(n: number): this {
    this.code.push(0x41, ...sleb(n));
    return this;
  }
  f32(x: number): this {
    this.code.push(0x43, ...f32Bytes(x));
    return this;
  }
  op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }
  add(): this {
    return this.op(0x6a);
  }
  sub(): this {
    return this.op(0x6b);
  }
  mul(): this {
    return this.op(0x6c);
  }
  and(): this {
    return this.op(0x71);
  }
  ltS(): this {
    return this.op(0x48);
  }
  eq(): this {
    return this.op(0x46);
  }
  select(): this {
    return this.op(0x1b);
  }
  /** f32.load / f32.store with a constant byte offset (alignment hint 4 bytes). */
  f32Load(offset = 0): this {
    return this.op(0x2a, 2, ...uleb(offset));
  }
  f32Store(offset = 0): this {
    return this.op(0x38, 2, ...uleb(offset));
  }
  /** v128.load / v128.store (alignment hint 4 bytes: tensors are only float-aligned). */
  vLoad(offset = 0): this {
    return this.simd(SIMD.load).op(2, ...uleb(offset));
  }
  vStore(offset = 0): this {
    return this.simd(SIMD.store).op(2, ...uleb(offset));
  }
  /** v128.const with all four f32 lanes x. */
  vSplatConst(x: number): this {
    const b = f32Bytes(x);
    return this.simd(SIMD.const).op(...b, ...b, ...b, ...b);
  }
  /** v128.const of four i32 lanes n. */
  vI32Const(n: number): this {
    const b = [...new Uint8Array(new Int32Array([n]).buffer)];
    return this.simd(SIMD.const).op(...b, ...b, ...b, ...b);
  }
  splat(): this {
    return this.simd(SIMD.f32x4Splat);
  }
  lane(i: number): this {
    return this.simd(SIMD.f32x4ExtractLane).op(i);
  }
  vAdd(): this {
    return this.simd(SIMD.f32x4Add);
  }
  vSub(): this {
    return this.simd(SIMD.f32x4Sub);
  }
  vMul(): this {
    return this.simd(SIMD.f32x4Mul);
  }
  /**
   * a b + c of the three f32x4 on the stack (a, b, c in that order): relaxed SIMD's f32x4.relaxed_madd,
   * one FMA instruction where the CPU has one, or a mul then an add (its rounding is the engine's
   * choice). Emit it only where `relaxedSimd()` says the engine validates it.
   */
  vMadd(): this {
    return this.simd(SIMD.f32x4RelaxedMadd);
  }
  vDiv(): this {
    return this.simd(SIMD.f32x4Div);
  }
  vMin(): this {
    return this.simd(SIMD.f32x4Min);
  }
  vMax(): this {
    return this.simd(SIMD.f32x4Max);
  }
  vSqrt(): this {
    return this.simd(SIMD.f32x4Sqrt);
  }
  vNearest(): this {
    return this.simd(SIMD.f32x4Nearest);
  }
  vTruncSatI32(): this {
    return this.simd(SIMD.i32x4TruncSatF32x4S);
  }
  vI32Add(): this {
    return this.simd(SIMD.i32x4Add);
  }
  vI32Shl(): this {
    return this.simd(SIMD.i32x4Shl);
  }
  private simd(opcode: number): this {
    this.code.push(0xfd, ...uleb(opcode));
    return this;
  }

  /** if (i32 on the stack) then. */
  when(then: () => void): this {
    this.op(0x04, 0x40);
    then();
    return this.op(0x0b);
  }

  /** while (cond) body: cond leaves an i32 on the stack. */
  loopWhile(cond: () => void, body: () => void): this {
    this.op(0x02, 0x40, 0x03, 0x40);
    cond();
    this.op(0x45, 0x0d, 1); // i32.eqz; br_if 1 (out of the block)
    body();
    this.op(0x0c, 0, 0x0b, 0x0b); // br 0 (back to the loop); end; end
    return this;
  }

  /** locals[i] += step (i32). */
  inc(i: number, step: number | (() => void)): this {
    this.get(i);
    if (typeof step === 'number') this.i32(step);
    else step();
    return this.add().set(i);
  }

  /** memory.fill(dst, 0, bytes) from the stack order dst, value, length (bulk memory). */
  fill(): this {
    return this.op(0xfc, ...uleb(11), 0);
  }

  encode(): number[] {
    // Locals are declared as runs of one type (spec 5.5.13).
    const runs: number[][] = [];
    for (let i = 0; i < this.locals.length;) {
      let j = i;
      while (j < this.locals.length && this.locals[j] === this.locals[i]) j++;
      runs.push([...uleb(j - i), this.locals[i]!]);
      i = j;
    }
    const body = [...vec(runs), ...this.code, 0x0b];
    return [...uleb(body.length), ...body];
  }
}

let relaxed: boolean | undefined;

/**
 * Whether this engine validates relaxed SIMD (f32x4.relaxed_madd): Chromium 114 and later by default;
 * Node 20's V8 (11.3) only with --experimental-wasm-relaxed-simd, Node 22 and later by default.
 * Decided once, on a module of one function `(v128, v128, v128) -> v128` that is one relaxed_madd.
 */
export function relaxedSimd(): boolean {
  if (relaxed === undefined) {
    const f = new Body([V128, V128, V128]);
    f.get(0).get(1).get(2).vMadd();
    const bytes = [
      ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
      ...[0x01, 0x08, 0x01, 0x60, 0x03, V128, V128, V128, 0x01, V128], // type (v128 x3) -> v128
      ...[0x03, 0x02, 0x01, 0x00], // one function of type 0
    ];
    const body = f.encode();
    bytes.push(0x0a, ...uleb(body.length + 1), 0x01, ...body);
    try {
      relaxed = WebAssembly.validate(new Uint8Array(bytes));
    } catch {
      relaxed = false;
    }
  }
  return relaxed;
}

export interface FunctionDef {
  name: string;
  body: Body;
  results: ValType[];
}

/**
 * The module's bytes: one imported memory (`env.memory`) and the exported functions. The memory is
 * declared unshared with no maximum, or, with `sharedMaxPages`, shared with that maximum (a shared
 * memory's import must declare shared and a maximum: the threaded wasm build's heap).
 */
export function emitModule(functions: FunctionDef[], sharedMaxPages?: number): Uint8Array<ArrayBuffer> {
  const section = (id: number, content: number[]): number[] => [id, ...uleb(content.length), ...content];
  const limits = sharedMaxPages === undefined ? [0x00, 0x00] : [0x03, 0x00, ...uleb(sharedMaxPages)];
  const types = functions.map((f) => [
    0x60,
    ...vec(f.body.params.map((t) => [t])),
    ...vec(f.results.map((t) => [t])),
  ]);
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec(types)),
    // memory; limits {min 0} (flag 0), or {min 0, max, shared} (flag 3, threads proposal)
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, ...limits]])),
    ...section(3, vec(functions.map((_, i) => uleb(i)))),
    ...section(7, vec(functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]))),
    ...section(10, vec(functions.map((f) => f.body.encode()))),
  ];
  return new Uint8Array(bytes);
}
