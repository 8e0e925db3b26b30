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
 * Two layouts: q, k, v [B, H, T, D] (causalAttention), or packed as c_attn writes them, qkv
 * [B, T, 3C] -> y [B, T, C] (causalAttentionPacked, what gpt2.ts uses: no transposes around it, and
 * dq, dk, dv as one dispatch writing dqkv [B, T, 3C]).
 */
import * as tf from '@tensorflow/tfjs';
import { InternalError } from '../../errors';
import { flatProgram, onWebGpu, registerWebGpuKernel, runKernel, runProgram, type Uniform } from './program';

export const ATT_LSE = 'PeftLabAttentionLse';
export const ATT_OUT = 'PeftLabAttentionOut';
export const ATT_DQ = 'PeftLabAttentionDq';
export const ATT_DK = 'PeftLabAttentionDk';
export const ATT_DV = 'PeftLabAttentionDv';

export const ATT_PACKED_LSE = 'PeftLabAttentionPackedLse';
export const ATT_PACKED_OUT = 'PeftLabAttentionPackedOut';
export const ATT_PACKED_DQKV = 'PeftLabAttentionPackedDqkv';

type Info = tf.TensorInfo;

/**
 * Where the rows live. `heads` ([B, H, T, D]): q, k, v, o each their own tensor, row (bh, t) at
 * (bh T + t) D. `packed`: q, k, v are column blocks of c_attn's output qkv [B, T, 3C] (row (b, t)
 * holds q heads, then k heads, then v heads, head h at h D within its block), o and dO are
 * [B, T, C]; reading and writing these in place saves gpt2.ts a transpose and an unstack forward and
 * their gradients (a stack, a transpose) backward, per layer.
 */
type Layout = 'heads' | 'packed';

/** WGSL offset functions of a layout (qOff, kOff, vOff, oOff), and the buffers q, k, v are in. */
function addressing(layout: Layout): { Q: string; K: string; V: string; code: string } {
  if (layout === 'heads') {
    const rowOf = 'return (bh * uniforms.T + t) * uniforms.D;';
    return {
      Q: 'q',
      K: 'k',
      V: 'v',
      code: ['q', 'k', 'v', 'o'].map((n) => `fn ${n}Off(bh: i32, t: i32) -> i32 { ${rowOf} }`).join('\n'),
    };
  }
  return {
    Q: 'qkv',
    K: 'qkv',
    V: 'qkv',
    code: `
      fn tokOf(bh: i32, t: i32) -> i32 { return (bh / uniforms.H) * uniforms.T + t; }
      fn headOf(bh: i32) -> i32 { return (bh % uniforms.H) * uniforms.D; }
      fn qOff(bh: i32, t: i32) -> i32 { return tokOf(bh, t) * 3 * uniforms.C + headOf(bh); }
      fn kOff(bh: i32, t: i32) -> i32 { return qOff(bh, t) + uniforms.C; }
      fn vOff(bh: i32, t: i32) -> i32 { return qOff(bh, t) + 2 * uniforms.C; }
      fn oOff(bh: i32, t: i32) -> i32 { return tokOf(bh, t) * uniforms.C + headOf(bh); }`,
  };
}

/** Helpers every attention shader shares: the scaled score of (i, j), do_i . v_j, Delta_i. */
function common(layout: Layout, backward: boolean): string {
  const { Q, K, V, code } = addressing(layout);
  const fwd = `${code}
  fn score(bh: i32, i: i32, j: i32) -> f32 {
    let qo = qOff(bh, i);
    let ko = kOff(bh, j);
    var s = 0.0;
    for (var d = 0; d < uniforms.D; d++) { s = fma(${Q}[qo + d], ${K}[ko + d], s); }
    return s * uniforms.scale;
  }`;
  if (!backward) return fwd;
  // Delta_i = do_i . o_i, recomputed where needed (D multiply-adds, the cost of one score).
  return `${fwd}
  fn dotDoV(bh: i32, i: i32, j: i32) -> f32 {
    let a = oOff(bh, i);
    let b = vOff(bh, j);
    var s = 0.0;
    for (var d = 0; d < uniforms.D; d++) { s = fma(dO[a + d], ${V}[b + d], s); }
    return s;
  }
  fn deltaOf(bh: i32, i: i32) -> f32 {
    let r = oOff(bh, i);
    var s = 0.0;
    for (var d = 0; d < uniforms.D; d++) { s = fma(dO[r + d], o[r + d], s); }
    return s;
  }`;
}

/** WGSL statements: with `bh`, `i` (a query row) in scope, leaves logsumexp_j<=i in `lse_i`. */
const LSE_BODY = `
        var m = -3.0e38;
        var l = 0.0;
        for (var j = 0; j <= i; j++) {
          let s = score(bh, i, j);
          let mNew = max(m, s);
          l = l * exp(m - mNew) + exp(s - mNew);
          m = mNew;
        }
        let lse_i = m + log(l);`;

function outBody(layout: Layout, D: number): string {
  const { V } = addressing(layout);
  return `
        var acc: array<f32, ${D}>;
        let li = lse[bh * uniforms.T + i];
        for (var j = 0; j <= i; j++) {
          let p = exp(score(bh, i, j) - li);
          let vo = vOff(bh, j);
          for (var d = 0; d < ${D}; d++) { acc[d] = fma(p, ${V}[vo + d], acc[d]); }
        }
        let ro = oOff(bh, i);
        for (var d = 0; d < ${D}; d++) { result[ro + d] = acc[d]; }`;
}

/** dq for query row `i`, written at `at` (an offset expression in the output). */
function dqBody(layout: Layout, D: number, at: string): string {
  const { K } = addressing(layout);
  return `
        let di = deltaOf(bh, i);
        let li = lse[bh * uniforms.T + i];
        var acc: array<f32, ${D}>;
        for (var j = 0; j <= i; j++) {
          let p = exp(score(bh, i, j) - li);
          let kj = kOff(bh, j);
          let ds = p * (dotDoV(bh, i, j) - di);
          for (var d = 0; d < ${D}; d++) { acc[d] = fma(ds, ${K}[kj + d], acc[d]); }
        }
        let w = ${at};
        for (var d = 0; d < ${D}; d++) { result[w + d] = acc[d] * uniforms.scale; }`;
}

/** dk for key row `j`. */
function dkBody(layout: Layout, D: number, at: string): string {
  const { Q } = addressing(layout);
  return `
        var acc: array<f32, ${D}>;
        for (var i = j; i < uniforms.T; i++) {
          let p = exp(score(bh, i, j) - lse[bh * uniforms.T + i]);
          let ds = p * (dotDoV(bh, i, j) - deltaOf(bh, i));
          let qi = qOff(bh, i);
          for (var d = 0; d < ${D}; d++) { acc[d] = fma(ds, ${Q}[qi + d], acc[d]); }
        }
        let w = ${at};
        for (var d = 0; d < ${D}; d++) { result[w + d] = acc[d] * uniforms.scale; }`;
}

/** dv for key row `j`. */
function dvBody(D: number, at: string): string {
  return `
        var acc: array<f32, ${D}>;
        for (var i = j; i < uniforms.T; i++) {
          let p = exp(score(bh, i, j) - lse[bh * uniforms.T + i]);
          let oi = oOff(bh, i);
          for (var d = 0; d < ${D}; d++) { acc[d] = fma(p, dO[oi + d], acc[d]); }
        }
        let w = ${at};
        for (var d = 0; d < ${D}; d++) { result[w + d] = acc[d]; }`;
}

/** Sizes of a call: B H (rows of heads), T, D, H, C = H D. */
interface Dims {
  BH: number;
  T: number;
  D: number;
  H: number;
}

function headsDims(q: Info): Dims {
  const [B, H, T, D] = q.shape as [number, number, number, number];
  return { BH: B * H, T, D, H };
}

function packedDims(qkv: Info, H: number): Dims {
  const [B, T, C3] = qkv.shape as [number, number, number];
  return { BH: B * H, T, D: C3 / 3 / H, H };
}

function uniforms(dm: Dims, scale: number, rows = dm.BH * dm.T): Uniform[] {
  return [
    { type: 'int32', data: [rows] },
    { type: 'int32', data: [dm.T] },
    { type: 'int32', data: [dm.D] },
    { type: 'int32', data: [dm.H] },
    { type: 'int32', data: [dm.H * dm.D] },
    { type: 'float32', data: [scale] },
  ];
}
const U = 'rows: i32, T: i32, D: i32, H: i32, C: i32, scale: f32,';

/** `index` -> (bh, t) for a thread per row of [B H, T]. */
const ROW = `
        if (index >= uniforms.rows) { return; }
        let bh = index / uniforms.T;
        let t = index - bh * uniforms.T;`;

type Attrs = { scale: number; heads?: number };

const reg = registerWebGpuKernel<Attrs>;

let registered = false;
export function registerAttention(): void {
  if (registered) return;
  registered = true;
  reg(ATT_LSE, (i, be, { scale }) => {
    const dm = headsDims(i.q!);
    const p = flatProgram(
      'peftAttLse',
      ['q', 'k'],
      [dm.BH * dm.T],
      dm.BH * dm.T,
      U,
      `${common('heads', false)}
      fn main(index: i32) {${ROW}
        let i = t;${LSE_BODY}
        result[index] = lse_i;
      }`,
    );
    return runProgram(be, p, [i.q!, i.k!], uniforms(dm, scale));
  });
  reg(ATT_OUT, (i, be, { scale }) => {
    const dm = headsDims(i.q!);
    const p = flatProgram(
      `peftAttOut_${dm.D}`,
      ['q', 'k', 'v', 'lse'],
      i.q!.shape,
      dm.BH * dm.T,
      U,
      `${common('heads', false)}
      fn main(index: i32) {${ROW}
        let i = t;${outBody('heads', dm.D)}
      }`,
    );
    return runProgram(be, p, [i.q!, i.k!, i.v!, i.lse!], uniforms(dm, scale));
  });
  const back = (name: string, key: string, body: (D: number) => string, vars: string[]): void =>
    reg(name, (i, be, { scale }) => {
      const dm = headsDims(i.q!);
      const p = flatProgram(
        `${key}_${dm.D}`,
        vars,
        i.q!.shape,
        dm.BH * dm.T,
        U,
        `${common('heads', vars.includes('o'))}
      fn main(index: i32) {${ROW}
        ${body(dm.D)}
      }`,
      );
      return runProgram(
        be,
        p,
        vars.map((n) => i[n]!),
        uniforms(dm, scale),
      );
    });
  const all = ['q', 'k', 'v', 'o', 'dO', 'lse'];
  back(ATT_DQ, 'peftAttDq', (D) => `let i = t;${dqBody('heads', D, 'qOff(bh, i)')}`, all);
  back(ATT_DK, 'peftAttDk', (D) => `let j = t;${dkBody('heads', D, 'kOff(bh, j)')}`, all);
  // dv needs neither v nor Delta, so neither o: the shader declares only what it reads.
  back(ATT_DV, 'peftAttDv', (D) => `let j = t;${dvBody(D, 'vOff(bh, j)')}`, ['q', 'k', 'dO', 'lse']);

  reg(ATT_PACKED_LSE, (i, be, { scale, heads }) => {
    const dm = packedDims(i.qkv!, heads!);
    const p = flatProgram(
      'peftAttPackedLse',
      ['qkv'],
      [dm.BH * dm.T],
      dm.BH * dm.T,
      U,
      `${common('packed', false)}
      fn main(index: i32) {${ROW}
        let i = t;${LSE_BODY}
        result[index] = lse_i;
      }`,
    );
    return runProgram(be, p, [i.qkv!], uniforms(dm, scale));
  });
  reg(ATT_PACKED_OUT, (i, be, { scale, heads }) => {
    const dm = packedDims(i.qkv!, heads!);
    const [B, T] = i.qkv!.shape as [number, number, number];
    const p = flatProgram(
      `peftAttPackedOut_${dm.D}`,
      ['qkv', 'lse'],
      [B, T, dm.H * dm.D],
      dm.BH * dm.T,
      U,
      `${common('packed', false)}
      fn main(index: i32) {${ROW}
        let i = t;${outBody('packed', dm.D)}
      }`,
    );
    return runProgram(be, p, [i.qkv!, i.lse!], uniforms(dm, scale));
  });
  // dq, dk and dv in one dispatch, written straight into dqkv [B, T, 3C] (qkv's own layout): a
  // thread per (part, row), the part outermost so a workgroup's threads mostly take one branch.
  reg(ATT_PACKED_DQKV, (i, be, { scale, heads }) => {
    const dm = packedDims(i.qkv!, heads!);
    const rows = dm.BH * dm.T;
    const p = flatProgram(
      `peftAttPackedDqkv_${dm.D}`,
      ['qkv', 'o', 'dO', 'lse'],
      i.qkv!.shape,
      3 * rows,
      U,
      `${common('packed', true)}
      fn main(index: i32) {
        if (index >= 3 * uniforms.rows) { return; }
        let part = index / uniforms.rows;
        let r = index - part * uniforms.rows;
        let bh = r / uniforms.T;
        let t = r - bh * uniforms.T;
        if (part == 0) {
          let i = t;${dqBody('packed', dm.D, 'qOff(bh, i)')}
        } else if (part == 1) {
          let j = t;${dkBody('packed', dm.D, 'kOff(bh, j)')}
        } else {
          let j = t;${dvBody(dm.D, 'vOff(bh, j)')}
        }
      }`,
    );
    return runProgram(be, p, [i.qkv!, i.o!, i.dO!, i.lse!], uniforms(dm, scale, rows));
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

/**
 * The stock composition for the packed layout: qkv [B, T, 3C] split into heads [B, H, T, D] (reshape,
 * transpose, unstack), causalAttentionStock, and back to [B, T, C].
 */
export function causalAttentionPackedStock(qkv: tf.Tensor3D, heads: number, scale: number): tf.Tensor3D {
  const [B, T, C3] = qkv.shape;
  const C = C3 / 3;
  const split = tf.transpose(tf.reshape(qkv, [B, T, 3, heads, C / heads]), [2, 0, 3, 1, 4]);
  const [q, k, v] = tf.unstack(split, 0) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  const y = causalAttentionStock(q, k, v, scale); // [B, H, T, D]
  return tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [B, T, C]);
}

/**
 * Causal attention read straight from c_attn's output: qkv [B, T, 3C] (q, k, v column blocks, heads
 * side by side in each) -> y [B, T, C] (heads side by side, what c_proj reads), with the gradient
 * for qkv as one [B, T, 3C] tensor. On webgpu 2 dispatches forward and 1 backward, no transposes;
 * elsewhere the stock composition.
 */
export function causalAttentionPacked(qkv: tf.Tensor3D, heads: number, scale: number): tf.Tensor3D {
  const C3 = qkv.shape[2];
  if (C3 % (3 * heads) !== 0) {
    throw new InternalError(`qkv has ${C3} columns, not 3 x a multiple of ${heads} heads`);
  }
  if (!onWebGpu()) return causalAttentionPackedStock(qkv, heads, scale);
  registerAttention();
  const attrs = { scale, heads };
  const f = tf.customGrad((x, save) => {
    const packed = x as tf.Tensor;
    const lse = runKernel(ATT_PACKED_LSE, { qkv: packed }, attrs);
    const o = runKernel(ATT_PACKED_OUT, { qkv: packed, lse }, attrs) as tf.Tensor3D;
    (save as tf.GradSaveFunc)([packed, o, lse]);
    return {
      value: o,
      gradFunc: (dy, saved) => {
        const [qs, os, ls] = saved as tf.Tensor[];
        return runKernel(ATT_PACKED_DQKV, { qkv: qs!, o: os!, dO: dy as tf.Tensor, lse: ls! }, attrs);
      },
    };
  }) as (qkv: tf.Tensor) => tf.Tensor3D;
  return f(qkv);
}
