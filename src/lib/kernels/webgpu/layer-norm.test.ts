import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { countDispatches } from './dispatch-counter';
import { layerNorm, layerNormStock } from './layer-norm';
import { maxRelError, onBackend, randomValues, webgpuForTests, weightedSum } from './testing';

const gpu = await webgpuForTests();
const [b, t, d, eps] = [2, 5, 24, 1e-5];

function inputs() {
  // An offset and a scale per row, so the mean and the variance both matter.
  const x = tf.add(tf.mul(tf.tensor3d(randomValues(b * t * d, 21), [b, t, d]), 3), 0.5);
  return { x, gamma: tf.tensor1d(randomValues(d, 22)), beta: tf.tensor1d(randomValues(d, 23)) };
}

describe.skipIf(!gpu)('layerNorm on webgpu', () => {
  it('matches the stock composition on cpu: y, dx, dgamma, dbeta', async () => {
    const run = (f: typeof layerNorm) => () => {
      const { x, gamma, beta } = inputs();
      const g = tf.grads((xi, gi, bi) => weightedSum(f(xi, gi as tf.Tensor1D, bi as tf.Tensor1D, eps), 7));
      return [f(x, gamma, beta, eps), ...g([x, gamma, beta])];
    };
    const want = await onBackend('cpu', run(layerNormStock));
    const got = await onBackend('webgpu', run(layerNorm));
    ['y', 'dx', 'dgamma', 'dbeta'].forEach((name, i) =>
      expect(maxRelError(got[i]!, want[i]!), name).toBeLessThan(1e-4),
    );
  });

  it('with frozen gamma and beta gives the same dx', async () => {
    const run = (train: boolean) => () => {
      const { x, gamma, beta } = inputs();
      return [tf.grad((xi) => weightedSum(layerNorm(xi, gamma, beta, eps, train), 7))(x)];
    };
    const [frozen] = await onBackend('webgpu', run(false));
    const [stock] = await onBackend('cpu', run(true));
    expect(maxRelError(frozen!, stock!)).toBeLessThan(1e-4);
  });

  it('takes 2 dispatches forward, 1 backward when frozen, fewer than stock', async () => {
    await tf.setBackend('webgpu');
    const { x, gamma, beta } = inputs();
    const count = async (fn: () => tf.Tensor | tf.Tensor[]) => {
      const { result, counts } = await countDispatches(fn);
      tf.dispose(result);
      return counts.dispatches;
    };
    expect(await count(() => layerNorm(x, gamma, beta, eps))).toBe(2);
    const stockFwd = await count(() => layerNormStock(x, gamma, beta, eps));
    const frozen = await count(() => tf.grad((xi) => layerNorm(xi, gamma, beta, eps, false))(x));
    expect(frozen).toBe(3);
    const ours = await count(() =>
      tf.grads((xi, gi, bi) => layerNorm(xi, gi as tf.Tensor1D, bi as tf.Tensor1D, eps))([x, gamma, beta]),
    );
    const stock = await count(() =>
      tf.grads((xi, gi, bi) => layerNormStock(xi, gi as tf.Tensor1D, bi as tf.Tensor1D, eps))([
        x,
        gamma,
        beta,
      ]),
    );
    expect(ours).toBeLessThan(stock);
    console.log(
      `layerNorm dispatches: forward ${stockFwd} stock vs 2 ours; forward+backward ${stock} stock vs ${ours} ours (${frozen} with frozen gamma, beta)`,
    );
    tf.dispose([x, gamma, beta]);
  });
});
