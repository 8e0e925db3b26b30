/**
 * Causal self-attention on wasm straight from c_attn's output, through our SIMD kernels (simd.ts):
 * qkv [B*T, 3C] (q, k, v column blocks, heads side by side in each) -> y [B*T, C] (heads side by
 * side, what c_proj reads), and its gradient as one dqkv [B*T, 3C]. Two tfjs kernels, one forward
 * (which also returns P, the softmax, for the backward) and one backward, replace ops.ts's
 * packedSelfAttention on wasm: its 2 transposes in, 2 out, per-item XNNPACK products over the full
 * [T, T] (upper triangle computed, then masked), mask add, softmax, scale multiplies and the
 * softmax gradient's 4 passes, about 45 ms of a 165 ms LoRA step on peftlab-s.
 *
 * Per (batch item, head), in a scratch area of the heap zeroed once a call (so T and D padded to
 * multiples of 8 with zero rows and columns, which change no real value: padded keys sit above every
 * real query's diagonal, padded dy rows are zero):
 *   forward   Qs = q / sqrt(D),  S = Qs K^T (lower triangle),  P = causal softmax(S),  Y = P V
 *   backward  dP = dY V^T,  dS = P (dP - rowsum(P dP)),  dQ = dS K / sqrt(D),  dK = dS^T Qs,  dV = P^T dY
 * (the softmax-attention gradient as in ops.ts's attentionCore; Vaswani et al. 2017 for the forward).
 *
 * A padding mask (classification batches: right padding, keyMask [B, T], 1 a real token) rides
 * in as one more forward input: after S = Qs K^T, simd.ts's keyBias adds (1 - mask[j]) MASKED
 * to every column j a row's softmax reads, as attentionBias adds it to the stock path's scores.
 * The backward needs nothing more: P is saved masked (a padded key's entries exactly 0, as the
 * stock softmax gives them), so a padded key gets dK and dV only from rows that do not mask it.
 *
 * The Llama family (llama.ts) runs the same loops over its separate q [B*T, H*D] and k, v
 * [B*T, KV*D] after RoPE, with grouped-query attention: each key/value head is copied into scratch
 * once and read by its H / KV query heads, and its dK, dV are summed over them there (no repeat_kv
 * copies of k and v, no tile gradient).
 */
import * as tf from '@tensorflow/tfjs';
import { heapOf, onWasm, scratch, simdOn } from './heap';
import type { Ready } from './heap';
import type { SimdKernels } from './simd';
import { shareIdentityOnWasm } from './identity';
import { wasmBackendName } from '../../model/wasm-kernels';

export const ATTENTION_FORWARD = 'PeftLabCausalAttention';
export const ATTENTION_BACKWARD = 'PeftLabCausalAttentionGrad';

export const GQA_FORWARD = 'PeftLabCausalAttentionGqa';
export const GQA_BACKWARD = 'PeftLabCausalAttentionGqaGrad';

interface Attrs {
  B: number;
  T: number;
  H: number;
}

/** The grouped-query kernels' attributes: KV key/value heads, each read by H / KV query heads. */
interface GqaAttrs extends Attrs {
  KV: number;
}

const pad8 = (n: number): number => Math.ceil(n / 8) * 8;

/** T rows of D contiguous floats from src to dst (row strides in bytes), times scale: in vectors when 4 | D. */
function rows(
  k: SimdKernels,
  src: number,
  sRow: number,
  dst: number,
  dRow: number,
  T: number,
  D: number,
  scale = 1,
): void {
  if (D % 4 === 0) k.copyRows(src, sRow, dst, dRow, T, 4 * D, scale);
  else k.copy(src, sRow, 4, dst, dRow, 4, T, D, scale);
}

/**
 * Where the heads of one operand lie in the heap, in bytes: head h of batch item b starts at
 * base + b * item + 4 h D, its T rows `row` apart. c_attn's [B*T, 3C] is three of them at column
 * offsets 0, C, 2C of the same tensor; Llama's q, k, v are three tensors.
 */
interface Heads {
  base: number;
  row: number;
  item: number;
}

/** An operand [B*T, cols] whose columns from `col` on hold heads of D side by side. */
function heads(offset: number, T: number, cols: number, col = 0): Heads {
  return { base: offset + 4 * col, row: 4 * cols, item: 4 * T * cols };
}

const at = (m: Heads, b: number, h: number, D: number): number => m.base + b * m.item + 4 * h * D;

interface Shape {
  B: number;
  T: number;
  H: number;
  KV: number;
  D: number;
}

/**
 * Y = causal softmax(Q K^T / sqrt(D)) V for every (item, query head), query head h reading key/value
 * head floor(h / (H / KV)) (HF's repeat_kv, without the copies); P [B*H, Tp, Tp] kept for the backward.
 */
function forwardHeads(
  r: Ready,
  s: Shape,
  q: Heads,
  kk: Heads,
  v: Heads,
  y: Heads,
  P0: number,
  /** Byte offset of the key mask [B, T] (float32), if any. */
  mask?: number,
): void {
  const { be, k } = r;
  const { B, T, H, KV, D } = s;
  const [Tp, Dp] = [pad8(T), pad8(D)];
  const hd = Tp * Dp;
  const rep = H / KV;
  const sc = scratch(be, k, 4 * hd);
  const [Qs, KT, V, Y] = [sc, sc + 4 * hd, sc + 8 * hd, sc + 12 * hd];
  const scale = 1 / Math.sqrt(D);
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < KV; g++) {
      k.copy(at(kk, b, g, D), kk.row, 4, KT, 4, 4 * Tp, T, D, 1); // K^T [Dp, Tp]
      rows(k, at(v, b, g, D), v.row, V, 4 * Dp, T, D);
      for (let h = g * rep; h < (g + 1) * rep; h++) {
        rows(k, at(q, b, h, D), q.row, Qs, 4 * Dp, T, D, scale);
        const P = P0 + 4 * (b * H + h) * Tp * Tp;
        k.gemm(Tp, Tp, Dp, Qs, 4 * Dp, 4, KT, 4 * Tp, P, 4 * Tp, 1, 0, 1);
        if (mask !== undefined) k.keyBias(P, Tp, T, mask + 4 * b * T);
        k.softmax(P, Tp);
        k.gemm(Tp, Dp, Tp, P, 4 * Tp, 4, V, 4 * Dp, Y, 4 * Dp, 1, 1, 0);
        rows(k, Y, 4 * Dp, at(y, b, h, D), y.row, T, D);
      }
    }
  }
  be.wasm._free(sc);
}

/**
 * The gradient of forwardHeads: dQ per query head; dK and dV of a key/value head summed over the
 * query heads that read it (in scratch, then written once).
 */
function backwardHeads(
  r: Ready,
  s: Shape,
  io: { q: Heads; k: Heads; v: Heads; dy: Heads; dq: Heads; dk: Heads; dv: Heads },
  P0: number,
): void {
  const { be, k } = r;
  const { B, T, H, KV, D } = s;
  const [Tp, Dp] = [pad8(T), pad8(D)];
  const hd = Tp * Dp;
  const rep = H / KV;
  const sc = scratch(be, k, 9 * hd + Tp * Tp);
  const [Qs, K, VT, dY, dQ, dK, dV, dKsum, dVsum, dS] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(
    (i) => sc + 4 * i * hd,
  ) as [number, number, number, number, number, number, number, number, number, number];
  const scale = 1 / Math.sqrt(D);
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < KV; g++) {
      rows(k, at(io.k, b, g, D), io.k.row, K, 4 * Dp, T, D);
      k.copy(at(io.v, b, g, D), io.v.row, 4, VT, 4, 4 * Tp, T, D, 1); // V^T [Dp, Tp]
      for (let h = g * rep; h < (g + 1) * rep; h++) {
        rows(k, at(io.q, b, h, D), io.q.row, Qs, 4 * Dp, T, D, scale);
        rows(k, at(io.dy, b, h, D), io.dy.row, dY, 4 * Dp, T, D);
        const P = P0 + 4 * (b * H + h) * Tp * Tp;
        // The first query head of the group writes the sums, the others add to them.
        const [dKh, dVh] = h === g * rep ? [dKsum, dVsum] : [dK, dV];
        k.gemm(Tp, Tp, Dp, dY, 4 * Dp, 4, VT, 4 * Tp, dS, 4 * Tp, 1, 0, 1); // dP
        k.dsoftmax(P, dS, Tp);
        k.gemm(Tp, Dp, Tp, dS, 4 * Tp, 4, K, 4 * Dp, dQ, 4 * Dp, scale, 1, 0);
        k.gemm(Tp, Dp, Tp, dS, 4, 4 * Tp, Qs, 4 * Dp, dKh, 4 * Dp, 1, 2, 0); // dS^T Qs
        k.gemm(Tp, Dp, Tp, P, 4, 4 * Tp, dY, 4 * Dp, dVh, 4 * Dp, 1, 2, 0); // P^T dY
        if (dKh === dK) {
          k.addTo(dK, dKsum, 4 * hd);
          k.addTo(dV, dVsum, 4 * hd);
        }
        rows(k, dQ, 4 * Dp, at(io.dq, b, h, D), io.dq.row, T, D);
      }
      rows(k, dKsum, 4 * Dp, at(io.dk, b, g, D), io.dk.row, T, D);
      rows(k, dVsum, 4 * Dp, at(io.dv, b, g, D), io.dv.row, T, D);
    }
  }
  be.wasm._free(sc);
}

const offset = (r: Ready, t: tf.TensorInfo): number => r.be.dataIdMap.get(t.dataId).memoryOffset;

/** The forward's optional key mask input [B, T] float32: its byte offset, or undefined. */
const maskOffset = (r: Ready, m: unknown): number | undefined =>
  m === undefined ? undefined : offset(r, m as tf.TensorInfo);

function register(): boolean {
  if (!wasmBackendName() || !simdOn(tf.backend())) return false;
  // Offsets are read after the last allocation of each call (an allocation may grow and move the
  // heap's buffer, but not a tensor's offset in it).
  const fwd = onWasm(ATTENTION_FORWARD, ({ inputs, backend, attrs }) => {
    const { B, T, H } = attrs as unknown as Attrs;
    const heap = heapOf(backend);
    const qkv = inputs.qkv as tf.TensorInfo;
    const C = qkv.shape[1]! / 3;
    const Tp = pad8(T);
    const y = heap.makeOutput([B * T, C], 'float32');
    const p = heap.makeOutput([B * H, Tp, Tp], 'float32');
    const r = simdOn(backend)!;
    const src = offset(r, qkv);
    const cols = (col: number): Heads => heads(src, T, 3 * C, col);
    const s = { B, T, H, KV: H, D: C / H };
    const mask = maskOffset(r, inputs.mask);
    forwardHeads(r, s, cols(0), cols(C), cols(2 * C), heads(offset(r, y), T, C), offset(r, p), mask);
    return [y, p];
  });
  const bwd = onWasm(ATTENTION_BACKWARD, ({ inputs, backend, attrs }) => {
    const { B, T, H } = attrs as unknown as Attrs;
    const heap = heapOf(backend);
    const qkv = inputs.qkv as tf.TensorInfo;
    const C = qkv.shape[1]! / 3;
    const dqkv = heap.makeOutput([B * T, 3 * C], 'float32');
    const r = simdOn(backend)!;
    const [src, dst] = [offset(r, qkv), offset(r, dqkv)];
    const [x, dx] = [(col: number) => heads(src, T, 3 * C, col), (col: number) => heads(dst, T, 3 * C, col)];
    const io = {
      q: x(0),
      k: x(C),
      v: x(2 * C),
      dy: heads(offset(r, inputs.dy as tf.TensorInfo), T, C),
      dq: dx(0),
      dk: dx(C),
      dv: dx(2 * C),
    };
    backwardHeads(r, { B, T, H, KV: H, D: C / H }, io, offset(r, inputs.p as tf.TensorInfo));
    return dqkv;
  });
  return fwd !== null && bwd !== null;
}

function registerGqa(): boolean {
  if (!wasmBackendName() || !simdOn(tf.backend())) return false;
  const fwd = onWasm(GQA_FORWARD, ({ inputs, backend, attrs }) => {
    const { B, T, H, KV } = attrs as unknown as GqaAttrs;
    const heap = heapOf(backend);
    const [q, k, v] = [inputs.q, inputs.k, inputs.v] as tf.TensorInfo[] as [
      tf.TensorInfo,
      tf.TensorInfo,
      tf.TensorInfo,
    ];
    const D = q.shape[1]! / H;
    const Tp = pad8(T);
    const y = heap.makeOutput([B * T, H * D], 'float32');
    const p = heap.makeOutput([B * H, Tp, Tp], 'float32');
    const r = simdOn(backend)!;
    const [hq, hk] = [
      (t: tf.TensorInfo) => heads(offset(r, t), T, H * D),
      (t: tf.TensorInfo) => heads(offset(r, t), T, KV * D),
    ];
    const mask = maskOffset(r, inputs.mask);
    forwardHeads(r, { B, T, H, KV, D }, hq(q), hk(k), hk(v), hq(y), offset(r, p), mask);
    return [y, p];
  });
  const bwd = onWasm(GQA_BACKWARD, ({ inputs, backend, attrs }) => {
    const { B, T, H, KV } = attrs as unknown as GqaAttrs;
    const heap = heapOf(backend);
    const [q, k, v, p, dy] = [inputs.q, inputs.k, inputs.v, inputs.p, inputs.dy] as tf.TensorInfo[] as [
      tf.TensorInfo,
      tf.TensorInfo,
      tf.TensorInfo,
      tf.TensorInfo,
      tf.TensorInfo,
    ];
    const D = q.shape[1]! / H;
    const dq = heap.makeOutput([B * T, H * D], 'float32');
    const dk = heap.makeOutput([B * T, KV * D], 'float32');
    const dv = heap.makeOutput([B * T, KV * D], 'float32');
    const r = simdOn(backend)!;
    const [hq, hk] = [
      (t: tf.TensorInfo) => heads(offset(r, t), T, H * D),
      (t: tf.TensorInfo) => heads(offset(r, t), T, KV * D),
    ];
    const io = { q: hq(q), k: hk(k), v: hk(v), dy: hq(dy), dq: hq(dq), dk: hk(dk), dv: hk(dv) };
    backwardHeads(r, { B, T, H, KV, D }, io, offset(r, p));
    return [dq, dk, dv];
  });
  return fwd !== null && bwd !== null;
}

/**
 * The key mask as the forward kernel's input: float32 [B, T] (a cast copy of an int mask, which
 * withMask frees after the forward), or undefined for none.
 */
function maskInput(keyMask: tf.Tensor2D | undefined): tf.Tensor2D | undefined {
  if (!keyMask) return undefined;
  return keyMask.dtype === 'float32' ? keyMask : (tf.cast(keyMask, 'float32') as tf.Tensor2D);
}

/** Runs `f` with the mask input, then frees the mask if it was cast for the call. */
function withMask<R>(keyMask: tf.Tensor2D | undefined, m: tf.Tensor2D | undefined, f: () => R): R {
  try {
    return f();
  } finally {
    if (m && m !== keyMask) m.dispose();
  }
}

/**
 * Causal self-attention of qkv [B*T, 3C] with nHead heads -> [B*T, C] through our SIMD kernels, or
 * null where they do not run (not wasm, switched off by setWasmKernels, or our module cannot link to the heap):
 * the caller then takes ops.ts's packedSelfAttention. With keyMask [B, T] (1 a real key, 0
 * padding; no past keys), padded keys are masked as attentionBias masks them.
 */
export function simdCausalAttention(
  qkv: tf.Tensor2D,
  B: number,
  T: number,
  nHead: number,
  keyMask?: tf.Tensor2D,
): tf.Tensor2D | null {
  if (qkv.dtype !== 'float32' || qkv.shape[1] % (3 * nHead) !== 0) return null;
  // A mask that does not fit: the stock path says what is wrong (attentionBias).
  if (keyMask && (keyMask.shape[0] !== B || keyMask.shape[1] !== T)) return null;
  if (!register()) return null;
  shareIdentityOnWasm(); // customGrad's save keeps qkv and P through Identity: shared, not copied
  const attrs = { B, T, H: nHead } as unknown as tf.NamedAttrMap;
  const m = maskInput(keyMask);
  const f = tf.customGrad((x, save) => {
    const inputs: tf.NamedTensorMap = m ? { qkv: x as tf.Tensor, mask: m } : { qkv: x as tf.Tensor };
    const [y, p] = tf.engine().runKernel(ATTENTION_FORWARD, inputs, attrs) as [tf.Tensor2D, tf.Tensor];
    (save as tf.GradSaveFunc)([x as tf.Tensor, p]);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [xs, ps] = saved as [tf.Tensor, tf.Tensor];
        return tf
          .engine()
          .runKernel(ATTENTION_BACKWARD, { qkv: xs, p: ps, dy: dy as tf.Tensor }, attrs) as tf.Tensor;
      },
    };
  }) as (x: tf.Tensor2D) => tf.Tensor2D;
  return withMask(keyMask, m, () => f(qkv));
}

/**
 * Grouped-query causal attention (the Llama family, after RoPE) through our SIMD kernels: q
 * [B*T, H*D], k and v [B*T, KV*D] (heads side by side) -> [B*T, H*D], query head h reading
 * key/value head floor(h / (H / KV)) straight from k and v (no repeat_kv copies), with gradients
 * for all three. Null where the kernels do not run (as simdCausalAttention): the caller takes the
 * stock path. keyMask [B, T] masks padded keys, as in simdCausalAttention.
 */
export function simdCausalAttentionGqa(
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  v: tf.Tensor2D,
  B: number,
  T: number,
  H: number,
  KV: number,
  keyMask?: tf.Tensor2D,
): tf.Tensor2D | null {
  const D = q.shape[1] / H;
  const ok =
    q.dtype === 'float32' &&
    k.dtype === 'float32' &&
    v.dtype === 'float32' &&
    Number.isInteger(D) &&
    H % KV === 0 &&
    k.shape[1] === KV * D &&
    v.shape[1] === KV * D &&
    q.shape[0] === B * T &&
    k.shape[0] === B * T &&
    v.shape[0] === B * T &&
    (!keyMask || (keyMask.shape[0] === B && keyMask.shape[1] === T));
  if (!ok || !registerGqa()) return null;
  shareIdentityOnWasm(); // customGrad's save keeps q, k, v and P through Identity: shared, not copied
  const attrs = { B, T, H, KV } as unknown as tf.NamedAttrMap;
  const m = maskInput(keyMask);
  const f = tf.customGrad((qi, ki, vi, save) => {
    const inputs = { q: qi as tf.Tensor, k: ki as tf.Tensor, v: vi as tf.Tensor };
    const kernelInputs = m ? { ...inputs, mask: m } : inputs;
    const [y, p] = tf.engine().runKernel(GQA_FORWARD, kernelInputs, attrs) as [tf.Tensor2D, tf.Tensor];
    (save as tf.GradSaveFunc)([inputs.q, inputs.k, inputs.v, p]);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [qs, ks, vs, ps] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        return tf
          .engine()
          .runKernel(GQA_BACKWARD, { q: qs, k: ks, v: vs, p: ps, dy: dy as tf.Tensor }, attrs) as tf.Tensor[];
      },
    };
  }) as (q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D) => tf.Tensor2D;
  return withMask(keyMask, m, () => f(q, k, v));
}
