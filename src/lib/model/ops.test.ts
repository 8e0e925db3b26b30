/**
 * The hand-written gradients against tfjs's own autodiff of the plain formulas (cpu backend,
 * float32): LayerNorm (frozen and trainable gain/bias), gelu_new, cross-entropy, the matmuls.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import {
  bmm,
  crossEntropy,
  embed,
  geluNew,
  layerNorm,
  columnBlocks,
  matmul,
  multiHeadAttention,
  newVariable,
  packedSelfAttention,
} from './ops';
import { attentionBias } from './gpt2';

function close(a: tf.Tensor, b: tf.Tensor, tol = 1e-5): void {
  const x = a.dataSync();
  const y = b.dataSync();
  expect(x.length).toBe(y.length);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  expect(m).toBeLessThan(tol);
}

const refLayerNorm = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor => {
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(tf.mean(tf.square(xc), -1, true), eps))), g), b);
};
const refGelu = (x: tf.Tensor): tf.Tensor =>
  tf.mul(
    tf.mul(x, 0.5),
    tf.add(tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI))), 1),
  );

describe('custom gradients agree with autodiff of the formulas', () => {
  beforeAll(async () => {
    await initNodeBackend('cpu');
  });

  it('LayerNorm with trainable gain and bias', () => {
    const x = tf.randomNormal([2, 3, 8], 0.5, 2, 'float32', 1);
    const g = tf.randomNormal([8], 1, 0.3, 'float32', 2);
    const b = tf.randomNormal([8], 0, 0.3, 'float32', 3);
    const w = tf.randomNormal([2, 3, 8], 0, 1, 'float32', 4);
    const loss = (f: typeof layerNorm) => (xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor) =>
      tf.sum(tf.mul(f(xi, gi as tf.Tensor1D, bi as tf.Tensor1D, 1e-5), w));
    close(layerNorm(x, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5), refLayerNorm(x, g, b, 1e-5));
    const ours = tf.grads(loss(layerNorm))([x, g, b]);
    const ref = tf.grads(loss(refLayerNorm as typeof layerNorm))([x, g, b]);
    ours.forEach((t, i) => close(t, ref[i]!, 1e-4));
  });

  it('LayerNorm with a frozen gain and bias gives the same dx and computes no dgamma', () => {
    const x = tf.randomNormal([4, 8], 0, 1, 'float32', 5);
    const g = newVariable(tf.randomNormal([8], 1, 0.3, 'float32', 6), false);
    const b = newVariable(tf.randomNormal([8], 0, 0.3, 'float32', 7), false);
    const w = tf.randomNormal([4, 8], 0, 1, 'float32', 8);
    const dx = tf.grad((xi: tf.Tensor) =>
      tf.sum(tf.mul(layerNorm(xi, g as unknown as tf.Tensor1D, b as unknown as tf.Tensor1D, 1e-5), w)),
    )(x);
    const ref = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(refLayerNorm(xi, g, b, 1e-5), w)))(x);
    close(dx, ref, 1e-4);
  });

  it('gelu_new and its derivative', () => {
    const x = tf.linspace(-5, 5, 101);
    close(geluNew(x), refGelu(x), 1e-6);
    close(
      tf.grad((xi: tf.Tensor) => tf.sum(geluNew(xi)))(x),
      tf.grad((xi: tf.Tensor) => tf.sum(refGelu(xi)))(x),
      1e-5,
    );
  });

  it('cross-entropy with ignored labels, value and gradient', () => {
    const logits = tf.randomNormal([5, 7], 0, 2, 'float32', 9) as tf.Tensor2D;
    const labels = Int32Array.from([3, -100, 0, 6, 2]);
    const mask = tf.tensor1d([1, 0, 1, 1, 1]);
    const oh = tf.oneHot(tf.tensor1d([3, 0, 0, 6, 2], 'int32'), 7);
    const ref = (l: tf.Tensor) =>
      tf.div(tf.sum(tf.mul(tf.neg(tf.sum(tf.mul(tf.logSoftmax(l), oh), -1)), mask)), 4);
    close(crossEntropy(logits, labels), ref(logits), 1e-6);
    close(
      tf.grad((l: tf.Tensor) => crossEntropy(l as tf.Tensor2D, labels))(logits),
      tf.grad(ref)(logits),
      1e-6,
    );
  });

  it('matmul, batched matmul and a trainable embedding', () => {
    const x = tf.randomNormal([3, 4], 0, 1, 'float32', 10) as tf.Tensor2D;
    const w = tf.randomNormal([4, 5], 0, 1, 'float32', 11) as tf.Tensor2D;
    const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.square(matmul(a as tf.Tensor2D, b as tf.Tensor2D))),
    )([x, w]);
    const [rx, rw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.square(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D))),
    )([x, w]);
    close(gx!, rx!, 1e-4);
    close(gw!, rw!, 1e-4);
    const a = tf.randomNormal([2, 3, 4, 5], 0, 1, 'float32', 12);
    const b = tf.randomNormal([2, 3, 5, 2], 0, 1, 'float32', 13);
    const ours = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.square(bmm(p, q))))([a, b]);
    const ref = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.square(tf.matMul(p, q))))([a, b]);
    ours.forEach((t, i) => close(t, ref[i]!, 1e-4));
    const table = tf.randomNormal([6, 3], 0, 1, 'float32', 14) as tf.Tensor2D;
    const ids = tf.tensor2d([[1, 5, 1]], undefined, 'int32');
    close(
      tf.grad((t: tf.Tensor) => tf.sum(tf.square(embed(t as tf.Tensor2D, ids))))(table),
      tf.grad((t: tf.Tensor) => tf.sum(tf.square(tf.gather(t, ids))))(table),
      1e-5,
    );
  });
});

/** softmax(q k^T / sqrt(D) + mask) v with heads as a batch axis, as HF's eager attention writes it. */
function refAttention(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  mask: tf.Tensor4D,
  H: number,
): tf.Tensor {
  const [B, T, C] = q.shape;
  const S = k.shape[1];
  const D = C / H;
  const heads = (x: tf.Tensor3D, L: number): tf.Tensor4D =>
    tf.transpose(tf.reshape(x, [B, L, H, D]), [0, 2, 1, 3]) as tf.Tensor4D;
  const scores = tf.add(tf.mul(tf.matMul(heads(q, T), heads(k, S), false, true), 1 / Math.sqrt(D)), mask);
  const y = tf.matMul(tf.softmax(scores), heads(v, S));
  return tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [B, T, C]);
}

describe('crossEntropy far from the label', () => {
  beforeAll(async () => {
    await initNodeBackend('cpu');
  });

  it('stays finite and exact when the label probability underflows float32', () => {
    const logits = tf.tensor2d([[0, 200, 3]]);
    expect(crossEntropy(logits, Int32Array.from([0])).dataSync()[0]).toBeCloseTo(200, 3);
  });
});

describe('multiHeadAttention (2-D products per head)', () => {
  beforeAll(async () => {
    await initNodeBackend('cpu');
  });

  // Head counts and widths, a past (S > T) and a padding mask.
  for (const [H, D, past, padded] of [
    [4, 3, 0, false],
    [6, 2, 2, true],
    [8, 2, 0, false],
    [5, 2, 3, false],
  ] as const) {
    it(`matches the batched formula and its autodiff: ${H} heads, past ${past}, padding ${padded}`, () => {
      const [B, T, C] = [2, 5, H * D];
      const S = past + T;
      const q = tf.randomNormal([B, T, C], 0, 1, 'float32', 21) as tf.Tensor3D;
      const k = tf.randomNormal([B, S, C], 0, 1, 'float32', 22) as tf.Tensor3D;
      const v = tf.randomNormal([B, S, C], 0, 1, 'float32', 23) as tf.Tensor3D;
      const w = tf.randomNormal([B, T, C], 0, 1, 'float32', 24);
      const keyMask = padded
        ? tf.tensor2d(
            Array.from({ length: B * S }, (_, i) => (i === 0 ? 0 : 1)),
            [B, S],
          )
        : undefined;
      const mask = attentionBias(T, past, B, keyMask);
      close(multiHeadAttention(q, k, v, mask, H), refAttention(q, k, v, mask, H), 1e-5);
      const loss =
        (f: typeof refAttention) =>
        (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor): tf.Scalar =>
          tf.sum(tf.mul(f(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D, mask, H), w));
      const ours = tf.grads(loss(multiHeadAttention))([q, k, v]);
      const ref = tf.grads(loss(refAttention))([q, k, v]);
      ours.forEach((g, i) => close(g, ref[i]!, 1e-4));
    });
  }
});

// The same checks on wasm, where attention takes our product kernel (itemMatMul) and columnBlocks
// our copy kernel (takeBlock).
describe('attention ops on the wasm backend', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('multiHeadAttention and its gradient match the batched formula', () => {
    const [B, T, S, H, D] = [3, 4, 6, 6, 2];
    const C = H * D;
    const q = tf.randomNormal([B, T, C], 0, 1, 'float32', 31) as tf.Tensor3D;
    const k = tf.randomNormal([B, S, C], 0, 1, 'float32', 32) as tf.Tensor3D;
    const v = tf.randomNormal([B, S, C], 0, 1, 'float32', 33) as tf.Tensor3D;
    const w = tf.randomNormal([B, T, C], 0, 1, 'float32', 34);
    const mask = attentionBias(T, S - T, B, tf.ones([B, S]));
    close(multiHeadAttention(q, k, v, mask, H), refAttention(q, k, v, mask, H), 1e-5);
    const loss =
      (f: typeof refAttention) =>
      (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor): tf.Scalar =>
        tf.sum(tf.mul(f(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D, mask, H), w));
    const ours = tf.grads(loss(multiHeadAttention))([q, k, v]);
    const ref = tf.grads(loss(refAttention))([q, k, v]);
    ours.forEach((g, i) => close(g, ref[i]!, 1e-4));
  });

  it('columnBlocks cuts columns and routes each block its gradient', () => {
    const x = tf.randomNormal([5, 12], 0, 1, 'float32', 35) as tf.Tensor2D;
    const blocks = columnBlocks(x, 3);
    blocks.forEach((b, i) => close(b, tf.slice(x, [0, i * 4], [5, 4]), 1e-7));
    const ws = [0, 1, 2].map((i) => tf.randomNormal([5, 4], 0, 1, 'float32', 40 + i));
    const f = (split: (t: tf.Tensor2D) => tf.Tensor[]) => (t: tf.Tensor) =>
      tf.addN(split(t as tf.Tensor2D).map((b, i) => tf.sum(tf.mul(b, ws[i]!)))) as tf.Scalar;
    close(tf.grad(f((t) => columnBlocks(t, 3)))(x), tf.grad(f((t) => tf.split(t, 3, 1)))(x), 1e-6);
  });
});

// packedSelfAttention reads c_attn's qkv [B*T, 3C] whole: the same values and gradient as cutting it
// into q, k, v and running the batched formula, on cpu (stock ops) and wasm (our kernels).
for (const backend of ['cpu', 'wasm'] as const) {
  describe(`packedSelfAttention on ${backend}`, () => {
    beforeAll(async () => {
      await initNodeBackend(backend);
    });

    for (const [B, T, H, D, padded] of [
      [2, 5, 4, 3, false],
      [3, 4, 6, 2, true],
      [1, 7, 1, 5, false],
    ] as const) {
      it(`matches the batched formula: B ${B}, T ${T}, ${H} heads of ${D}, padding ${padded}`, () => {
        const C = H * D;
        const qkv = tf.randomNormal([B * T, 3 * C], 0, 1, 'float32', 51) as tf.Tensor2D;
        const w = tf.randomNormal([B, T, C], 0, 1, 'float32', 52);
        const keyMask = padded
          ? tf.tensor2d(
              Array.from({ length: B * T }, (_, i) => (i % T === 1 ? 0 : 1)),
              [B, T],
            )
          : undefined;
        const mask = attentionBias(T, 0, B, keyMask);
        const ref = (x: tf.Tensor2D): tf.Tensor3D => {
          const [q, k, v] = tf.split(x, 3, 1).map((t) => tf.reshape(t, [B, T, C]) as tf.Tensor3D);
          return refAttention(q!, k!, v!, mask, H) as tf.Tensor3D;
        };
        close(packedSelfAttention(qkv, mask, B, T, H), ref(qkv), 1e-5);
        const loss = (f: (x: tf.Tensor2D) => tf.Tensor3D) => (x: tf.Tensor) =>
          tf.sum(tf.mul(f(x as tf.Tensor2D), w)) as tf.Scalar;
        close(
          tf.grad(loss((x) => packedSelfAttention(x, mask, B, T, H)))(qkv),
          tf.grad(loss(ref))(qkv),
          1e-4,
        );
      });
    }
  });
}
