/**
 * What our WGSL kernels share: the program shape tfjs-backend-webgpu 4.22 runs, how to run one from
 * a kernel function, and one tiled matrix product with a fused epilogue that the linear kernels use.
 *
 * How tfjs builds a shader from a program (webgpu_program.js, makeShader): it declares `result`
 * (binding 0, the output), one `array<f32>` per name in `variableNames` (bindings 1..n), and a
 * `uniforms` struct holding every input's shape and strides, the output's, `size` when `size` is
 * set, then the fields listed in `uniforms` (their values passed in order to runWebGPUProgram).
 * Our code must define `fn main(index: i32)` when the dispatch layout is flat (x only), else
 * `fn main()`, reading the workgroup ids from the private `workgroupId`, `localId`, `globalId`.
 * Pipelines are cached by `shaderKey` plus input ranks and dtypes, not sizes: anything baked into
 * the WGSL text (a tile size, a head size) must be in the key; sizes travel as uniforms.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { webgpu_util } from '@tensorflow/tfjs-backend-webgpu';

export type Uniform = { type: 'int32' | 'float32' | 'uint32'; data: number[] };

/** One thread per element of `rows` (flat layout): user code defines `fn main(index: i32)`. */
export function flatProgram(
  shaderKey: string,
  variableNames: string[],
  outputShape: number[],
  threads: number,
  uniforms: string,
  code: string,
  workgroup = 64,
): WebGPUProgram {
  const workgroupSize: [number, number, number] = [workgroup, 1, 1];
  const dispatchLayout = webgpu_util.flatDispatchLayout([threads]);
  return {
    shaderKey,
    variableNames,
    outputShape,
    dispatchLayout,
    dispatch: webgpu_util.computeDispatch(dispatchLayout, [threads], workgroupSize),
    workgroupSize,
    uniforms,
    getUserCode: () => code,
  };
}

/** Runs a program on the active webgpu backend and returns the output as a tracked tensor. */
export function runProgram(
  backend: WebGPUBackend,
  program: WebGPUProgram,
  inputs: tf.TensorInfo[],
  uniforms: Uniform[],
): tf.TensorInfo {
  return backend.runWebGPUProgram(program, inputs, 'float32', uniforms);
}

/** Runs a registered kernel of ours through the engine (so it is tracked, timed and profiled). */
export function runKernel(
  name: string,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, number | boolean> = {},
): tf.Tensor {
  return tf.engine().runKernel(name, inputs, attrs) as tf.Tensor;
}

/** True when our kernels can run: the active backend is webgpu. Elsewhere callers use stock ops. */
export function onWebGpu(): boolean {
  return tf.getBackend() === 'webgpu';
}

/** One operand of a product: a stored [rows, cols] matrix, read transposed or not. */
export interface MatOperand {
  t: tf.TensorInfo;
  transpose: boolean;
}

export interface FusedMatMulSpec {
  /** out = alpha1 op(a1) op(b1) [+ alpha2 op(a2) op(b2)] [+ bias], all [M, N]. */
  a1: MatOperand;
  b1: MatOperand;
  alpha1: number;
  second?: { a2: MatOperand; b2: MatOperand; alpha2: number };
  bias?: tf.TensorInfo;
}

const TILE = 16;

function dims(o: MatOperand, outer: 'rows' | 'cols'): number {
  const [r, c] = o.t.shape as [number, number];
  // For a left operand "outer" is M and inner K; for a right one, outer is N and inner K.
  if (outer === 'rows') return o.transpose ? c : r;
  return o.transpose ? r : c;
}

/** WGSL reading element (i, k) of op(a) for a left operand, or (k, j) of op(b) for a right one. */
function loader(name: string, o: MatOperand, left: boolean, ld: string): string {
  // Stored [R, C] row-major; ld is the stored column count (a uniform).
  if (left)
    return o.transpose
      ? `fn load_${name}(i: i32, k: i32) -> f32 { return ${name}[k * ${ld} + i]; }`
      : `fn load_${name}(i: i32, k: i32) -> f32 { return ${name}[i * ${ld} + k]; }`;
  return o.transpose
    ? `fn load_${name}(k: i32, j: i32) -> f32 { return ${name}[j * ${ld} + k]; }`
    : `fn load_${name}(k: i32, j: i32) -> f32 { return ${name}[k * ${ld} + j]; }`;
}

/** The tiled loop over one inner dimension, accumulating into acc (shared tiles of 16 x 16). */
function termLoop(a: string, b: string, K: string, alpha: string): string {
  return `
    {
      var part = 0.0;
      let tiles = (uniforms.${K} + ${TILE - 1}) / ${TILE};
      for (var t = 0; t < tiles; t++) {
        let ka = t * ${TILE} + lx;
        let kb = t * ${TILE} + ly;
        tileA[ly][lx] = select(0.0, load_${a}(row, ka), row < uniforms.M && ka < uniforms.${K});
        tileB[ly][lx] = select(0.0, load_${b}(kb, col), kb < uniforms.${K} && col < uniforms.N);
        workgroupBarrier();
        for (var k = 0; k < ${TILE}; k++) { part = fma(tileA[ly][k], tileB[k][lx], part); }
        workgroupBarrier();
      }
      acc = fma(${alpha}, part, acc);
    }`;
}

/**
 * One dispatch: out [M, N] = alpha1 op(a1) op(b1) + alpha2 op(a2) op(b2) + bias. Both operands of
 * each product are read transposed in place (no transpose dispatch), and the second product and the
 * bias are added before the single write: LoRA's x W + s (x A) B + b and its dx are one launch each.
 */
export function fusedMatMul(backend: WebGPUBackend, spec: FusedMatMulSpec): tf.TensorInfo {
  const M = dims(spec.a1, 'rows');
  const K1 = dims(spec.a1, 'cols');
  const N = dims(spec.b1, 'cols');
  const inputs: tf.TensorInfo[] = [spec.a1.t, spec.b1.t];
  const names = ['a1', 'b1'];
  const ld = (o: MatOperand): number => o.t.shape[1]!;
  const uniformData: Uniform[] = [
    { type: 'int32', data: [M] },
    { type: 'int32', data: [N] },
    { type: 'int32', data: [K1] },
    { type: 'int32', data: [spec.second ? dims(spec.second.a2, 'cols') : 0] },
    { type: 'int32', data: [ld(spec.a1)] },
    { type: 'int32', data: [ld(spec.b1)] },
    { type: 'int32', data: [spec.second ? ld(spec.second.a2) : 0] },
    { type: 'int32', data: [spec.second ? ld(spec.second.b2) : 0] },
    { type: 'float32', data: [spec.alpha1] },
    { type: 'float32', data: [spec.second?.alpha2 ?? 0] },
  ];
  const fns = [loader('a1', spec.a1, true, 'uniforms.lda1'), loader('b1', spec.b1, false, 'uniforms.ldb1')];
  let body = termLoop('a1', 'b1', 'K1', 'uniforms.alpha1');
  if (spec.second) {
    inputs.push(spec.second.a2.t, spec.second.b2.t);
    names.push('a2', 'b2');
    fns.push(
      loader('a2', spec.second.a2, true, 'uniforms.lda2'),
      loader('b2', spec.second.b2, false, 'uniforms.ldb2'),
    );
    body += termLoop('a2', 'b2', 'K2', 'uniforms.alpha2');
  }
  if (spec.bias) {
    inputs.push(spec.bias);
    names.push('bias');
  }
  const key = [
    'peftFusedMatMul',
    spec.a1.transpose ? 'T' : 'N',
    spec.b1.transpose ? 'T' : 'N',
    spec.second ? `2${spec.second.a2.transpose ? 'T' : 'N'}${spec.second.b2.transpose ? 'T' : 'N'}` : '1',
    spec.bias ? 'b' : '',
  ].join('_');
  const program: WebGPUProgram = {
    shaderKey: key,
    variableNames: names,
    outputShape: [M, N],
    dispatchLayout: { x: [1], y: [0] },
    dispatch: [Math.ceil(N / TILE), Math.ceil(M / TILE), 1],
    workgroupSize: [TILE, TILE, 1],
    uniforms:
      'M: i32, N: i32, K1: i32, K2: i32, lda1: i32, ldb1: i32, lda2: i32, ldb2: i32, alpha1: f32, alpha2: f32,',
    getUserCode: () => `
      var<workgroup> tileA: array<array<f32, ${TILE}>, ${TILE}>;
      var<workgroup> tileB: array<array<f32, ${TILE}>, ${TILE}>;
      ${fns.join('\n')}
      fn main() {
        let lx = i32(localId.x);
        let ly = i32(localId.y);
        let row = i32(workgroupId.y) * ${TILE} + ly;
        let col = i32(workgroupId.x) * ${TILE} + lx;
        var acc = 0.0;
        ${body}
        if (row < uniforms.M && col < uniforms.N) {
          ${spec.bias ? 'acc = acc + bias[col];' : ''}
          result[row * uniforms.N + col] = acc;
        }
      }`,
  };
  return runProgram(backend, program, inputs, uniformData);
}
