/**
 * Our wasm LayerNorm and RMSNorm kernels (norms.ts, reached through ops.ts) against the stock
 * composition on the cpu backend: values and gradients for x, gamma and beta, frozen and trained.
 */
import { describe, it, expect, beforeAll, afterEach } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../backend/node';
import { layerNorm, rmsNorm } from '../../model/ops';
import { setWasmKernels } from './heap';
import { NORM_SIMD } from './norms';
import { onBoth, maxDiff } from './testing';

describe('fused norms on wasm', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });
  afterEach(() => setWasmKernels(true));

  const shapes: number[][] = [
    [2, 5, 16],
    [7, 96],
    [3, 1, 33],
  ];

  // C 16 and 96 run the SIMD kernels (simd.ts) unless switched off, C 33 the JS loops.
  for (const [shape, simd] of [...shapes.map((s) => [s, true] as const), [shapes[1]!, false] as const]) {
    for (const frozen of [false, true]) {
      const how = simd ? '' : ', SIMD switched off';
      it(`LayerNorm [${shape}] matches cpu's composition, params ${frozen ? 'frozen' : 'trained'}${how}`, async () => {
        setWasmKernels((k) => simd || k !== NORM_SIMD);
        const C = shape[shape.length - 1]!;
        const [cpu, wasm] = await onBoth(() => {
          const x = tf.randomNormal(shape, 0.3, 2, 'float32', 1);
          const g = tf.variable(tf.randomNormal([C], 1, 0.5, 'float32', 2) as tf.Tensor1D, !frozen);
          const b = tf.variable(tf.randomNormal([C], 0, 0.5, 'float32', 3) as tf.Tensor1D, !frozen);
          const dy = tf.randomNormal(shape, 0, 1, 'float32', 4);
          const f = (xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor): tf.Tensor => {
            // Through the variables when frozen (isFrozen reads them), else through the inputs.
            const y = frozen
              ? layerNorm(xi, g, b, 1e-5)
              : layerNorm(xi, gi as tf.Tensor1D, bi as tf.Tensor1D, 1e-5);
            return tf.sum(tf.mul(y, dy));
          };
          const y = layerNorm(x, g, b, 1e-5);
          const grads = frozen ? [tf.grad((xi: tf.Tensor) => f(xi, g, b))(x)] : tf.grads(f)([x, g, b]);
          const out = [y, ...grads].map((t) => t.dataSync().slice());
          tf.dispose([x, g, b, dy, y, ...grads]);
          return out;
        });
        expect(wasm.length).toBe(cpu.length);
        for (let i = 0; i < cpu.length; i++) expect(maxDiff(cpu[i]!, wasm[i]!)).toBeLessThan(2e-5 * (i + 1));
      });

      it(`RMSNorm [${shape}] matches cpu's composition, gamma ${frozen ? 'frozen' : 'trained'}${how}`, async () => {
        setWasmKernels((k) => simd || k !== NORM_SIMD);
        const C = shape[shape.length - 1]!;
        const [cpu, wasm] = await onBoth(() => {
          const x = tf.randomNormal(shape, 0.3, 2, 'float32', 5);
          const g = tf.variable(tf.randomNormal([C], 1, 0.5, 'float32', 6) as tf.Tensor1D, !frozen);
          const dy = tf.randomNormal(shape, 0, 1, 'float32', 7);
          const f = (xi: tf.Tensor, gi: tf.Tensor): tf.Tensor =>
            tf.sum(tf.mul(rmsNorm(xi, (frozen ? g : gi) as tf.Tensor1D, 1e-6), dy));
          const y = rmsNorm(x, g, 1e-6);
          const grads = frozen ? [tf.grad((xi: tf.Tensor) => f(xi, g))(x)] : tf.grads(f)([x, g]);
          const out = [y, ...grads].map((t) => t.dataSync().slice());
          tf.dispose([x, g, dy, y, ...grads]);
          return out;
        });
        for (let i = 0; i < cpu.length; i++) expect(maxDiff(cpu[i]!, wasm[i]!)).toBeLessThan(2e-5 * (i + 1));
      });
    }
  }

  it('RMSNorm is x / rms(x) * gamma (HF LlamaRMSNorm), computed by hand', () => {
    const x = tf.tensor2d([
      [1, 2, 3, 4],
      [-2, 0, 2, 0],
    ]);
    const g = tf.tensor1d([1, 0.5, 2, 1]);
    const y = rmsNorm(x, g, 0).arraySync() as number[][];
    const r0 = Math.sqrt((1 + 4 + 9 + 16) / 4);
    const r1 = Math.sqrt(8 / 4);
    const want = [
      [1 / r0, 1 / r0, 6 / r0, 4 / r0],
      [-2 / r1, 0, 4 / r1, 0],
    ];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 4; j++) expect(y[i]![j]!).toBeCloseTo(want[i]![j]!, 5);
  });

  it('runs one kernel each way on wasm and leaks no tensor', async () => {
    const x = tf.randomNormal([4, 8, 32]);
    const g = tf.variable(tf.ones([32]) as tf.Tensor1D, false);
    const b = tf.variable(tf.zeros([32]) as tf.Tensor1D, false);
    const before = tf.memory().numTensors;
    let dx: tf.Tensor | undefined;
    const info = await tf.profile(() => {
      dx = tf.grad((xi: tf.Tensor) => tf.sum(layerNorm(xi, g, b, 1e-5)))(x);
      return dx;
    });
    dx!.dispose();
    const kernels = info.kernelNames.filter((k) => k.startsWith('PeftLab'));
    expect(kernels).toEqual(['PeftLabNormForward', 'PeftLabNormBackward']);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, g, b]);
  });
});
