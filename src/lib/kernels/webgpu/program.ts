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
  /**
   * A window of the stored matrix's rows, [offset, offset + rows), read in place (no slice
   * dispatch): the LM head walks the vocabulary of the embedding in chunks this way.
   */
  view?: { offset: number; rows: number };
  /**
   * The matrix is stored as f16 halves, two to an i32 (halves.ts): `t` is the flat packed tensor
   * and this its logical [rows, cols]. Elements are unpacked as they are staged (unpack2x16float,
   * core WGSL, no extension) and the product accumulates in f32 as for any operand.
   */
  halves?: [number, number];
}

/**
 * How a product is cut into work: each thread computes a 4 x 4 block of the output (register
 * blocking), a workgroup of wx x wy threads a (4 wy) x (4 wx) tile, staging k-slices of bk of both
 * operands in shared memory. More work per thread means fewer shared-memory reads per multiply-add
 * (2 vec4 reads feed 16 fma) and fewer workgroups, so fewer barriers: on SwiftShader a barrier
 * switches the fibres of every invocation in the workgroup, which is what kept the 16 x 16 form
 * (1 fma per 2 shared reads, a barrier pair every 16 k) at a fraction of tfjs's rate.
 */
export interface MatMulTile {
  wx: number;
  wy: number;
  bk: number;
}

/**
 * The tiles fusedMatMul picks from. `wide` is the usual GPU form (64 x 64, 256 threads, 16 KiB of
 * shared memory at bk 16 is under WebGPU's guaranteed limit); `square` is tfjs's own choice (8 x 8
 * threads x 4 x 4 = 32 x 32, bk 32); `tallThin` and `shortWide` serve LoRA's rank-r products, where
 * one side of the output is r (4-16) and a square tile would compute mostly padding.
 */
export const MATMUL_TILES = {
  wide: { wx: 16, wy: 16, bk: 16 },
  square: { wx: 8, wy: 8, bk: 32 },
  tallThin: { wx: 2, wy: 32, bk: 32 },
  shortWide: { wx: 32, wy: 2, bk: 32 },
} as const satisfies Record<string, MatMulTile>;
export type MatMulTileName = keyof typeof MATMUL_TILES;

export interface FusedMatMulSpec {
  /** out = alpha1 op(a1) op(b1) [+ alpha2 op(a2) op(b2)] [+ bias], all [M, N]. */
  a1: MatOperand;
  b1: MatOperand;
  alpha1: number;
  second?: { a2: MatOperand; b2: MatOperand; alpha2: number };
  bias?: tf.TensorInfo;
  /** Forces a tile (benches, tests); by default chosen from the output's shape (pickTile). */
  tile?: MatMulTileName;
  /** An [M, N] matrix added before the write (a running sum over chunks, without an add dispatch). */
  accumulate?: tf.TensorInfo;
  /**
   * An elementwise step after the sum and before the write: WGSL statements that may change `e`
   * (f32), reading `row`, `col` and the extra inputs and uniforms named here. `key` must identify
   * the code, since it is compiled in.
   */
  epilogue?: {
    key: string;
    names: string[];
    inputs: tf.TensorInfo[];
    uniforms: string;
    data: Uniform[];
    code: string;
  };
}

/**
 * What replaces fusedMatMul's elementwise write, for kernels that reduce the tile instead (the LM
 * head's per-row logsumexp): the WGSL after the product, with `acc` (TM vec4 rows), `lx`, `ly`,
 * `tid`, `rowStart`, `colStart` in scope; shared declarations; and the output's shape.
 */
export interface TileReduction {
  key: string;
  outputShape: number[];
  shared: string;
  names: string[];
  inputs: tf.TensorInfo[];
  uniforms: string;
  data: Uniform[];
  code: string;
}

/** Per-thread block: 4 x 4, so a row of it is one vec4. */
const TM = 4;
const TN = 4;

/**
 * The tile for an [M, N] output. Narrow outputs (LoRA's x A, dy B^T, h^T dy) get a tile that is
 * narrow the same way; otherwise 64 x 64 when it still leaves enough workgroups to fill a GPU's
 * cores (on a software adapter the two cores are filled either way), else 32 x 32.
 */
export function pickTile(M: number, N: number): MatMulTileName {
  if (N <= 8 && M > N) return 'tallThin';
  if (M <= 8 && N > M) return 'shortWide';
  const wide = Math.ceil(M / 64) * Math.ceil(N / 64);
  return wide >= 32 ? 'wide' : 'square';
}

/** The stored [rows, cols] of an operand: its tensor's shape, or the logical shape of its halves. */
function stored(o: MatOperand): [number, number] {
  return o.halves ?? [o.t.shape[0]!, o.t.shape[1]!];
}

function dims(o: MatOperand, outer: 'rows' | 'cols'): number {
  const c = stored(o)[1];
  const r = o.view?.rows ?? stored(o)[0];
  // For a left operand "outer" is M and inner K; for a right one, outer is N and inner K.
  if (outer === 'rows') return o.transpose ? c : r;
  return o.transpose ? r : c;
}

/**
 * WGSL that stages one k-slice of an operand into shared memory as vec4s along the output's side
 * (4 consecutive rows of op(a), or 4 consecutive columns of op(b)), so the product loop reads one
 * vec4 per operand per k. Neighbouring threads take neighbouring addresses of the stored matrix:
 * along k when it is the stored row (a not transposed, b transposed), along the outer side else.
 * Out-of-range elements read as 0 (bounds are uniforms), which also makes the padding add nothing.
 */
function stage(
  name: string,
  o: MatOperand,
  left: boolean,
  outerTile: number,
  bk: number,
  threads: number,
  outerStart: string,
  outerSize: string,
  K: string,
  ld: string,
  sub: string,
): string {
  const groups = outerTile / 4;
  const units = groups * bk;
  // (outer index, k) -> stored offset: op(a)(i, k) or op(b)(k, j), from the stored layout.
  const alongK = left ? !o.transpose : o.transpose;
  const at = alongK ? `o * ${ld} + kk` : `kk * ${ld} + o`;
  const index = `uniforms.off${name} + ${at}`;
  const read = o.halves ? `half_${name}(${index})` : `${name}[${index}]`;
  const split = alongK
    ? `let kq = u % ${bk}; let g = u / ${bk};`
    : `let g = u % ${groups}; let kq = u / ${groups};`;
  return `
        for (var u = tid; u < ${units}; u += ${threads}) {
          ${split}
          let kk = k0 + kq;
          var v = vec4<f32>(0.0);
          if (kk < uniforms.${K}) {
            for (var c = 0; c < 4; c++) {
              let o = ${outerStart} + g * 4 + c;
              if (o < uniforms.${outerSize}) { v[c] = ${read}; }
            }
          }
          ${sub}[kq][g] = v;
        }`;
}

/**
 * The loop over one inner dimension: stage a k-slice of both operands, barrier, 16 fma per k from
 * two vec4 shared reads, barrier. The product is added into acc scaled by alpha at the end.
 */
function termLoop(
  a: MatOperand,
  b: MatOperand,
  n: string,
  K: string,
  tile: MatMulTile,
  first: boolean,
): string {
  const { wx, wy, bk } = tile;
  const threads = wx * wy;
  const sA = stage(`a${n}`, a, true, wy * TM, bk, threads, 'rowStart', 'M', K, `uniforms.lda${n}`, 'tileA');
  const sB = stage(`b${n}`, b, false, wx * TN, bk, threads, 'colStart', 'N', K, `uniforms.ldb${n}`, 'tileB');
  return `
    {
      var part: array<vec4<f32>, ${TM}>;
      for (var k0 = 0; k0 < uniforms.${K}; k0 += ${bk}) {
        ${sA}
        ${sB}
        workgroupBarrier();
        for (var k = 0; k < ${bk}; k++) {
          let av = tileA[k][ly];
          let bv = tileB[k][lx];
          part[0] = fma(vec4<f32>(av.x), bv, part[0]);
          part[1] = fma(vec4<f32>(av.y), bv, part[1]);
          part[2] = fma(vec4<f32>(av.z), bv, part[2]);
          part[3] = fma(vec4<f32>(av.w), bv, part[3]);
        }
        workgroupBarrier();
      }
      for (var i = 0; i < ${TM}; i++) {
        acc[i] = ${first ? '' : 'acc[i] + '}uniforms.alpha${n} * part[i];
      }
    }`;
}

/**
 * One dispatch: out [M, N] = alpha1 op(a1) op(b1) + alpha2 op(a2) op(b2) + bias. Both operands of
 * each product are read transposed in place (no transpose dispatch), and the second product and the
 * bias are added before the single write: LoRA's x W + s (x A) B + b and its dx are one launch each.
 */
export function fusedMatMul(backend: WebGPUBackend, spec: FusedMatMulSpec): tf.TensorInfo {
  return tiledMatMul(backend, spec);
}

/** fusedMatMul's product with either its elementwise write or a tile reduction in its place. */
export function tiledMatMul(
  backend: WebGPUBackend,
  spec: FusedMatMulSpec,
  reduce?: TileReduction,
): tf.TensorInfo {
  const M = dims(spec.a1, 'rows');
  const K1 = dims(spec.a1, 'cols');
  const N = dims(spec.b1, 'cols');
  const tileName = spec.tile ?? pickTile(M, N);
  const tile = MATMUL_TILES[tileName];
  const BM = tile.wy * TM;
  const BN = tile.wx * TN;
  const inputs: tf.TensorInfo[] = [spec.a1.t, spec.b1.t];
  const names = ['a1', 'b1'];
  const ld = (o: MatOperand): number => stored(o)[1];
  const off = (o?: MatOperand): number => (o?.view ? o.view.offset * ld(o) : 0);
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
    { type: 'int32', data: [off(spec.a1)] },
    { type: 'int32', data: [off(spec.b1)] },
    { type: 'int32', data: [off(spec.second?.a2)] },
    { type: 'int32', data: [off(spec.second?.b2)] },
  ];
  let uniforms =
    'M: i32, N: i32, K1: i32, K2: i32, lda1: i32, ldb1: i32, lda2: i32, ldb2: i32, alpha1: f32, alpha2: f32, ' +
    'offa1: i32, offb1: i32, offa2: i32, offb2: i32,';
  let body = termLoop(spec.a1, spec.b1, '1', 'K1', tile, true);
  if (spec.second) {
    inputs.push(spec.second.a2.t, spec.second.b2.t);
    names.push('a2', 'b2');
    body += termLoop(spec.second.a2, spec.second.b2, '2', 'K2', tile, false);
  }
  if (spec.bias) {
    inputs.push(spec.bias);
    names.push('bias');
  }
  if (spec.accumulate) {
    inputs.push(spec.accumulate);
    names.push('accIn');
  }
  // An operand stored as halves gets a reader: element i is half (i & 1) of word i >> 1.
  const halfOperands = (
    [
      ['a1', spec.a1],
      ['b1', spec.b1],
      ['a2', spec.second?.a2],
      ['b2', spec.second?.b2],
    ] as const
  ).flatMap(([n, o]) => (o?.halves ? [n] : []));
  const halfReaders = halfOperands
    .map(
      (n) => `
      fn half_${n}(i: i32) -> f32 {
        let p = unpack2x16float(bitcast<u32>(${n}[i >> 1u]));
        return select(p.x, p.y, (i & 1) == 1);
      }`,
    )
    .join('');
  const extra = reduce ?? spec.epilogue;
  if (extra) {
    inputs.push(...extra.inputs);
    names.push(...extra.names);
    uniforms += ` ${extra.uniforms}`;
    uniformData.push(...extra.data);
  }
  const key = [
    'peftFusedMatMul',
    tileName,
    spec.a1.transpose ? 'T' : 'N',
    spec.b1.transpose ? 'T' : 'N',
    spec.second ? `2${spec.second.a2.transpose ? 'T' : 'N'}${spec.second.b2.transpose ? 'T' : 'N'}` : '1',
    halfOperands.length ? `h${halfOperands.join('')}` : '',
    spec.bias ? 'b' : '',
    spec.accumulate ? 'acc' : '',
    spec.epilogue ? `e${spec.epilogue.key}` : '',
    reduce ? `r${reduce.key}` : '',
  ].join('_');
  const store = reduce
    ? reduce.code
    : `
        let col0 = colStart + lx * ${TN};
        ${spec.bias ? `var bv = vec4<f32>(0.0);\n        for (var c = 0; c < ${TN}; c++) { if (col0 + c < uniforms.N) { bv[c] = bias[col0 + c]; } }` : ''}
        for (var i = 0; i < ${TM}; i++) {
          let row = rowStart + ly * ${TM} + i;
          if (row >= uniforms.M) { break; }
          let v = acc[i]${spec.bias ? ' + bv' : ''};
          for (var c = 0; c < ${TN}; c++) {
            let col = col0 + c;
            if (col < uniforms.N) {
              let at = row * uniforms.N + col;
              var e = v[c]${spec.accumulate ? ' + accIn[at]' : ''};
              ${spec.epilogue?.code ?? ''}
              result[at] = e;
            }
          }
        }`;
  const program: WebGPUProgram = {
    shaderKey: key,
    variableNames: names,
    outputShape: reduce?.outputShape ?? [M, N],
    dispatchLayout: { x: [1], y: [0] },
    dispatch: [Math.ceil(N / BN), Math.ceil(M / BM), 1],
    workgroupSize: [tile.wx, tile.wy, 1],
    uniforms,
    getUserCode: () => `
      var<workgroup> tileA: array<array<vec4<f32>, ${BM / 4}>, ${tile.bk}>;
      var<workgroup> tileB: array<array<vec4<f32>, ${BN / 4}>, ${tile.bk}>;
      ${reduce?.shared ?? ''}
      ${halfReaders}
      fn main() {
        let lx = i32(localId.x);
        let ly = i32(localId.y);
        let tid = ly * ${tile.wx} + lx;
        let rowStart = i32(workgroupId.y) * ${BM};
        let colStart = i32(workgroupId.x) * ${BN};
        var acc: array<vec4<f32>, ${TM}>;
        ${body}
        ${store}
      }`,
  };
  return runProgram(backend, program, inputs, uniformData);
}

/**
 * Registers one of our kernels on webgpu. tfjs hands a kernel its inputs, backend and attributes
 * as loosely typed maps; each kernel states the shapes it expects here, once.
 */
export function registerWebGpuKernel<A extends object>(
  name: string,
  f: (inputs: Record<string, tf.TensorInfo>, backend: WebGPUBackend, attrs: A) => tf.TensorInfo,
): void {
  tf.registerKernel({
    kernelName: name,
    backendName: 'webgpu',
    kernelFunc: ({ inputs, backend, attrs }) =>
      f(inputs as unknown as Record<string, tf.TensorInfo>, backend as WebGPUBackend, attrs as unknown as A),
  });
}
