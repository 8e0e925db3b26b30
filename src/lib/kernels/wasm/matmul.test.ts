/**
 * Our SIMD a^T b (matmul.ts, reached through ops.ts's bmm gradient) against the stock composition
 * on the cpu backend: a trainable weight's gradient (LoRA's A and B at peftlab-s's shapes, a full
 * weight) and the input's, and shapes the kernel cannot tile, which take the stock route.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../backend/node';
import { bmm } from '../../model/ops';
import { setWasmKernels } from './heap';
import { MATMUL_TA, matMulTransposedA } from './matmul';
import { maxDiff, onBoth } from './testing';

describe('SIMD a^T b on wasm', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  for (const [N, I, O] of [
    [1024, 96, 8], // LoRA A: dA^T = x^T d(x A)
    [1024, 8, 288], // LoRA B: (x A)^T dy
    [40, 96, 384], // a full weight (these three by column panels)
    [1024, 384, 16], // x [1024, 384] too large for panels: by rows
    [1024, 8, 1032], // dy [1024, 1032] past MAX_B: the stock route
    [10, 6, 5], // neither 4 | 6 nor 8 | 5: the stock route
  ] as const) {
    it(`x [${N}, ${I}] @ w [${I}, ${O}]: gradients for x and w match cpu`, async () => {
      const [cpu, wasm] = await onBoth(() =>
        tf.tidy(() => {
          const x = tf.randomNormal([N, I], 0, 1, 'float32', 3);
          const w = tf.randomNormal([I, O], 0, 1, 'float32', 4);
          const dy = tf.randomNormal([N, O], 0, 1, 'float32', 5);
          const gs = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(bmm(a, b), dy)))([x, w]);
          return gs.map((g) => g.dataSync().slice());
        }),
      );
      // x's gradient sums O products: rounding grows with it (the largest case, O 1032, differs by 1.5e-4).
      expect(maxDiff(cpu[0]!, wasm[0]!)).toBeLessThan(1e-4 * Math.max(1, Math.sqrt(O / 288)));
      expect(maxDiff(cpu[1]!, wasm[1]!)).toBeLessThan(1e-4 * Math.sqrt(N));
    });
  }

  it('runs as our kernel where the shape tiles, and not when switched off', async () => {
    const a = tf.randomNormal([12, 8]);
    const b = tf.randomNormal([12, 16]);
    const info = await tf.profile(() => matMulTransposedA(a, b)!);
    expect(info.kernelNames).toEqual([MATMUL_TA]);
    expect(matMulTransposedA(a, tf.randomNormal([12, 12]))).toBeNull();
    const [x, dy] = [tf.zeros([1024, 8]), tf.zeros([1024, 1032])];
    expect(matMulTransposedA(x, dy)).toBeNull(); // a large b: XNNPACK's product is faster there
    tf.dispose([x, dy]);
    setWasmKernels((k) => k !== MATMUL_TA);
    try {
      expect(matMulTransposedA(a, b)).toBeNull();
    } finally {
      setWasmKernels(true);
    }
    tf.dispose([a, b, info.result as tf.Tensor]);
  });
});
