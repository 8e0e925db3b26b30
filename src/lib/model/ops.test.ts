/**
 * The hand-written gradients against tfjs's own autodiff of the plain formulas (cpu backend,
 * float32): LayerNorm (frozen and trainable gain/bias), gelu_new, cross-entropy, the matmuls.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import { bmm, crossEntropy, embed, geluNew, layerNorm, matmul, newVariable } from './ops';

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
