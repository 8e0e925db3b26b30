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
import { heapOf, offsetOf, onWasm, simdOn } from './heap';

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
