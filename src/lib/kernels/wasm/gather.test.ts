/** Our wasm row gather (gather.ts) against tf.gather on the cpu backend. */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../backend/node';
import { InternalError } from '../../errors';
import { gatherRows } from './gather';
import { maxDiff, onBoth } from './testing';

describe('gatherRows on wasm', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  for (const idsShape of [[7], [3, 5], [1, 1]]) {
    it(`matches tf.gather for ids of shape [${idsShape}]`, async () => {
      const n = idsShape.reduce((a, b) => a * b, 1);
      const [cpu, wasm] = await onBoth(() =>
        tf.tidy(() => {
          const table = tf.randomNormal([11, 6], 0, 1, 'float32', 9) as tf.Tensor2D;
          const ids = tf.tensor(
            Int32Array.from({ length: n }, (_, i) => (i * 4 + 3) % 11),
            idsShape,
            'int32',
          );
          const out = gatherRows(table, ids);
          return { shape: out.shape, values: out.dataSync().slice() };
        }),
      );
      expect(wasm.shape).toEqual([...idsShape, 6]);
      expect(wasm.shape).toEqual(cpu.shape);
      expect(maxDiff(cpu.values, wasm.values)).toBe(0);
    });
  }

  it('runs as our kernel on wasm and refuses an id outside the table', async () => {
    const table = tf.randomNormal([4, 3]) as tf.Tensor2D;
    const ids = tf.tensor1d([0, 3], 'int32');
    const info = await tf.profile(() => gatherRows(table, ids));
    expect(info.kernelNames).toEqual(['PeftLabGatherRows']);
    expect(() => gatherRows(table, tf.tensor1d([4], 'int32'))).toThrow(InternalError);
    expect(() => gatherRows(table, tf.tensor1d([-1], 'int32'))).toThrow(InternalError);
  });
});
