import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { countDispatches } from './dispatch-counter';
import { lmHeadCrossEntropy, lmHeadCrossEntropyStock } from './lm-head';
import { maxRelError, onBackend, randomValues, webgpuForTests } from './testing';

const gpu = await webgpuForTests();

// V off the 32-wide tile and off the chunk, so the last tile and the last chunk are partial.
const [N, C, V] = [37, 24, 150];
const labels = Int32Array.from({ length: N }, (_, i) => (i % 5 === 3 ? -100 : (i * 37 + 11) % V));

function inputs() {
  // Scaled so logits span several units: the softmax is far from uniform.
  return {
    h: tf.mul(tf.tensor2d(randomValues(N * C, 1), [N, C]), 2) as tf.Tensor2D,
    e: tf.tensor2d(randomValues(V * C, 2), [V, C]),
  };
}

describe.skipIf(!gpu)('lmHeadCrossEntropy on webgpu', () => {
  for (const embeddingTrains of [false, true]) {
    it(`matches the stock loss and gradients on cpu (embedding ${embeddingTrains ? 'trains' : 'frozen'})`, async () => {
      const want = await onBackend('cpu', () => {
        const { h, e } = inputs();
        const loss = lmHeadCrossEntropyStock(h, e, labels);
        const g = tf.grads((hi, ei) => lmHeadCrossEntropyStock(hi as tf.Tensor2D, ei as tf.Tensor2D, labels))(
          [h, e],
        );
        return [loss, ...g];
      });
      const got = await onBackend('webgpu', () => {
        const { h, e } = inputs();
        const loss = lmHeadCrossEntropy(h, e, labels, { chunk: 64 });
        const g = embeddingTrains
          ? tf.grads((hi, ei) =>
              lmHeadCrossEntropy(hi as tf.Tensor2D, ei as tf.Tensor2D, labels, {
                chunk: 64,
                embeddingTrains,
              }),
            )([h, e])
          : tf.grads((hi) => lmHeadCrossEntropy(hi as tf.Tensor2D, e, labels, { chunk: 64 }))([h]);
        return [loss, ...g];
      });
      expect(maxRelError(got[0]!, want[0]!), 'loss').toBeLessThan(1e-5);
      expect(maxRelError(got[1]!, want[1]!), 'dh').toBeLessThan(1e-5);
      if (embeddingTrains) expect(maxRelError(got[2]!, want[2]!), 'dE').toBeLessThan(1e-5);
      else expect(got.length).toBe(2);
    });
  }

  it('gives 0 and zero gradients when no label counts, as crossEntropy does', async () => {
    const none = new Int32Array(N).fill(-100);
    const [loss, dh] = await onBackend('webgpu', () => {
      const { h, e } = inputs();
      return [
        lmHeadCrossEntropy(h, e, none),
        tf.grad((hi) => lmHeadCrossEntropy(hi as tf.Tensor2D, e, none))(h),
      ];
    });
    expect(loss![0]).toBe(0);
    expect(dh!.every((x) => x === 0)).toBe(true);
  });

  it('takes fewer dispatches than stock and leaks nothing', async () => {
    await tf.setBackend('webgpu');
    const { h, e } = inputs();
    const step = async (f: typeof lmHeadCrossEntropy) => {
      const before = tf.memory().numTensors;
      const { counts } = await countDispatches(async () => {
        const g = tf.grad((hi) => f(hi as tf.Tensor2D, e, labels))(h);
        await g.data();
        g.dispose();
      });
      expect(tf.memory().numTensors).toBe(before);
      return counts.dispatches;
    };
    const fwd = async (f: typeof lmHeadCrossEntropy) => {
      const { result, counts } = await countDispatches(() => f(h, e, labels));
      result.dispose();
      return counts.dispatches;
    };
    const [stockF, oursF, stockS, oursS] = [
      await fwd(lmHeadCrossEntropyStock),
      await fwd(lmHeadCrossEntropy),
      await step(lmHeadCrossEntropyStock),
      await step(lmHeadCrossEntropy),
    ];
    // One vocabulary chunk here: 3 forward + ones for dy + G + dh.
    expect(oursF).toBe(3);
    expect(oursS).toBeLessThanOrEqual(3 + 1 + 2);
    expect(stockS).toBeGreaterThan(2 * oursS);
    console.log(
      `LM head + cross-entropy dispatches: forward ${stockF} stock vs ${oursF} ours; forward+backward ${stockS} vs ${oursS}`,
    );
    tf.dispose([h, e]);
  });
});
