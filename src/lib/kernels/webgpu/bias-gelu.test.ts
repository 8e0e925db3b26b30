import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { biasGelu, biasGeluStock } from './bias-gelu';
import { countDispatches } from './dispatch-counter';
import { maxRelError, onBackend, randomValues, webgpuForTests, weightedSum } from './testing';

const gpu = await webgpuForTests();
const [n, d] = [10, 37];

function inputs() {
  // Spread to +-6 so both tails of the tanh (and the clamp) are crossed.
  return {
    x: tf.mul(tf.tensor2d(randomValues(n * d, 11), [n, d]), 6) as tf.Tensor2D,
    b: tf.tensor1d(randomValues(d, 12)),
  };
}

describe.skipIf(!gpu)('biasGelu on webgpu', () => {
  it('matches the stock gelu_new(x + b) on cpu: value, dx and db', async () => {
    const run = (f: typeof biasGelu) => () => {
      const { x, b } = inputs();
      const g = tf.grads((xi, bi) => weightedSum(f(xi as tf.Tensor2D, bi as tf.Tensor1D), 5));
      return [f(x, b), ...g([x, b])];
    };
    const want = await onBackend('cpu', run(biasGeluStock));
    const got = await onBackend('webgpu', run(biasGelu));
    ['y', 'dx', 'db'].forEach((name, i) => expect(maxRelError(got[i]!, want[i]!), name).toBeLessThan(1e-5));
  });

  it('with a frozen bias gives dx alone, equal to the trained-bias dx', async () => {
    const run = (train: boolean) => () => {
      const { x, b } = inputs();
      return [tf.grad((xi) => weightedSum(biasGelu(xi as tf.Tensor2D, b, train), 5))(x)];
    };
    const [frozen] = await onBackend('webgpu', run(false));
    const [trained] = await onBackend('cpu', run(true));
    expect(maxRelError(frozen!, trained!)).toBeLessThan(1e-5);
  });

  it('takes 1 dispatch forward and 2 backward, fewer than stock', async () => {
    await tf.setBackend('webgpu');
    const { x, b } = inputs();
    const count = async (f: typeof biasGelu, backward: boolean) => {
      const { result, counts } = await countDispatches(() =>
        backward ? tf.grads((xi, bi) => f(xi as tf.Tensor2D, bi as tf.Tensor1D))([x, b]) : [f(x, b)],
      );
      tf.dispose(result);
      return counts.dispatches;
    };
    expect(await count(biasGelu, false)).toBe(1);
    const stockFwd = await count(biasGeluStock, false);
    const ours = await count(biasGelu, true);
    const stock = await count(biasGeluStock, true);
    expect(ours).toBeLessThanOrEqual(1 + 2 + 1); // + tf.grads's ones
    expect(ours).toBeLessThan(stock);
    console.log(
      `biasGelu dispatches: forward ${stockFwd} stock vs 1 ours; forward+backward ${stock} stock vs ${ours} ours`,
    );
    tf.dispose([x, b]);
  });
});
