/**
 * Causal self-attention, fused: softmax(q k^T scale + causal mask) v for q, k, v [B, H, T, D],
 * without ever storing the [B, H, T, T] scores or probabilities (flash-attention's recomputation):
 *   forward   L [B, H, T] = logsumexp_j<=i (scale q_i . k_j)     1 dispatch, a thread per query row
 *             o_i = sum_j<=i exp(scale q_i . k_j - L_i) v_j      1 dispatch, a thread per query row
 *   backward  with P_ij = exp(scale q_i . k_j - L_i), dP_ij = do_i . v_j, Delta_i = do_i . o_i:
 *             dq_i = scale sum_j<=i P_ij (dP_ij - Delta_i) k_j    1 dispatch, a thread per query row
 *             dk_j = scale sum_i>=j P_ij (dP_ij - Delta_i) q_i    1 dispatch, a thread per key row
 *             dv_j = sum_i>=j P_ij do_i                           1 dispatch, a thread per key row
 * Saved for backward: q, k, v, o and L only. Stock tfjs (gpt2.ts's attention) takes about 8
 * dispatches forward and keeps scores and probabilities, [B, H, T, T] each.
 * The head size D is compiled in (a private accumulator of D floats per thread), so it is in the
 * shader key; T, B*H and the scale are uniforms. One thread per row is the simple form; a tiled
 * form (a workgroup per block of rows, k and v tiles in shared memory) is the next step on a GPU.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { flatProgram, onWebGpu, runKernel, runProgram, type Uniform } from './program';

export const ATT_LSE = 'PeftLabAttentionLse';
export const ATT_OUT = 'PeftLabAttentionOut';
export const ATT_DQ = 'PeftLabAttentionDq';
export const ATT_DK = 'PeftLabAttentionDk';
export const ATT_DV = 'PeftLabAttentionDv';

type Info = tf.TensorInfo;

/** Helpers every attention shader shares: row offsets and the scaled score of (i, j). */
const COMMON = `
  fn rowOf(bh: i32, t: i32) -> i32 { return (bh * uniforms.T + t) * uniforms.D; }
  fn score(bh: i32, i: i32, j: i32) -> f32 {
    let qo = rowOf(bh, i);
    let ko = rowOf(bh, j);
    var s = 0.0;
    for (var d = 0; d < uniforms.D; d++) { s = fma(q[qo + d], k[ko + d], s); }
    return s * uniforms.scale;
  }
  fn dotRows(a: i32, b: i32) -> f32 {
    var s = 0.0;
    for (var d = 0; d < uniforms.D; d++) { s = fma(dO[a + d], v[b + d], s); }
    return s;
  }`;

function shape(q: Info): { BH: number; T: number; D: number } {
  const [B, H, T, D] = q.shape as [number, number, number, number];
  return { BH: B * H, T, D };
}

function uniforms(q: Info, scale: number): Uniform[] {
  const { BH, T, D } = shape(q);
  return [
    { type: 'int32', data: [BH * T] },
    { type: 'int32', data: [T] },
    { type: 'int32', data: [D] },
    { type: 'float32', data: [scale] },
  ];
}
const U = 'rows: i32, T: i32, D: i32, scale: f32,';

function reg(name: string, f: (i: Record<string, Info>, be: WebGPUBackend, scale: number) => Info): void {
  tf.registerKernel({
    kernelName: name,
    backendName: 'webgpu',
    kernelFunc: ({ inputs, backend, attrs }) =>
      f(
        inputs as unknown as Record<string, Info>,
        backend as WebGPUBackend,
        (attrs as { scale: number }).scale,
      ),
  });
}

let registered = false;
export function registerAttention(): void {
  if (registered) return;
  registered = true;
  reg(ATT_LSE, (i, be, scale) => {
    const { BH, T } = shape(i.q!);
    const p = flatProgram(
      'peftAttLse',
      ['q', 'k'],
      [BH * T],
      BH * T,
      U,
      `${COMMON.replace(/fn dotRows[\s\S]*$/, '')}
      fn main(index: i32) {
        if (index >= uniforms.rows) { return; }
        let bh = index / uniforms.T;
        let i = index - bh * uniforms.T;
        var m = -3.0e38;
        var l = 0.0;
        for (var j = 0; j <= i; j++) {
          let s = score(bh, i, j);
          let mNew = max(m, s);
          l = l * exp(m - mNew) + exp(s - mNew);
          m = mNew;
        }
        result[index] = m + log(l);
      }`,
    );
    return runProgram(be, p, [i.q!, i.k!], uniforms(i.q!, scale));
  });
  reg(ATT_OUT, (i, be, scale) => {
    const { BH, T, D } = shape(i.q!);
    const p = flatProgram(
      `peftAttOut_${D}`,
      ['q', 'k', 'v', 'lse'],
      i.q!.shape,
      BH * T,
      U,
      `${COMMON.replace(/fn dotRows[\s\S]*$/, '')}
      fn main(index: i32) {
        if (index >= uniforms.rows) { return; }
        let bh = index / uniforms.T;
        let i = index - bh * uniforms.T;
        var acc: array<f32, ${D}>;
        for (var j = 0; j <= i; j++) {
          let p = exp(score(bh, i, j) - lse[index]);
          let vo = rowOf(bh, j);
          for (var d = 0; d < ${D}; d++) { acc[d] = fma(p, v[vo + d], acc[d]); }
        }
        let o = rowOf(bh, i);
        for (var d = 0; d < ${D}; d++) { result[o + d] = acc[d]; }
      }`,
    );
    return runProgram(be, p, [i.q!, i.k!, i.v!, i.lse!], uniforms(i.q!, scale));
  });
  // Delta_i = do_i . o_i, recomputed where needed (D multiply-adds, the cost of one score).
  const delta = `
    fn deltaOf(bh: i32, i: i32) -> f32 {
      let r = rowOf(bh, i);
      var s = 0.0;
      for (var d = 0; d < uniforms.D; d++) { s = fma(dO[r + d], o[r + d], s); }
      return s;
    }`;
  reg(ATT_DQ, (i, be, scale) => {
    const { BH, T, D } = shape(i.q!);
    const p = flatProgram(
      `peftAttDq_${D}`,
      ['q', 'k', 'v', 'o', 'dO', 'lse'],
      i.q!.shape,
      BH * T,
      U,
      `${COMMON}${delta}
      fn main(index: i32) {
        if (index >= uniforms.rows) { return; }
        let bh = index / uniforms.T;
        let i = index - bh * uniforms.T;
        let di = deltaOf(bh, i);
        let qi = rowOf(bh, i);
        var acc: array<f32, ${D}>;
        for (var j = 0; j <= i; j++) {
          let p = exp(score(bh, i, j) - lse[index]);
          let kj = rowOf(bh, j);
          let ds = p * (dotRows(qi, kj) - di);
          for (var d = 0; d < ${D}; d++) { acc[d] = fma(ds, k[kj + d], acc[d]); }
        }
        for (var d = 0; d < ${D}; d++) { result[qi + d] = acc[d] * uniforms.scale; }
      }`,
    );
    return runProgram(be, p, [i.q!, i.k!, i.v!, i.o!, i.dO!, i.lse!], uniforms(i.q!, scale));
  });
  reg(ATT_DK, (i, be, scale) => {
    const { BH, T, D } = shape(i.q!);
    const p = flatProgram(
      `peftAttDk_${D}`,
      ['q', 'k', 'v', 'o', 'dO', 'lse'],
      i.q!.shape,
      BH * T,
      U,
      `${COMMON}${delta}
      fn main(index: i32) {
        if (index >= uniforms.rows) { return; }
        let bh = index / uniforms.T;
        let j = index - bh * uniforms.T;
        let kj = rowOf(bh, j);
        var acc: array<f32, ${D}>;
        for (var i = j; i < uniforms.T; i++) {
          let qi = rowOf(bh, i);
          let p = exp(score(bh, i, j) - lse[bh * uniforms.T + i]);
          let ds = p * (dotRows(qi, kj) - deltaOf(bh, i));
          for (var d = 0; d < ${D}; d++) { acc[d] = fma(ds, q[qi + d], acc[d]); }
        }
        for (var d = 0; d < ${D}; d++) { result[kj + d] = acc[d] * uniforms.scale; }
      }`,
    );
    return runProgram(be, p, [i.q!, i.k!, i.v!, i.o!, i.dO!, i.lse!], uniforms(i.q!, scale));
  });
  reg(ATT_DV, (i, be, scale) => {
    const { BH, T, D } = shape(i.q!);
    const p = flatProgram(
      `peftAttDv_${D}`,
      ['q', 'k', 'dO', 'lse'],
      i.q!.shape,
      BH * T,
      U,
      `${COMMON.replace(/fn dotRows[\s\S]*$/, '')}
      fn main(index: i32) {
        if (index >= uniforms.rows) { return; }
        let bh = index / uniforms.T;
        let j = index - bh * uniforms.T;
        var acc: array<f32, ${D}>;
        for (var i = j; i < uniforms.T; i++) {
          let p = exp(score(bh, i, j) - lse[bh * uniforms.T + i]);
          let oi = rowOf(bh, i);
          for (var d = 0; d < ${D}; d++) { acc[d] = fma(p, dO[oi + d], acc[d]); }
        }
        let vj = rowOf(bh, j);
        for (var d = 0; d < ${D}; d++) { result[vj + d] = acc[d]; }
      }`,
    );
    return runProgram(be, p, [i.q!, i.k!, i.dO!, i.lse!], uniforms(i.q!, scale));
  });
}

/** The stock composition, as gpt2.ts computes attention today (additive mask, softmax, product). */
export function causalAttentionStock(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  scale: number,
): tf.Tensor4D {
  const T = q.shape[2];
  const mask = tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)), -1e9));
  const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), scale), mask);
  const out = tf.matMul(tf.softmax(scores, -1), v) as tf.Tensor4D;
  mask.dispose();
  return out;
}

/**
 * softmax(q k^T scale, causal) v for q, k, v [B, H, T, D] (no past keys: training), with gradients
 * for q, k and v. On backends other than webgpu, the stock composition.
 */
export function causalAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, scale: number): tf.Tensor4D {
  if (!onWebGpu()) return causalAttentionStock(q, k, v, scale);
  registerAttention();
  const f = tf.customGrad((qi, ki, vi, save) => {
    const [qq, kk, vv] = [qi, ki, vi] as tf.Tensor[];
    const lse = runKernel(ATT_LSE, { q: qq!, k: kk! }, { scale });
    const o = runKernel(ATT_OUT, { q: qq!, k: kk!, v: vv!, lse }, { scale }) as tf.Tensor4D;
    (save as tf.GradSaveFunc)([qq!, kk!, vv!, o, lse]);
    return {
      value: o,
      gradFunc: (dy, saved) => {
        const [qs, ks, vs, os, ls] = saved as tf.Tensor[];
        const all = { q: qs!, k: ks!, v: vs!, o: os!, dO: dy as tf.Tensor, lse: ls! };
        return [
          runKernel(ATT_DQ, all, { scale }),
          runKernel(ATT_DK, all, { scale }),
          runKernel(ATT_DV, { q: qs!, k: ks!, dO: dy as tf.Tensor, lse: ls! }, { scale }),
        ];
      },
    };
  }) as (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => tf.Tensor4D;
  return f(q, k, v);
}
