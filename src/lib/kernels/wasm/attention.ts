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
 */
import * as tf from '@tensorflow/tfjs';
import { heapOf, onWasm, scratch, simdOn } from './heap';
import type { SimdKernels } from './simd';
import { shareIdentityOnWasm } from './identity';
import { wasmBackendName } from '../../model/wasm-kernels';

export const ATTENTION_FORWARD = 'PeftLabCausalAttention';
export const ATTENTION_BACKWARD = 'PeftLabCausalAttentionGrad';

interface Attrs {
  B: number;
  T: number;
  H: number;
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

function register(): boolean {
  if (!wasmBackendName() || !simdOn(tf.backend())) return false;
  const fwd = onWasm(ATTENTION_FORWARD, ({ inputs, backend, attrs }) => {
    const { B, T, H } = attrs as unknown as Attrs;
    const { be, k } = simdOn(backend)!;
    const heap = heapOf(backend);
    const qkv = inputs.qkv as tf.TensorInfo;
    const C = qkv.shape[1]! / 3;
    const D = C / H;
    const [Tp, Dp] = [pad8(T), pad8(D)];
    const y = heap.makeOutput([B * T, C], 'float32');
    const p = heap.makeOutput([B * H, Tp, Tp], 'float32');
    const hd = Tp * Dp;
    // Offsets are read after the last allocation (an allocation may grow and move the heap's buffer,
    // but not a tensor's offset in it).
    const s = scratch(be, k, 4 * hd);
    const [Qs, KT, V, Y] = [s, s + 4 * hd, s + 8 * hd, s + 12 * hd];
    const src = be.dataIdMap.get(qkv.dataId).memoryOffset;
    const out = be.dataIdMap.get(y.dataId).memoryOffset;
    const P0 = be.dataIdMap.get(p.dataId).memoryOffset;
    const row = 4 * 3 * C; // bytes between rows of qkv
    const scale = 1 / Math.sqrt(D);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const q = src + 4 * (b * T * 3 * C + h * D);
        rows(k, q, row, Qs, 4 * Dp, T, D, scale);
        k.copy(q + 4 * C, row, 4, KT, 4, 4 * Tp, T, D, 1); // K^T [Dp, Tp]
        rows(k, q + 8 * C, row, V, 4 * Dp, T, D);
        const P = P0 + 4 * (b * H + h) * Tp * Tp;
        k.gemm(Tp, Tp, Dp, Qs, 4 * Dp, 4, KT, 4 * Tp, P, 4 * Tp, 1, 0, 1);
        k.softmax(P, Tp);
        k.gemm(Tp, Dp, Tp, P, 4 * Tp, 4, V, 4 * Dp, Y, 4 * Dp, 1, 1, 0);
        rows(k, Y, 4 * Dp, out + 4 * (b * T * C + h * D), 4 * C, T, D);
      }
    }
    be.wasm._free(s);
    return [y, p];
  });
  const bwd = onWasm(ATTENTION_BACKWARD, ({ inputs, backend, attrs }) => {
    const { B, T, H } = attrs as unknown as Attrs;
    const { be, k } = simdOn(backend)!;
    const heap = heapOf(backend);
    const qkv = inputs.qkv as tf.TensorInfo;
    const C = qkv.shape[1]! / 3;
    const D = C / H;
    const [Tp, Dp] = [pad8(T), pad8(D)];
    const dqkv = heap.makeOutput([B * T, 3 * C], 'float32');
    const hd = Tp * Dp;
    const s = scratch(be, k, 7 * hd + Tp * Tp);
    const [Qs, K, VT, dY, dQ, dK, dV, dS] = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => s + 4 * i * hd) as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const src = be.dataIdMap.get(qkv.dataId).memoryOffset;
    const P0 = be.dataIdMap.get((inputs.p as tf.TensorInfo).dataId).memoryOffset;
    const dy0 = be.dataIdMap.get((inputs.dy as tf.TensorInfo).dataId).memoryOffset;
    const dst = be.dataIdMap.get(dqkv.dataId).memoryOffset;
    const row = 4 * 3 * C;
    const scale = 1 / Math.sqrt(D);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const at = 4 * (b * T * 3 * C + h * D);
        const q = src + at;
        rows(k, q, row, Qs, 4 * Dp, T, D, scale);
        rows(k, q + 4 * C, row, K, 4 * Dp, T, D);
        k.copy(q + 8 * C, row, 4, VT, 4, 4 * Tp, T, D, 1); // V^T [Dp, Tp]
        rows(k, dy0 + 4 * (b * T * C + h * D), 4 * C, dY, 4 * Dp, T, D);
        const P = P0 + 4 * (b * H + h) * Tp * Tp;
        k.gemm(Tp, Tp, Dp, dY, 4 * Dp, 4, VT, 4 * Tp, dS, 4 * Tp, 1, 0, 1); // dP
        k.dsoftmax(P, dS, Tp);
        k.gemm(Tp, Dp, Tp, dS, 4 * Tp, 4, K, 4 * Dp, dQ, 4 * Dp, scale, 1, 0);
        k.gemm(Tp, Dp, Tp, dS, 4, 4 * Tp, Qs, 4 * Dp, dK, 4 * Dp, 1, 2, 0); // dS^T Qs
        k.gemm(Tp, Dp, Tp, P, 4, 4 * Tp, dY, 4 * Dp, dV, 4 * Dp, 1, 2, 0); // P^T dY
        const d = dst + at;
        rows(k, dQ, 4 * Dp, d, row, T, D);
        rows(k, dK, 4 * Dp, d + 4 * C, row, T, D);
        rows(k, dV, 4 * Dp, d + 8 * C, row, T, D);
      }
    }
    be.wasm._free(s);
    return dqkv;
  });
  return fwd !== null && bwd !== null;
}

/**
 * Causal self-attention of qkv [B*T, 3C] with nHead heads -> [B*T, C] through our SIMD kernels, or
 * null where they do not run (not wasm, switched off by setWasmKernels, or our module cannot link to the heap):
 * the caller then takes ops.ts's packedSelfAttention.
 */
export function simdCausalAttention(
  qkv: tf.Tensor2D,
  B: number,
  T: number,
  nHead: number,
): tf.Tensor2D | null {
  if (qkv.dtype !== 'float32' || qkv.shape[1] % (3 * nHead) !== 0 || !register()) return null;
  shareIdentityOnWasm(); // customGrad's save keeps qkv and P through Identity: shared, not copied
  const attrs = { B, T, H: nHead } as unknown as tf.NamedAttrMap;
  const f = tf.customGrad((x, save) => {
    const [y, p] = tf.engine().runKernel(ATTENTION_FORWARD, { qkv: x as tf.Tensor }, attrs) as [
      tf.Tensor2D,
      tf.Tensor,
    ];
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
  return f(qkv);
}
