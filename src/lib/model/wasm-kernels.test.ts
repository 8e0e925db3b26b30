/**
 * itemMatMul on wasm (N 2-D XNNPACK products on views into its operands, one kernel call) against
 * the stock batched matMul, which on wasm is a plain scalar loop over the same products.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import { InternalError } from '../errors';
import { itemMatMul } from './wasm-kernels';

describe('itemMatMul on the wasm backend', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it.each([
    [3, 5, 7, 2],
    [1, 1, 4, 1],
    [4, 6, 1, 3],
    [8, 16, 24, 16],
  ])('matches tf.matMul item by item: N %i, [%i, %i] @ [%i, L]', (n, m, k, l) => {
    const a = tf.randomNormal([n, m, k], 0, 1, 'float32', n + m) as tf.Tensor3D;
    const b = tf.randomNormal([n, k, l], 0, 1, 'float32', k + l) as tf.Tensor3D;
    const before = tf.memory().numTensors;
    const ours = itemMatMul(a, b);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(ours.shape).toEqual([n, m, l]);
    const x = ours.dataSync();
    const y = tf.matMul(a, b).dataSync();
    let worst = 0;
    for (let i = 0; i < y.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
    expect(worst).toBeLessThan(1e-5);
    ours.dispose();
  });

  it('leaves nothing behind in the wasm heap (views and the XNNPACK operators cached on them)', () => {
    const a = tf.randomNormal([16, 32, 24]) as tf.Tensor3D;
    const b = tf.randomNormal([16, 24, 32]) as tf.Tensor3D;
    const wasm = (tf.backend() as unknown as { wasm: { _malloc(n: number): number; _free(p: number): void } })
      .wasm;
    // Where a large block lands: it moves up if anything the calls allocated stays allocated.
    const freeAt = (): number => {
      const p = wasm._malloc(1 << 20);
      wasm._free(p);
      return p;
    };
    const run = (): void => {
      for (let i = 0; i < 100; i++) itemMatMul(a, b).dispose();
    };
    run();
    const at = freeAt();
    run();
    run();
    expect(freeAt()).toBe(at);
  });

  it('refuses operands whose items or inner sizes disagree', () => {
    const a = tf.zeros([2, 3, 4]) as tf.Tensor3D;
    expect(() => itemMatMul(a, tf.zeros([3, 4, 5]) as tf.Tensor3D)).toThrow(InternalError);
    expect(() => itemMatMul(a, tf.zeros([2, 5, 4]) as tf.Tensor3D)).toThrow(InternalError);
  });
});

describe('our wasm kernels under the one-thread registration (wasm-1t)', () => {
  it('register under the running name and give the same products', async () => {
    await initNodeBackend('wasm');
    // As lib/backend/backend.ts does for "wasm, 1 thread": the wasm module under a second name.
    const engine = tf.engine() as unknown as {
      registryFactory: Record<string, { factory: () => tf.KernelBackend } | undefined>;
    };
    const wasmFactory = engine.registryFactory.wasm!.factory;
    tf.registerBackend('wasm-1t', wasmFactory, 0);
    for (const k of tf.getKernelsForBackend('wasm')) tf.registerKernel({ ...k, backendName: 'wasm-1t' });
    await tf.setBackend('wasm-1t');
    try {
      const a = tf.randomNormal([3, 5, 7], 0, 1, 'float32', 1) as tf.Tensor3D;
      const b = tf.randomNormal([3, 7, 2], 0, 1, 'float32', 2) as tf.Tensor3D;
      let out: tf.Tensor | undefined;
      const info = await tf.profile(() => {
        out = itemMatMul(a, b);
        return out;
      });
      // Our kernel ran, not the stock batched matmul (a scalar loop on wasm).
      expect(info.kernelNames).toEqual(['PeftLabItemMatMul']);
      const ours = out!.dataSync();
      const y = tf.matMul(a, b).dataSync();
      for (let i = 0; i < y.length; i++) expect(Math.abs(ours[i]! - y[i]!)).toBeLessThan(1e-5);
    } finally {
      await tf.setBackend('wasm');
    }
  });
});
