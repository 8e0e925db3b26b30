import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { countDispatches } from './dispatch-counter';
import { loraLinear, loraLinearStock } from './lora-linear';
import { maxRelError, onBackend, randomValues, webgpuForTests, weightedSum } from './testing';

const gpu = await webgpuForTests();

// Not multiples of the 16 x 16 tile, so the bounds checks are exercised.
const [n, din, dout, r, scale] = [20, 24, 18, 4, 2];

function inputs() {
  return {
    x: tf.tensor2d(randomValues(n * din, 1), [n, din]),
    w: tf.tensor2d(randomValues(din * dout, 2), [din, dout]),
    bias: tf.tensor1d(randomValues(dout, 3)),
    a: tf.tensor2d(randomValues(din * r, 4), [din, r]),
    b: tf.tensor2d(randomValues(r * dout, 5), [r, dout]),
  };
}

describe.skipIf(!gpu)('loraLinear on webgpu', () => {
  it('matches the stock composition on cpu: values and the gradients of x, A and B', async () => {
    const run = (f: typeof loraLinearStock) => () => {
      const { x, w, bias, a, b } = inputs();
      const y = f(x, w, bias, a, b, scale);
      const g = tf.grads((xi, ai, bi) =>
        weightedSum(f(xi as tf.Tensor2D, w, bias, ai as tf.Tensor2D, bi as tf.Tensor2D, scale), 9),
      );
      return [y, ...g([x, a, b])];
    };
    const want = await onBackend('cpu', run(loraLinearStock));
    const got = await onBackend('webgpu', run(loraLinear));
    const names = ['y', 'dx', 'dA', 'dB'];
    for (let i = 0; i < 4; i++) expect(maxRelError(got[i]!, want[i]!), names[i]).toBeLessThan(1e-4);
  });

  it('takes 2 dispatches forward and 4 backward, fewer than stock', async () => {
    await tf.setBackend('webgpu');
    const { x, w, bias, a, b } = inputs();
    const fwd = async (f: typeof loraLinearStock) => {
      const { result, counts } = await countDispatches(() => f(x, w, bias, a, b, scale));
      result.dispose();
      return counts.dispatches;
    };
    // Forward and backward together, minus the loss's own ops (the same on both sides).
    const step = async (f: typeof loraLinearStock) => {
      const { result, counts } = await countDispatches(() =>
        tf.grads((xi, ai, bi) => f(xi as tf.Tensor2D, w, bias, ai as tf.Tensor2D, bi as tf.Tensor2D, scale))([
          x,
          a,
          b,
        ]),
      );
      result.forEach((t) => t.dispose());
      return counts.dispatches;
    };
    expect(await fwd(loraLinear)).toBe(2);
    const stockFwd = await fwd(loraLinearStock);
    expect(stockFwd).toBeGreaterThan(2);
    const ours = await step(loraLinear);
    const stock = await step(loraLinearStock);
    // tf.grads seeds dy with ones (1 fill dispatch on both sides).
    expect(ours).toBeLessThanOrEqual(2 + 4 + 1);
    expect(ours).toBeLessThan(stock);
    console.log(
      `loraLinear dispatches: forward ${stockFwd} stock vs 2 ours; forward+backward ${stock} stock vs ${ours} ours`,
    );
    tf.dispose([x, w, bias, a, b]);
  });

  it('leaks no tensors through a gradient step', async () => {
    await tf.setBackend('webgpu');
    const { x, w, bias, a, b } = inputs();
    const before = tf.memory().numTensors;
    const g = tf.grads((xi, ai, bi) =>
      weightedSum(loraLinear(xi as tf.Tensor2D, w, bias, ai as tf.Tensor2D, bi as tf.Tensor2D, scale), 3),
    )([x, a, b]);
    await Promise.all(g.map((t) => t.data()));
    tf.dispose(g);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, w, bias, a, b]);
  });
});
