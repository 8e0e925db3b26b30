/**
 * Frozen weights stored as f16 halves, two to a 32-bit word, for the WebGPU path: half the GPU
 * memory and half the bytes a product reads for the base model, on any adapter. WGSL's
 * `unpack2x16float` is core WGSL (no `shader-f16` extension), so SwiftShader runs it and the
 * kernels are tested here; arithmetic stays f32 (the products unpack as they stage a tile and
 * accumulate in f32, program.ts MatOperand.halves).
 *
 * The words live in an int32 tensor (tfjs has no uint32): bits are bits, and the shader reads them
 * with bitcast<u32>. Element i of the row-major matrix is the low half of word i >> 1 when i is
 * even, the high half when odd, so a flat index addresses a packed matrix as it does a plain one.
 *
 * Packing rounds each f32 to the nearest f16 (ties to even) in JavaScript, once, when the model is
 * packed: the same bits on every adapter, and the precision cost is that rounding alone (a relative
 * error of at most 2^-11 per weight). Only frozen weights are packed: adapters, optimizer moments
 * and activations stay f32.
 *
 *   frozenLinear   y = x W (+ b), dx = dy W^T     1 dispatch forward, 1 backward (W frozen)
 *   unpackHalves   W as f32 [rows, cols]          1 dispatch (readers that need f32: generation's
 *                                                  stock paths, unpacking the model)
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { SettingsError } from '../../errors';
import { flatProgram, fusedMatMul, onWebGpu, registerWebGpuKernel, runKernel, runProgram } from './program';

/** The largest finite f16: a weight beyond it cannot be stored as a half. */
export const HALF_MAX = 65504;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f16 bits nearest to x (round to nearest, ties to even; beyond HALF_MAX, infinity). */
export function toHalfBits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf, NaN
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // A subnormal half: m 2^-24, with m = (1.mant) 2^(e - 1 + 10) read as an integer.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa moves into the exponent, which is the right rounding.
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** The value of f16 bits h. */
export function fromHalfBits(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Every value rounded to its nearest f16 (what a packed matrix holds), as f32. */
export function roundToHalves(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = fromHalfBits(toHalfBits(values[i]!));
  return out;
}

/** A frozen [rows, cols] matrix held as f16 halves in ceil(rows cols / 2) words. */
export class HalfMatrix {
  constructor(
    /** The words, [ceil(rows * cols / 2)] int32, kept (outside any tidy). */
    readonly packed: tf.Tensor1D,
    readonly shape: [number, number],
  ) {}

  get size(): number {
    return this.shape[0] * this.shape[1];
  }

  /** Bytes the words take (half the f32 matrix's, rounded up to a word). */
  get bytes(): number {
    return this.packed.size * 4;
  }

  dispose(): void {
    this.packed.dispose();
  }
}

/**
 * Packs a [rows, cols] matrix's values as halves. Throws SettingsError when a value is beyond f16's
 * range (it would become infinite): such a model must stay f32.
 */
export function packHalves(values: Float32Array, shape: [number, number], name = 'matrix'): HalfMatrix {
  const n = shape[0] * shape[1];
  const words = new Int32Array(Math.ceil(n / 2));
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (!(Math.abs(v) <= HALF_MAX)) {
      throw new SettingsError(
        `${name} holds ${v} at element ${i}, which f16 cannot store (|x| <= ${HALF_MAX}, finite): keep this model's weights f32 (weightsF16 off)`,
      );
    }
    words[i >> 1]! |= toHalfBits(v) << ((i & 1) * 16);
  }
  return new HalfMatrix(tf.keep(tf.tensor1d(words, 'int32')), shape);
}

export const HALF_UNPACK = 'PeftLabHalfUnpack';
export const HALF_LINEAR_Y = 'PeftLabHalfLinearY';
export const HALF_LINEAR_DX = 'PeftLabHalfLinearDx';

type Info = tf.TensorInfo;
type Shape = { rows: number; cols: number };

let registered = false;
/** Registers the kernels with tfjs (once); the functions below call it. */
export function registerHalves(): void {
  if (registered) return;
  registered = true;
  const reg = registerWebGpuKernel<Shape>;
  reg(HALF_UNPACK, (i, be: WebGPUBackend, a) => {
    const n = a.rows * a.cols;
    const words = Math.ceil(n / 2);
    const program = flatProgram(
      'peftHalfUnpack',
      ['w'],
      [a.rows, a.cols],
      words,
      'words: i32, n: i32,',
      `
      fn main(index: i32) {
        if (index >= uniforms.words) { return; }
        let p = unpack2x16float(bitcast<u32>(w[index]));
        result[index * 2] = p.x;
        if (index * 2 + 1 < uniforms.n) { result[index * 2 + 1] = p.y; }
      }`,
    );
    return runProgram(
      be,
      program,
      [i.w!],
      [
        { type: 'int32', data: [words] },
        { type: 'int32', data: [n] },
      ],
    );
  });
  // rows 0: W is a plain f32 matrix (frozenLinear serves both).
  const op = (t: Info, a: Shape, transpose: boolean) =>
    a.rows ? { t, transpose, halves: [a.rows, a.cols] as [number, number] } : { t, transpose };
  reg(HALF_LINEAR_Y, (i, be, a) =>
    fusedMatMul(be, { a1: { t: i.x!, transpose: false }, b1: op(i.w!, a, false), alpha1: 1, bias: i.bias }),
  );
  reg(HALF_LINEAR_DX, (i, be, a) =>
    fusedMatMul(be, { a1: { t: i.dy!, transpose: false }, b1: op(i.w!, a, true), alpha1: 1 }),
  );
}

function shapeAttrs(w: HalfMatrix): Shape {
  return { rows: w.shape[0], cols: w.shape[1] };
}

/**
 * The matrix as f32 [rows, cols] (a new tensor, tracked by the caller's scope): one dispatch on
 * webgpu, JavaScript elsewhere (halves are meant for webgpu; other backends only unpack).
 */
export function unpackHalves(w: HalfMatrix): tf.Tensor2D {
  if (onWebGpu()) {
    registerHalves();
    return runKernel(HALF_UNPACK, { w: w.packed }, shapeAttrs(w)) as tf.Tensor2D;
  }
  const words = w.packed.dataSync() as Int32Array;
  const out = new Float32Array(w.size);
  for (let i = 0; i < out.length; i++) out[i] = fromHalfBits((words[i >> 1]! >>> ((i & 1) * 16)) & 0xffff);
  return tf.tensor2d(out, w.shape);
}

/**
 * x [N, in] W [in, out] (+ bias [out]) with W frozen, as halves or f32: the gradient is dx = dy W^T
 * only (neither W nor the bias is given a gradient; a bias that trains is added by the caller
 * instead). One dispatch each way on webgpu (program.ts fusedMatMul, W read in place, transposed in
 * place for dx); elsewhere stock ops, halves unpacked first.
 */
export function frozenLinear(x: tf.Tensor2D, w: HalfMatrix | tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor2D {
  if (!(w instanceof HalfMatrix)) return frozenLinearF32(x, w, bias);
  // Off webgpu: the f32 path on W unpacked; the unpacked W belongs to the caller's scope (the backward reads it
  // after this returns).
  if (!onWebGpu()) return frozenLinearF32(x, unpackHalves(w), bias);
  return frozenLinearOnGpu(x, w.packed, shapeAttrs(w), bias);
}

function frozenLinearF32(x: tf.Tensor2D, w: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor2D {
  if (!onWebGpu()) {
    const f = tf.customGrad((xi, save) => {
      (save as tf.GradSaveFunc)([]);
      const y = tf.matMul(xi as tf.Tensor2D, w) as tf.Tensor2D;
      return {
        value: bias ? (tf.add(y, bias) as tf.Tensor2D) : y,
        gradFunc: (dy) => tf.matMul(dy as tf.Tensor2D, w, false, true),
      };
    }) as (x: tf.Tensor) => tf.Tensor2D;
    return f(x);
  }
  return frozenLinearOnGpu(x, w, { rows: 0, cols: 0 }, bias);
}

/** W (packed words, or f32 with rows 0) enters through the closure: no gradient is asked of it. */
function frozenLinearOnGpu(x: tf.Tensor2D, w: tf.Tensor, attrs: Shape, bias?: tf.Tensor1D): tf.Tensor2D {
  registerHalves();
  const f = tf.customGrad((xi, save) => {
    (save as tf.GradSaveFunc)([]);
    const inputs: Record<string, tf.Tensor> = { x: xi as tf.Tensor, w };
    if (bias) inputs.bias = bias;
    return {
      value: runKernel(HALF_LINEAR_Y, inputs, attrs) as tf.Tensor2D,
      gradFunc: (dy) => runKernel(HALF_LINEAR_DX, { dy: dy as tf.Tensor, w }, attrs),
    };
  }) as (x: tf.Tensor) => tf.Tensor2D;
  return f(x);
}
