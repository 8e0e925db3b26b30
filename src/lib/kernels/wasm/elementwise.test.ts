/**
 * Our wasm GELU, cross-entropy and bias-gradient kernels (reached through ops.ts) against the
 * stock compositions on the cpu backend: values and gradients.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../backend/node';
import { crossEntropy, dense, geluNew, newVariable } from '../../model/ops';
import { CE_GRAD_SIMD } from './cross-entropy';
import { GELU_SIMD, GELU_SIMD_BACKWARD, SUM_ROWS } from './elementwise';
import { setWasmKernels } from './heap';
import { maxDiff, onBoth } from './testing';

const arrays = (ts: tf.Tensor[]): Float32Array[] => ts.map((t) => t.dataSync().slice() as Float32Array);

describe('fused elementwise kernels on wasm', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  // SIMD: our WebAssembly SIMD kernels (simd.ts); JS: the JS-over-heap ones they fall back to.
  for (const simd of [true, false]) {
    it(`gelu_new: values and gradient match cpu (${simd ? 'SIMD' : 'JS'} kernels)`, async () => {
      setWasmKernels((k) => simd || !k.startsWith(GELU_SIMD));
      try {
        const [cpu, wasm] = await onBoth(() =>
          tf.tidy(() => {
            // Wide enough to reach both tails, where sigmoid saturates; 1850 elements, so the
            // SIMD kernels' scalar tail (size % 4) runs too.
            const x = tf.mul(tf.randomNormal([37, 50], 0, 1, 'float32', 1), 6);
            const dy = tf.randomNormal([37, 50], 0, 1, 'float32', 2);
            return arrays([geluNew(x), tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(geluNew(xi), dy)))(x)]);
          }),
        );
        expect(maxDiff(cpu[0]!, wasm[0]!)).toBeLessThan(1e-5);
        expect(maxDiff(cpu[1]!, wasm[1]!)).toBeLessThan(1e-5);
      } finally {
        setWasmKernels(true);
      }
    });
  }

  for (const [ignored, simd] of [
    [false, true],
    [true, true],
    [true, false],
  ] as const) {
    const what = `${ignored ? ', some labels ignored (-100)' : ''} (${simd ? 'SIMD' : 'JS'} gradient pass)`;
    it(`cross-entropy loss and gradient match cpu${what}`, async () => {
      // 24 x 40 and 23 x 41 (943 = 4 * 235 + 3): the SIMD pass with and without its scalar tail.
      const N = ignored ? 23 : 24;
      const V = ignored ? 41 : 40;
      const labels = Int32Array.from({ length: N }, (_, i) => (ignored && i % 5 === 0 ? -100 : (i * 7) % V));
      setWasmKernels((k) => simd || k !== CE_GRAD_SIMD);
      try {
        const [cpu, wasm] = await onBoth(() =>
          tf.tidy(() => {
            const x = tf.mul(tf.randomNormal([N, V], 0, 1, 'float32', 5), 3) as tf.Tensor2D;
            // A factor on the loss reaches the gradient through dy.
            const f = (xi: tf.Tensor): tf.Scalar => tf.mul(crossEntropy(xi as tf.Tensor2D, labels), 1.5);
            return arrays([crossEntropy(x, labels), tf.grad(f)(x)]);
          }),
        );
        expect(Math.abs(cpu[0]![0]! - wasm[0]![0]!)).toBeLessThan(1e-5);
        expect(maxDiff(cpu[1]!, wasm[1]!)).toBeLessThan(1e-6);
      } finally {
        setWasmKernels(true);
      }
    });
  }

  it('cross-entropy stays finite and exact where the label probability underflows', async () => {
    // Row 0's label sits 200 below the row's top logit: softmax gives it exactly 0 in float32.
    const [cpu, wasm] = await onBoth(() =>
      tf.tidy(() =>
        arrays([
          crossEntropy(
            tf.tensor2d([
              [200, 0, 1],
              [1, 2, 3],
            ]),
            Int32Array.from([1, 2]),
          ),
        ]),
      ),
    );
    const want =
      (200 +
        Math.log(1 + Math.exp(-200) + Math.exp(-199)) +
        (3 + Math.log(1 + Math.exp(-1) + Math.exp(-2)) - 3)) /
      2;
    expect(wasm[0]![0]!).toBeCloseTo(want, 4);
    expect(Math.abs(cpu[0]![0]! - wasm[0]![0]!)).toBeLessThan(1e-4);
  });

  it('each runs as our kernels on wasm and leaks no tensor', async () => {
    const x = tf.randomNormal([16, 64]) as tf.Tensor2D;
    const labels = Int32Array.from({ length: 16 }, (_, i) => i);
    const before = tf.memory().numTensors;
    let out: tf.Tensor[] = [];
    const info = await tf.profile(() => {
      out = [
        tf.grad((xi: tf.Tensor) => tf.sum(geluNew(xi)))(x),
        tf.grad((xi: tf.Tensor) => crossEntropy(xi as tf.Tensor2D, labels))(x),
      ];
      return out;
    });
    tf.dispose(out);
    expect(info.kernelNames.filter((k) => k.startsWith('PeftLab'))).toEqual([
      GELU_SIMD,
      GELU_SIMD_BACKWARD,
      'PeftLabCrossEntropyRows',
      CE_GRAD_SIMD,
    ]);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  // C 96: our row sum; C 6: not a multiple of 4, tf.sum's route inside the same custom gradient.
  for (const [N, I, C] of [
    [70, 12, 96],
    [9, 5, 6],
  ] as const) {
    it(`dense with a trainable bias [${C}]: value and gradients for x, w and b match cpu`, async () => {
      const [cpu, wasm] = await onBoth(() => {
        const x = tf.randomNormal([N, I], 0, 1, 'float32', 11) as tf.Tensor2D;
        const w = newVariable(tf.randomNormal([I, C], 0, 1, 'float32', 12) as tf.Tensor2D, true);
        const b = newVariable(tf.randomNormal([C], 0, 1, 'float32', 13) as tf.Tensor1D, true);
        const dy = tf.randomNormal([N, C], 0, 1, 'float32', 14);
        const y = dense(x, w, b);
        const { grads } = tf.variableGrads(() => tf.sum(tf.mul(dense(x, w, b), dy)), [w, b]);
        const gx = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(dense(xi as tf.Tensor2D, w, b), dy)))(x);
        const out = arrays([y, gx, grads[w.name]!, grads[b.name]!]);
        tf.dispose([x, w, b, dy, y, gx, ...Object.values(grads)]);
        return out;
      });
      for (let i = 0; i < cpu.length; i++) expect(maxDiff(cpu[i]!, wasm[i]!)).toBeLessThan(1e-4);
      expect(Math.max(...Array.from(cpu[3]!, Math.abs))).toBeGreaterThan(0.5);
    });
  }

  it('a trainable bias takes our row sum on wasm, leaking nothing', async () => {
    const x = tf.randomNormal([16, 8]) as tf.Tensor2D;
    const w = newVariable(tf.randomNormal([8, 12]) as tf.Tensor2D, true);
    const b = newVariable(tf.zeros([12]) as tf.Tensor1D, true);
    const before = tf.memory().numTensors;
    const info = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(() => tf.sum(dense(x, w, b)), [w, b]);
      tf.dispose([value, ...Object.values(grads)]);
    });
    expect(info.kernelNames).toContain(SUM_ROWS);
    // One Sum only: the loss's, none for the bias's gradient.
    expect(info.kernels.filter((k) => k.name === 'Sum').length).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, w, b]);
  });
});
