/**
 * Our SIMD a @ b (+ bias) for 2-D products (matmul.ts matMulSimd, through ops.ts's dense and
 * matmulFrozen for frozen weights, bmm's value and input gradient for trainable ones) against the stock composition on the cpu backend: values and the input's
 * gradient, with and without a bias, shapes the 4 x 8 tile does not divide (the stock route), the
 * switch by name, and no leaked tensors. Runs with relaxed SIMD on (Node 20's V8 has it behind a
 * flag, set here before our module is first compiled; Node 22+ and Chromium 114+ have it by default):
 * relaxed_madd's rounding is the engine's choice, so results are compared with tolerances.
 */
import v8 from 'node:v8';
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../backend/node';
import { bmm, dense, matmulFrozen, newVariable } from '../../model/ops';
import { relaxedSimd } from './emit';
import { fmaOn, RELAXED_SIMD, setWasmKernels } from './heap';
import { MATMUL, matMulSimd } from './matmul';
import { simdKernels } from './simd';
import { maxDiff, onBoth } from './testing';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd');

describe('relaxed SIMD gemm', () => {
  it('is detected here, and its gemm matches the mul + add gemm within rounding', () => {
    expect(relaxedSimd()).toBe(true);
    const memory = new WebAssembly.Memory({ initial: 4 });
    const plain = simdKernels(memory, false)!;
    const fused = simdKernels(memory, true)!;
    expect(fused).not.toBe(plain);
    const f = new Float32Array(memory.buffer);
    const [M, N, K, A, B, C1, C2, bias] = [12, 24, 100, 16, 2000, 6000, 8000, 10000];
    for (let i = 0; i < M * K; i++) f[A + i] = Math.sin(i);
    for (let i = 0; i < K * N; i++) f[B + i] = Math.cos(0.7 * i);
    for (let i = 0; i < N; i++) f[bias + i] = i - 10;
    plain.gemm(M, N, K, 4 * A, 4 * K, 4, 4 * B, 4 * N, 4 * C1, 4 * N, 0.5, 0, 0, 4 * bias);
    fused.gemm(M, N, K, 4 * A, 4 * K, 4, 4 * B, 4 * N, 4 * C2, 4 * N, 0.5, 0, 0, 4 * bias);
    let err = 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let q = 0; q < K; q++) s += f[A + m * K + q]! * f[B + q * N + n]!;
        const want = 0.5 * s + f[bias + n]!;
        err = Math.max(err, Math.abs(want - f[C1 + m * N + n]!), Math.abs(want - f[C2 + m * N + n]!));
      }
    }
    expect(err).toBeLessThan(1e-4);
  });
});

describe('SIMD a @ b for frozen weights on wasm', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  for (const [N, I, O, bias] of [
    [1024, 96, 288, true], // c_attn's frozen base (bias fused)
    [1024, 384, 96, true], // mlp c_proj
    [128, 96, 2048, false], // the LM head x E^T; its gradient dy E is [128, 2048] x [2048, 96]
    [36, 20, 40, true], // small
    [10, 6, 5, true], // neither 4 | 10 nor 8 | 5: the stock route
    [8, 12, 13, false], // 8 | 13 fails forward; dy W^T [8, 13] x [13, 12] (N 12): stock too
  ] as const) {
    it(`frozen x [${N}, ${I}] @ w [${I}, ${O}]${bias ? ' + b' : ''}: value and x's gradient match cpu`, async () => {
      const [cpu, wasm] = await onBoth(() =>
        tf.tidy(() => {
          const x = tf.randomNormal([N, I], 0, 1, 'float32', 3) as tf.Tensor2D;
          const w = newVariable(
            tf.randomNormal([I, O], 0, 1, 'float32', 4),
            false,
          ) as tf.Variable<tf.Rank.R2>;
          const b = newVariable(tf.randomNormal([O], 0, 1, 'float32', 6), false) as tf.Variable<tf.Rank.R1>;
          const dy = tf.randomNormal([N, O], 0, 1, 'float32', 5);
          const f = (a: tf.Tensor): tf.Tensor =>
            bias ? dense(a as tf.Tensor2D, w, b) : matmulFrozen(a as tf.Tensor2D, w);
          const { value, grad } = tf.valueAndGrad((a: tf.Tensor) => tf.sum(tf.mul(f(a), dy)))(x);
          const y = f(x);
          const out = [y.dataSync().slice(), grad.dataSync().slice(), value.dataSync().slice()];
          tf.dispose([w, b]);
          return out;
        }),
      );
      expect(maxDiff(cpu[0]!, wasm[0]!)).toBeLessThan(2e-5 * Math.sqrt(I));
      expect(maxDiff(cpu[1]!, wasm[1]!)).toBeLessThan(2e-5 * Math.sqrt(O));
    });
  }

  for (const [N, I, O] of [
    [1024, 96, 8], // LoRA A: x A^T
    [1024, 8, 288], // LoRA B: (x A) B^T
    [64, 96, 384], // a full weight
    [10, 6, 5], // the stock route
  ] as const) {
    it(`trainable x [${N}, ${I}] @ w [${I}, ${O}] (bmm): value and both gradients match cpu`, async () => {
      const [cpu, wasm] = await onBoth(() =>
        tf.tidy(() => {
          const x = tf.randomNormal([N, I], 0, 1, 'float32', 3);
          const w = tf.randomNormal([I, O], 0, 1, 'float32', 4);
          const dy = tf.randomNormal([N, O], 0, 1, 'float32', 5);
          const gs = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(bmm(a, b), dy)))([x, w]);
          return [bmm(x, w), ...gs].map((g) => g.dataSync().slice());
        }),
      );
      expect(maxDiff(cpu[0]!, wasm[0]!)).toBeLessThan(2e-5 * Math.sqrt(I));
      expect(maxDiff(cpu[1]!, wasm[1]!)).toBeLessThan(2e-5 * Math.sqrt(O));
      expect(maxDiff(cpu[2]!, wasm[2]!)).toBeLessThan(2e-5 * Math.sqrt(N));
    });
  }

  it('runs as our kernel where the shape tiles, leaks nothing, and not when switched off', async () => {
    expect(fmaOn()).toBe(true);
    const [a, b, bias] = [
      tf.randomNormal([12, 8]) as tf.Tensor2D,
      tf.randomNormal([8, 16]) as tf.Tensor2D,
      tf.ones([16]) as tf.Tensor1D,
    ];
    const info = await tf.profile(() => matMulSimd(a, b, bias)!);
    expect(info.kernelNames).toEqual([MATMUL]);
    expect(info.newTensors).toBe(1);
    const y = info.result as tf.Tensor;
    expect(maxDiff(y.dataSync(), tf.tidy(() => tf.add(tf.matMul(a, b), bias)).dataSync())).toBeLessThan(1e-5);
    expect(matMulSimd(a, tf.randomNormal([8, 12]) as tf.Tensor2D)).toBeNull();
    expect(matMulSimd(a, b, tf.ones([8]) as tf.Tensor1D)).toBeNull(); // a bias of the wrong length
    const w = newVariable(tf.randomNormal([8, 16]), false) as tf.Variable<tf.Rank.R2>;
    const before = tf.memory().numTensors;
    const g = tf.grad((x: tf.Tensor) => tf.sum(matmulFrozen(x as tf.Tensor2D, w)))(a);
    expect(tf.memory().numTensors).toBe(before + 1);
    g.dispose();
    for (const name of [MATMUL, RELAXED_SIMD]) {
      setWasmKernels((k) => k !== name);
      try {
        expect(matMulSimd(a, b)).toBeNull();
      } finally {
        setWasmKernels(true);
      }
    }
    tf.dispose([a, b, bias, y, w]);
  });
});
