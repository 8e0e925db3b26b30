/**
 * The tied LM head with its softmax cross-entropy, in tiles: mean over counted rows of
 * -log softmax(h E^T)[target], for h [N, C], the embedding E [V, C] and targets [N] (labels < 0,
 * HF's -100, are ignored), without ever holding the [N, V] logits or softmax:
 *   forward   partials [N, T, 2]  per row and 32-wide vocabulary tile: (max, sum exp(z - max)),
 *                                 the product's tile reduced in place (T = V / 32)   1 dispatch
 *             rows [2, N]         lse = logsumexp over the partials; nll = lse - h . E_target   1
 *             loss [1]            sum nll / count (one workgroup)                             1
 *   backward, per chunk of the vocabulary (its rows of E read in place, no slice):
 *             G [N, chunk] = (exp(h E_chunk^T - lse) - onehot) dy / count, the product's
 *                            epilogue recomputing the logits of that chunk                    1
 *             dh += G E_chunk   (the running sum is the product's accumulated input)          1
 *             dE_chunk = G^T h  (only when the embedding trains; frozen by default)          (1)
 * The chunk is sized so G stays near 64 MiB whatever V is; one chunk covers a small vocabulary.
 * Stock (heads.ts lmLogits, then ops.ts crossEntropy) keeps logits, log-softmax and softmax
 * [N, V] each and takes about 13 dispatches forward and 20 with the backward.
 */
import * as tf from '@tensorflow/tfjs';
import { InternalError } from '../../errors';
import { crossEntropy } from '../../model/ops';
import {
  flatProgram,
  fusedMatMul,
  onWebGpu,
  registerWebGpuKernel,
  runKernel,
  runProgram,
  tiledMatMul,
} from './program';

export const LMCE_PARTIALS = 'PeftLabLmCePartials';
export const LMCE_ROWS = 'PeftLabLmCeRows';
export const LMCE_MEAN = 'PeftLabLmCeMean';
export const LMCE_GRAD = 'PeftLabLmCeGrad';
export const LMCE_DH = 'PeftLabLmCeDh';
export const LMCE_DE = 'PeftLabLmCeDe';

/** The tile the forward reduces: tfjs's 8 x 8 threads x 4 x 4, so 32 vocabulary entries a tile. */
const RED_TILE = 'square' as const;
const WX = 8;
const BM = 32;
const BN = 32;
/** Elements of G per chunk in the backward (64 MiB of f32). */
const CHUNK_ELEMENTS = 16 * 2 ** 20;

type Info = tf.TensorInfo;
const N_ = (t: Info) => ({ t, transpose: false });
const T_ = (t: Info) => ({ t, transpose: true });

let registered = false;
/** Registers the kernels with tfjs (once); lmHeadCrossEntropy calls it. */
export function registerLmHead(): void {
  if (registered) return;
  registered = true;
  const reg = registerWebGpuKernel<Record<string, number>>;
  reg(LMCE_PARTIALS, (i, be) => {
    const [N] = i.h!.shape as [number, number];
    const V = i.e!.shape[0]!;
    const T = Math.ceil(V / BN);
    return tiledMatMul(
      be,
      { a1: N_(i.h!), b1: T_(i.e!), alpha1: 1, tile: RED_TILE },
      {
        key: 'lse',
        outputShape: [N, T, 2],
        shared: `var<workgroup> redM: array<array<f32, ${WX}>, ${BM}>;
                 var<workgroup> redS: array<array<f32, ${WX}>, ${BM}>;`,
        names: [],
        inputs: [],
        uniforms: 'tiles: i32,',
        data: [{ type: 'int32', data: [T] }],
        // Each thread reduces its 4 columns of its 4 rows; then one thread per row combines the
        // 8 threads' (max, sum) of that row: sum_j s_j exp(m_j - max).
        code: `
        let col0 = colStart + lx * 4;
        for (var i = 0; i < 4; i++) {
          var m = -3.0e38;
          for (var c = 0; c < 4; c++) { if (col0 + c < uniforms.N) { m = max(m, acc[i][c]); } }
          var s = 0.0;
          for (var c = 0; c < 4; c++) { if (col0 + c < uniforms.N) { s += exp(acc[i][c] - m); } }
          redM[ly * 4 + i][lx] = m;
          redS[ly * 4 + i][lx] = s;
        }
        workgroupBarrier();
        let row = rowStart + tid;
        if (tid < ${BM} && row < uniforms.M) {
          var m = -3.0e38;
          for (var j = 0; j < ${WX}; j++) { m = max(m, redM[tid][j]); }
          var s = 0.0;
          for (var j = 0; j < ${WX}; j++) { s += redS[tid][j] * exp(redM[tid][j] - m); }
          let at = (row * uniforms.tiles + i32(workgroupId.x)) * 2;
          result[at] = m;
          result[at + 1] = s;
        }`,
      },
    );
  });
  reg(LMCE_ROWS, (i, be) => {
    const [N, T] = i.partials!.shape as [number, number, number];
    const C = i.h!.shape[1]!;
    const program = flatProgram(
      'peftLmCeRows',
      ['partials', 'h', 'e', 'labels'],
      [2, N],
      N,
      'rows: i32, tiles: i32, C: i32,',
      `
      fn main(index: i32) {
        if (index >= uniforms.rows) { return; }
        let base = index * uniforms.tiles * 2;
        var m = -3.0e38;
        for (var j = 0; j < uniforms.tiles; j++) { m = max(m, partials[base + j * 2]); }
        var s = 0.0;
        for (var j = 0; j < uniforms.tiles; j++) {
          s += partials[base + j * 2 + 1] * exp(partials[base + j * 2] - m);
        }
        let lse = m + log(s);
        result[index] = lse;
        let t = i32(labels[index]);
        var nll = 0.0;
        if (t >= 0) {
          var z = 0.0;
          for (var c = 0; c < uniforms.C; c++) { z = fma(h[index * uniforms.C + c], e[t * uniforms.C + c], z); }
          nll = lse - z;
        }
        result[uniforms.rows + index] = nll;
      }`,
    );
    return runProgram(
      be,
      program,
      [i.partials!, i.h!, i.e!, i.labels!],
      [
        { type: 'int32', data: [N] },
        { type: 'int32', data: [T] },
        { type: 'int32', data: [C] },
      ],
    );
  });
  reg(LMCE_MEAN, (i, be, a) => {
    const N = i.rows!.shape[1]!;
    const program = flatProgram(
      'peftLmCeMean',
      ['rows'],
      [1],
      64,
      'rows: i32, invDenom: f32,',
      `
      var<workgroup> part: array<f32, 64>;
      fn main(index: i32) {
        var s = 0.0;
        for (var n = index; n < uniforms.rows; n += 64) { s += rows[uniforms.rows + n]; }
        part[index] = s;
        workgroupBarrier();
        if (index == 0) {
          var t = 0.0;
          for (var j = 0; j < 64; j++) { t += part[j]; }
          result[0] = t * uniforms.invDenom;
        }
      }`,
    );
    return runProgram(
      be,
      program,
      [i.rows!],
      [
        { type: 'int32', data: [N] },
        { type: 'float32', data: [a.invDenom!] },
      ],
    );
  });
  reg(LMCE_GRAD, (i, be, a) =>
    fusedMatMul(be, {
      a1: N_(i.h!),
      b1: { t: i.e!, transpose: true, view: { offset: a.offset!, rows: a.rows! } },
      alpha1: 1,
      epilogue: {
        key: 'ceGrad',
        names: ['rowStats', 'labels', 'dy'],
        inputs: [i.rowStats!, i.labels!, i.dy!],
        uniforms: 'voff: i32, invDenom: f32,',
        data: [
          { type: 'int32', data: [a.offset!] },
          { type: 'float32', data: [a.invDenom!] },
        ],
        code: `
          let t = i32(labels[row]);
          if (t < 0) { e = 0.0; } else {
            e = (exp(e - rowStats[row]) - select(0.0, 1.0, t == col + uniforms.voff)) * dy[0] * uniforms.invDenom;
          }`,
      },
    }),
  );
  reg(LMCE_DH, (i, be, a) =>
    fusedMatMul(be, {
      a1: N_(i.g!),
      b1: { t: i.e!, transpose: false, view: { offset: a.offset!, rows: a.rows! } },
      alpha1: 1,
      accumulate: i.acc,
    }),
  );
  reg(LMCE_DE, (i, be) => fusedMatMul(be, { a1: T_(i.g!), b1: N_(i.h!), alpha1: 1 }));
}

/** Validates labels as ops.ts crossEntropy does; returns them as floats and the count. */
function prepare(labels: Int32Array, n: number, v: number): { labels: Float32Array; count: number } {
  if (labels.length !== n)
    throw new InternalError(`${labels.length} labels for ${n} rows of hidden states: one label per row`);
  const out = new Float32Array(n);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const l = labels[i]!;
    if (l >= v) throw new InternalError(`label ${l} at row ${i} is outside 0..${v - 1}`);
    out[i] = l >= 0 ? l : -1;
    if (l >= 0) count++;
  }
  return { labels: out, count };
}

/** The stock composition the model runs today: logits h E^T, then crossEntropy. */
export function lmHeadCrossEntropyStock(h: tf.Tensor2D, e: tf.Tensor2D, labels: Int32Array): tf.Scalar {
  return crossEntropy(tf.matMul(h, e, false, true), labels);
}

export interface LmHeadOptions {
  /** True when E trains (full fine-tuning): then its gradient is computed too. Default false. */
  embeddingTrains?: boolean;
  /** Vocabulary rows per backward chunk (tests); by default about 64 MiB of G. */
  chunk?: number;
}

/**
 * Mean cross-entropy of h E^T [N, V] against labels [N] (labels < 0 ignored; 0 when none counts),
 * with gradients for h, and for E when `embeddingTrains`; E frozen enters through the closure, so
 * no gradient is asked of it. Same values as ops.ts crossEntropy on the logits, on every backend.
 */
export function lmHeadCrossEntropy(
  h: tf.Tensor2D,
  e: tf.Tensor2D,
  labels: Int32Array,
  opts: LmHeadOptions = {},
): tf.Scalar {
  if (!onWebGpu()) return lmHeadCrossEntropyStock(h, e, labels);
  registerLmHead();
  const [N] = h.shape;
  const V = e.shape[0];
  const prep = prepare(labels, N, V);
  const invDenom = 1 / Math.max(prep.count, 1);
  const chunk = Math.max(1, Math.min(V, opts.chunk ?? Math.floor(CHUNK_ELEMENTS / Math.max(N, 1))));
  const lab = tf.tensor1d(prep.labels);
  const forward = (hi: tf.Tensor, ei: tf.Tensor, save: tf.GradSaveFunc) => {
    const partials = runKernel(LMCE_PARTIALS, { h: hi, e: ei });
    const rows = runKernel(LMCE_ROWS, { partials, h: hi, e: ei, labels: lab });
    partials.dispose();
    save([hi, ei, rows, lab]);
    const mean = runKernel(LMCE_MEAN, { rows }, { invDenom });
    const loss = tf.reshape(mean, []) as tf.Scalar;
    // save() keeps clones: these handles are ours to free, also outside a tidy.
    tf.dispose([rows, mean]);
    return loss;
  };
  const backward = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
    const [hs, es, rows, ls] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
    // rows [2, N]: its first N values are the logsumexp of each row, which is all G needs.
    let dh: tf.Tensor | null = null;
    const dE: tf.Tensor[] = [];
    for (let offset = 0; offset < V; offset += chunk) {
      const n = Math.min(chunk, V - offset);
      const g = runKernel(
        LMCE_GRAD,
        { h: hs, e: es, rowStats: rows, labels: ls, dy },
        { offset, rows: n, invDenom },
      );
      const next = runKernel(LMCE_DH, dh ? { g, e: es, acc: dh } : { g, e: es }, { offset, rows: n });
      dh?.dispose();
      dh = next;
      if (opts.embeddingTrains) dE.push(runKernel(LMCE_DE, { g, h: hs }));
      g.dispose();
    }
    if (!opts.embeddingTrains) return [dh!];
    const de = dE.length === 1 ? dE[0]! : tf.concat(dE, 0);
    if (dE.length > 1) tf.dispose(dE);
    return [dh!, de];
  };
  let loss: tf.Scalar;
  if (opts.embeddingTrains) {
    const f = tf.customGrad((hi, ei, save) => ({
      value: forward(hi as tf.Tensor, ei as tf.Tensor, save as tf.GradSaveFunc),
      gradFunc: (dy, saved) => backward(dy as tf.Tensor, saved as tf.Tensor[]),
    })) as (h: tf.Tensor, e: tf.Tensor) => tf.Scalar;
    loss = f(h, e);
  } else {
    const f = tf.customGrad((hi, save) => ({
      value: forward(hi as tf.Tensor, e, save as tf.GradSaveFunc),
      gradFunc: (dy, saved) => backward(dy as tf.Tensor, saved as tf.Tensor[]),
    })) as (h: tf.Tensor) => tf.Scalar;
    loss = f(h);
  }
  lab.dispose();
  return loss;
}
