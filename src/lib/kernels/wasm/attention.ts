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
 *
 * Past keys (prefix tuning, P-tuning v2: P virtual tokens' k, v [B, H, P, D] per layer; a KV cache)
 * ride in as two more inputs. The S = P + T keys are run as a square causal problem of S rows whose
 * first P query rows are zero (the past positions have no queries): K, V scratch rows 0..P-1 from
 * the past, P.. from this call's k, v; Qs rows P.. from q, rows 0..P-1 left zero; the causal softmax
 * over S gives query i (absolute position P + i) keys j <= P + i, exactly attentionBias's causal
 * part, and the key mask is [B, S]; Y rows P.. are the output. Backward: dY rows 0..P-1 are zero, so
 * those rows' dP, and so dS = P (dP - rowsum(P dP)), are exactly 0 and add nothing to dK, dV; dK, dV
 * rows 0..P-1 are the past's gradients (the prefix encoder trains through them). The cost is P
 * wasted query rows (P = 10-30 against T = 64-128 in training); this path is taken only where
 * P <= 2T, so a decoding step (T = 1 after a long cache) keeps the stock [1, S] composition.
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
  /** Past positions (keys with no query), 0 or absent for none. */
  past?: number;
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
  /** Bytes from one head to the next: 4 D (heads side by side) unless given. */
  head?: number;
}

/** An operand [B*T, cols] whose columns from `col` on hold heads of D side by side. */
function heads(offset: number, T: number, cols: number, col = 0): Heads {
  return { base: offset + 4 * col, row: 4 * cols, item: 4 * T * cols };
}

const at = (m: Heads, b: number, h: number, D: number): number => m.base + b * m.item + h * (m.head ?? 4 * D);

/** Past keys or values [B, heads, P, D] at `offset`: each head's P rows contiguous. */
function pastHeads(offset: number, heads: number, P: number, D: number): Heads {
  return { base: offset, row: 4 * D, item: 4 * heads * P * D, head: 4 * P * D };
}

/** Past keys and values of P positions (heads as in Heads), or none. */
interface Past {
  k: Heads;
  v: Heads;
  P: number;
}

interface Shape {
  B: number;
  T: number;
  H: number;
  KV: number;
  D: number;
}

/**
 * Y = causal softmax(Q K^T / sqrt(D)) V for every (item, query head), query head h reading key/value
 * head floor(h / (H / KV)) (HF's repeat_kv, without the copies); P [B*H, Sp, Sp] kept for the
 * backward (S = past + T keys, Sp = pad8(S)).
 */
function forwardHeads(
  r: Ready,
  s: Shape,
  q: Heads,
  kk: Heads,
  v: Heads,
  y: Heads,
  P0: number,
  /** Byte offset of the key mask [B, S] (float32), if any. */
  mask?: number,
  past?: Past,
): void {
  const { be, k } = r;
  const { B, T, H, KV, D } = s;
  const L = past?.P ?? 0; // rows 0..L-1: past keys, no queries
  const S = L + T;
  const [Sp, Dp] = [pad8(S), pad8(D)];
  const hd = Sp * Dp;
  const rep = H / KV;
  const sc = scratch(be, k, 4 * hd);
  const [Qs, KT, V, Y] = [sc, sc + 4 * hd, sc + 8 * hd, sc + 12 * hd];
  const scale = 1 / Math.sqrt(D);
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < KV; g++) {
      if (past) {
        k.copy(at(past.k, b, g, D), past.k.row, 4, KT, 4, 4 * Sp, L, D, 1);
        rows(k, at(past.v, b, g, D), past.v.row, V, 4 * Dp, L, D);
      }
      k.copy(at(kk, b, g, D), kk.row, 4, KT + 4 * L, 4, 4 * Sp, T, D, 1); // K^T [Dp, Sp]
      rows(k, at(v, b, g, D), v.row, V + 4 * L * Dp, 4 * Dp, T, D);
      for (let h = g * rep; h < (g + 1) * rep; h++) {
        // Qs rows 0..L-1 stay zero (scratch is zeroed once a call and never written there).
        rows(k, at(q, b, h, D), q.row, Qs + 4 * L * Dp, 4 * Dp, T, D, scale);
        const P = P0 + 4 * (b * H + h) * Sp * Sp;
        k.gemm(Sp, Sp, Dp, Qs, 4 * Dp, 4, KT, 4 * Sp, P, 4 * Sp, 1, 0, 1);
        if (mask !== undefined) k.keyBias(P, Sp, S, mask + 4 * b * S);
        k.softmax(P, Sp);
        k.gemm(Sp, Dp, Sp, P, 4 * Sp, 4, V, 4 * Dp, Y, 4 * Dp, 1, 1, 0);
        rows(k, Y + 4 * L * Dp, 4 * Dp, at(y, b, h, D), y.row, T, D);
      }
    }
  }
  be.wasm._free(sc);
}

/**
 * The gradient of forwardHeads: dQ per query head; dK and dV of a key/value head summed over the
 * query heads that read it (in scratch, then written once: rows 0..P-1 to the past's gradients).
 */
function backwardHeads(
  r: Ready,
  s: Shape,
  io: { q: Heads; k: Heads; v: Heads; dy: Heads; dq: Heads; dk: Heads; dv: Heads },
  P0: number,
  past?: Past & { dk: Heads; dv: Heads },
): void {
  const { be, k } = r;
  const { B, T, H, KV, D } = s;
  const L = past?.P ?? 0;
  const [Tp, Dp] = [pad8(L + T), pad8(D)]; // Tp: the padded S = L + T
  const hd = Tp * Dp;
  const rep = H / KV;
  const sc = scratch(be, k, 9 * hd + Tp * Tp);
  const [Qs, K, VT, dY, dQ, dK, dV, dKsum, dVsum, dS] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(
    (i) => sc + 4 * i * hd,
  ) as [number, number, number, number, number, number, number, number, number, number];
  const scale = 1 / Math.sqrt(D);
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < KV; g++) {
      if (past) {
        rows(k, at(past.k, b, g, D), past.k.row, K, 4 * Dp, L, D);
        k.copy(at(past.v, b, g, D), past.v.row, 4, VT, 4, 4 * Tp, L, D, 1);
      }
      rows(k, at(io.k, b, g, D), io.k.row, K + 4 * L * Dp, 4 * Dp, T, D);
      k.copy(at(io.v, b, g, D), io.v.row, 4, VT + 4 * L, 4, 4 * Tp, T, D, 1); // V^T [Dp, Tp]
      for (let h = g * rep; h < (g + 1) * rep; h++) {
        // Qs and dY rows 0..L-1 stay zero: those rows' dS is exactly 0.
        rows(k, at(io.q, b, h, D), io.q.row, Qs + 4 * L * Dp, 4 * Dp, T, D, scale);
        rows(k, at(io.dy, b, h, D), io.dy.row, dY + 4 * L * Dp, 4 * Dp, T, D);
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
        rows(k, dQ + 4 * L * Dp, 4 * Dp, at(io.dq, b, h, D), io.dq.row, T, D);
      }
      if (past) {
        rows(k, dKsum, 4 * Dp, at(past.dk, b, g, D), past.dk.row, L, D);
        rows(k, dVsum, 4 * Dp, at(past.dv, b, g, D), past.dv.row, L, D);
      }
      rows(k, dKsum + 4 * L * Dp, 4 * Dp, at(io.dk, b, g, D), io.dk.row, T, D);
      rows(k, dVsum + 4 * L * Dp, 4 * Dp, at(io.dv, b, g, D), io.dv.row, T, D);
    }
  }
  be.wasm._free(sc);
}

const offset = (r: Ready, t: tf.TensorInfo): number => r.be.dataIdMap.get(t.dataId).memoryOffset;

/** The forward's optional key mask input [B, T] float32: its byte offset, or undefined. */
const maskOffset = (r: Ready, m: unknown): number | undefined =>
  m === undefined ? undefined : offset(r, m as tf.TensorInfo);

/** The optional past inputs pastK, pastV [B, heads, L, D] as Past, or undefined. */
function pastOf(
  r: Ready,
  inputs: tf.NamedTensorInfoMap,
  heads: number,
  L: number,
  D: number,
): Past | undefined {
  const [pk, pv] = [inputs.pastK, inputs.pastV];
  if (!pk || !pv || L === 0) return undefined;
  return { k: pastHeads(offset(r, pk), heads, L, D), v: pastHeads(offset(r, pv), heads, L, D), P: L };
}

function register(): boolean {
  if (!wasmBackendName() || !simdOn(tf.backend())) return false;
  // Offsets are read after the last allocation of each call (an allocation may grow and move the
  // heap's buffer, but not a tensor's offset in it).
  const fwd = onWasm(ATTENTION_FORWARD, ({ inputs, backend, attrs }) => {
    const { B, T, H, past: L = 0 } = attrs as unknown as Attrs;
    const heap = heapOf(backend);
    const qkv = inputs.qkv as tf.TensorInfo;
    const C = qkv.shape[1]! / 3;
    const Sp = pad8(L + T);
    const y = heap.makeOutput([B * T, C], 'float32');
    const p = heap.makeOutput([B * H, Sp, Sp], 'float32');
    const r = simdOn(backend)!;
    const src = offset(r, qkv);
    const cols = (col: number): Heads => heads(src, T, 3 * C, col);
    const s = { B, T, H, KV: H, D: C / H };
    const mask = maskOffset(r, inputs.mask);
    const past = pastOf(r, inputs, H, L, C / H);
    forwardHeads(r, s, cols(0), cols(C), cols(2 * C), heads(offset(r, y), T, C), offset(r, p), mask, past);
    return [y, p];
  });
  const bwd = onWasm(ATTENTION_BACKWARD, ({ inputs, backend, attrs }) => {
    const { B, T, H, past: L = 0 } = attrs as unknown as Attrs;
    const heap = heapOf(backend);
    const qkv = inputs.qkv as tf.TensorInfo;
    const C = qkv.shape[1]! / 3;
    const D = C / H;
    const dqkv = heap.makeOutput([B * T, 3 * C], 'float32');
    const dpast = L > 0 ? [0, 1].map(() => heap.makeOutput([B, H, L, D], 'float32')) : [];
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
    const past = pastOf(r, inputs, H, L, D);
    const dk = dpast[0] && pastHeads(offset(r, dpast[0]), H, L, D);
    const dv = dpast[1] && pastHeads(offset(r, dpast[1]), H, L, D);
    const pastIo = past && dk && dv ? { ...past, dk, dv } : undefined;
    backwardHeads(r, { B, T, H, KV: H, D }, io, offset(r, inputs.p as tf.TensorInfo), pastIo);
    return pastIo ? [dqkv, ...dpast] : dqkv;
  });
  return fwd !== null && bwd !== null;
}

function registerGqa(): boolean {
  if (!wasmBackendName() || !simdOn(tf.backend())) return false;
  const fwd = onWasm(GQA_FORWARD, ({ inputs, backend, attrs }) => {
    const { B, T, H, KV, past: L = 0 } = attrs as unknown as GqaAttrs;
    const heap = heapOf(backend);
    const [q, k, v] = [inputs.q, inputs.k, inputs.v] as tf.TensorInfo[] as [
      tf.TensorInfo,
      tf.TensorInfo,
      tf.TensorInfo,
    ];
    const D = q.shape[1]! / H;
    const Sp = pad8(L + T);
    const y = heap.makeOutput([B * T, H * D], 'float32');
    const p = heap.makeOutput([B * H, Sp, Sp], 'float32');
    const r = simdOn(backend)!;
    const [hq, hk] = [
      (t: tf.TensorInfo) => heads(offset(r, t), T, H * D),
      (t: tf.TensorInfo) => heads(offset(r, t), T, KV * D),
    ];
    const mask = maskOffset(r, inputs.mask);
    const past = pastOf(r, inputs, KV, L, D);
    forwardHeads(r, { B, T, H, KV, D }, hq(q), hk(k), hk(v), hq(y), offset(r, p), mask, past);
    return [y, p];
  });
  const bwd = onWasm(GQA_BACKWARD, ({ inputs, backend, attrs }) => {
    const { B, T, H, KV, past: L = 0 } = attrs as unknown as GqaAttrs;
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
    const dpast = L > 0 ? [0, 1].map(() => heap.makeOutput([B, KV, L, D], 'float32')) : [];
    const r = simdOn(backend)!;
    const [hq, hk] = [
      (t: tf.TensorInfo) => heads(offset(r, t), T, H * D),
      (t: tf.TensorInfo) => heads(offset(r, t), T, KV * D),
    ];
    const io = { q: hq(q), k: hk(k), v: hk(v), dy: hq(dy), dq: hq(dq), dk: hk(dk), dv: hk(dv) };
    const past = pastOf(r, inputs, KV, L, D);
    const [dpk, dpv] = dpast.map((t) => pastHeads(offset(r, t), KV, L, D));
    const pastIo = past && dpk && dpv ? { ...past, dk: dpk, dv: dpv } : undefined;
    backwardHeads(r, { B, T, H, KV, D }, io, offset(r, p), pastIo);
    return pastIo ? [dq, dk, dv, ...dpast] : [dq, dk, dv];
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

/** Past keys and values of P positions, [B, heads, P, D] each (LayerKV's layout). */
export interface PastKV {
  k: tf.Tensor4D;
  v: tf.Tensor4D;
}

/**
 * The number of past positions when `past` fits [B, heads, P, D] float32 and the fused path is worth
 * it, 0 for no past, or null: take the stock path. Worth it up to P = 2T: a prefix-tuning step on
 * peftlab-s (ab.ts --cls, 8 rows of 20..24 tokens) measured 34 ms against the stock 43 at P = 40 and
 * 49 against 59 at P = 80, the forward alone even with the stock's at both; beyond, the P wasted
 * query rows grow as P^2 while the stock path's [T, S] scores grow as P, and a decoding step (T = 1
 * after a long cache) keeps the stock [1, S] composition.
 */
function pastLength(past: PastKV | undefined, B: number, T: number, heads: number, D: number): number | null {
  if (!past) return 0;
  const fits = (t: tf.Tensor4D): boolean =>
    t.dtype === 'float32' && t.shape[0] === B && t.shape[1] === heads && t.shape[3] === D;
  const L = past.k.shape[2];
  if (!fits(past.k) || !fits(past.v) || past.v.shape[2] !== L || L > 2 * T) return null;
  return L;
}

/**
 * Causal self-attention of qkv [B*T, 3C] with nHead heads -> [B*T, C] through our SIMD kernels, or
 * null where they do not run (not wasm, switched off by setWasmKernels, or our module cannot link to the heap):
 * the caller then takes ops.ts's packedSelfAttention. With keyMask [B, S] (1 a real key, 0
 * padding; S = P + T keys), padded keys are masked as attentionBias masks them. With `past`
 * ([B, nHead, P, D] keys and values before these T positions: prefix tuning's virtual tokens),
 * query i sits at position P + i, and the past gets its gradients; null (stock path) where P > 2T.
 */
export function simdCausalAttention(
  qkv: tf.Tensor2D,
  B: number,
  T: number,
  nHead: number,
  keyMask?: tf.Tensor2D,
  past?: PastKV,
): tf.Tensor2D | null {
  if (qkv.dtype !== 'float32' || qkv.shape[1] % (3 * nHead) !== 0) return null;
  const L = pastLength(past, B, T, nHead, qkv.shape[1] / (3 * nHead));
  if (L === null) return null;
  // A mask that does not fit: the stock path says what is wrong (attentionBias).
  if (keyMask && (keyMask.shape[0] !== B || keyMask.shape[1] !== L + T)) return null;
  if (!register()) return null;
  shareIdentityOnWasm(); // customGrad's save keeps qkv and P through Identity: shared, not copied
  const m = maskInput(keyMask);
  if (past && L > 0) return withMask(keyMask, m, () => withPast(qkv, past, B, T, nHead, L, m));
  const attrs = { B, T, H: nHead } as unknown as tf.NamedAttrMap;
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

/** simdCausalAttention with L > 0 past positions: gradients for qkv and the past's k and v. */
function withPast(
  qkv: tf.Tensor2D,
  past: PastKV,
  B: number,
  T: number,
  H: number,
  L: number,
  m: tf.Tensor2D | undefined,
): tf.Tensor2D {
  const attrs = { B, T, H, past: L } as unknown as tf.NamedAttrMap;
  const f = tf.customGrad((x, pk, pv, save) => {
    const inputs = { qkv: x as tf.Tensor, pastK: pk as tf.Tensor, pastV: pv as tf.Tensor };
    const kernelInputs: tf.NamedTensorMap = m ? { ...inputs, mask: m } : inputs;
    const [y, p] = tf.engine().runKernel(ATTENTION_FORWARD, kernelInputs, attrs) as [tf.Tensor2D, tf.Tensor];
    (save as tf.GradSaveFunc)([inputs.qkv, inputs.pastK, inputs.pastV, p]);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [xs, ks, vs, ps] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        const grads = { qkv: xs, pastK: ks, pastV: vs, p: ps, dy: dy as tf.Tensor };
        return tf.engine().runKernel(ATTENTION_BACKWARD, grads, attrs) as tf.Tensor[];
      },
    };
  }) as (x: tf.Tensor2D, pk: tf.Tensor4D, pv: tf.Tensor4D) => tf.Tensor2D;
  return f(qkv, past.k, past.v);
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
  past?: PastKV,
): tf.Tensor2D | null {
  const D = q.shape[1] / H;
  const L = Number.isInteger(D) ? pastLength(past, B, T, KV, D) : null;
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
    L !== null &&
    (!keyMask || (keyMask.shape[0] === B && keyMask.shape[1] === L + T));
  if (!ok || !registerGqa()) return null;
  shareIdentityOnWasm(); // customGrad's save keeps q, k, v and P through Identity: shared, not copied
  const m = maskInput(keyMask);
  if (past && L > 0) return withMask(keyMask, m, () => gqaWithPast(q, k, v, past, B, T, H, KV, L, m));
  const attrs = { B, T, H, KV } as unknown as tf.NamedAttrMap;
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

/** simdCausalAttentionGqa with L > 0 past positions ([B, KV, L, D]): gradients for all five inputs. */
function gqaWithPast(
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  v: tf.Tensor2D,
  past: PastKV,
  B: number,
  T: number,
  H: number,
  KV: number,
  L: number,
  m: tf.Tensor2D | undefined,
): tf.Tensor2D {
  const attrs = { B, T, H, KV, past: L } as unknown as tf.NamedAttrMap;
  const f = tf.customGrad((qi, ki, vi, pk, pv, save) => {
    const inputs = {
      q: qi as tf.Tensor,
      k: ki as tf.Tensor,
      v: vi as tf.Tensor,
      pastK: pk as tf.Tensor,
      pastV: pv as tf.Tensor,
    };
    const kernelInputs: tf.NamedTensorMap = m ? { ...inputs, mask: m } : inputs;
    const [y, p] = tf.engine().runKernel(GQA_FORWARD, kernelInputs, attrs) as [tf.Tensor2D, tf.Tensor];
    (save as tf.GradSaveFunc)([inputs.q, inputs.k, inputs.v, inputs.pastK, inputs.pastV, p]);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [qs, ks, vs, pks, pvs, ps] = saved as tf.Tensor[] as [
          tf.Tensor,
          tf.Tensor,
          tf.Tensor,
          tf.Tensor,
          tf.Tensor,
          tf.Tensor,
        ];
        const grads = { q: qs, k: ks, v: vs, pastK: pks, pastV: pvs, p: ps, dy: dy as tf.Tensor };
        return tf.engine().runKernel(GQA_BACKWARD, grads, attrs) as tf.Tensor[];
      },
    };
  }) as (q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, pk: tf.Tensor4D, pv: tf.Tensor4D) => tf.Tensor2D;
  return f(q, k, v, past.k, past.v);
}
