/**
 * a^T b for a [K, M], b [K, N] -> [M, N] on wasm as one call of our SIMD gemm (simd.ts), reading a
 * transposed in place (its scalar loads take any strides).
 *
 * Why: a weight's gradient is x^T dy, and tfjs's way to it on wasm is a Transpose of x then an
 * XNNPACK product that packs dy, a new tensor each step, as its "weights": for LoRA's B
 * ((x A)^T dy, [8, 1024] x [1024, 288] on peftlab-s) that packing makes a 4.7 MFLOP product take
 * 1.4 ms (about 3 GFLOP/s), where our gemm runs it in about 0.16 ms (29 GFLOP/s, measured alone).
 * Shapes the gemm's 4 x 8 tile does not divide (M % 4, N % 8) take the stock route, and so does a
 * large b: XNNPACK's product, packing included, outruns our 4 x 8 tile there (the tied LM head's
 * gradient of peftlab-s, [1024, 96]^T [1024, 2048]: 16 cpu ms stock, 45-56 ours). Where a (read
 * once per column panel) fits in cache, the gemm runs by column panels (simd.ts gemmPanels):
 * LoRA's (x A)^T dy [1024, 8]^T [1024, 288] in 0.16 cpu ms instead of 0.44, [1024, 96]^T
 * [1024, 384] in 2.9 instead of 4.3 (measured alone, median of 6).
 */
import * as tf from '@tensorflow/tfjs';
import { fmaOn, heapOf, offsetOf, onWasm, simdOn } from './heap';

export const MATMUL_TA = 'PeftLabMatMulTA';

/** b of more floats than this (4 MiB) takes the stock route. */
const MAX_B = 1 << 20;
/** a of at most this many floats (512 KiB) runs by column panels. */
const PANEL_A = 1 << 17;

function register(): boolean {
  if (!simdOn(tf.backend())) return false;
  return (
    onWasm(MATMUL_TA, ({ inputs, backend }) => {
      const a = inputs.a as tf.TensorInfo;
      const b = inputs.b as tf.TensorInfo;
      const [K, M] = a.shape as [number, number];
      const N = b.shape[1]!;
      const out = heapOf(backend).makeOutput([M, N], 'float32');
      const r = simdOn(backend)!;
      const gemm = K * M <= PANEL_A ? r.k.gemmPanels : r.k.gemm;
      gemm(M, N, K, offsetOf(r, a), 4, 4 * M, offsetOf(r, b), 4 * N, offsetOf(r, out), 4 * N, 1, 0, 0);
      return out;
    }) !== null
  );
}

/** a^T b through our kernel, or null where it does not apply (not wasm, off, or shapes it cannot tile). */
export function matMulTransposedA(a: tf.Tensor, b: tf.Tensor): tf.Tensor2D | null {
  if (a.rank !== 2 || b.rank !== 2 || a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const [K, M] = a.shape as [number, number];
  const [Kb, N] = b.shape as [number, number];
  if (K !== Kb || M % 4 !== 0 || N % 8 !== 0 || K === 0 || K * N > MAX_B || !register()) return null;
  return tf.engine().runKernel(MATMUL_TA, { a, b }, {}) as tf.Tensor2D;
}

export const MATMUL = 'PeftLabMatMul';

/**
 * a [M, K] @ b [K, N] (+ bias [N]) as one call of our SIMD gemm, for the model's 2-D products
 * (ops.ts: matmulFrozen and dense for frozen weights, the forward x W, the input gradient dy W^T
 * with W^T transposed explicitly, the tied LM head both ways; bmm's value and input gradient for
 * trainable ones).
 *
 * Why: where the engine has relaxed SIMD (Chromium 114+, Node 22+; emit.ts relaxedSimd) our gemm
 * accumulates by fused multiply-adds, which tfjs-wasm 4.22's XNNPACK build does not use: on
 * peftlab-s's shapes at batch 8 x 128 (scripts/bench/gemm-shapes.ts, cpu ms, one thread, busy
 * machine) [1024, 96] x [96, 288] 2.77 stock, 1.43 ours; [1024, 384] x [384, 96] 2.98, 2.01; the
 * LM head's backward [1024, 2048] x [2048, 96] 13.7, 10.2 (about 38-45 GFLOP/s against XNNPACK's
 * 20-29). Without relaxed SIMD (ours by mul + add, 26-30 GFLOP/s) it stays off: XNNPACK is as fast.
 */
function registerMatMul(): boolean {
  if (!simdOn(tf.backend())) return false;
  return (
    onWasm(MATMUL, ({ inputs, backend }) => {
      const a = inputs.a as tf.TensorInfo;
      const b = inputs.b as tf.TensorInfo;
      const bias = inputs.bias as tf.TensorInfo | undefined;
      const [M, K] = a.shape as [number, number];
      const N = b.shape[1]!;
      const out = heapOf(backend).makeOutput([M, N], 'float32');
      const r = simdOn(backend)!;
      r.k.gemm(
        M,
        N,
        K,
        offsetOf(r, a),
        4 * K,
        4,
        offsetOf(r, b),
        4 * N,
        offsetOf(r, out),
        4 * N,
        1,
        0,
        0,
        bias ? offsetOf(r, bias) : 0,
      );
      return out;
    }) !== null
  );
}

/**
 * a @ b (+ bias) through our kernel, or null where it does not apply: not wasm, switched off (by
 * its name, or with no fused multiply-add: RELAXED_SIMD off or not in this engine), or a shape the
 * 4 x 8 tile does not divide (M % 4, N % 8).
 */
export function matMulSimd(a: tf.Tensor2D, b: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor2D | null {
  if (a.rank !== 2 || b.rank !== 2 || a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const [M, K] = a.shape;
  const [Kb, N] = b.shape;
  if (K !== Kb || M % 4 !== 0 || N % 8 !== 0 || K === 0 || M === 0) return null;
  if (bias && (bias.rank !== 1 || bias.shape[0] !== N || bias.dtype !== 'float32')) return null;
  if (!fmaOn() || !registerMatMul()) return null;
  const inputs: tf.NamedTensorMap = bias ? { a, b, bias } : { a, b };
  return tf.engine().runKernel(MATMUL, inputs, {}) as tf.Tensor2D;
}
