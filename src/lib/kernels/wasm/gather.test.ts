/**
 * Our wasm row gather (gather.ts) against tf.gather on the cpu backend, and a trainable embedding's
 * gradient (ops.ts embed: our scatter-add on wasm) against cpu's one-hot product.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../backend/node';
import { InternalError } from '../../errors';
import { embed, newVariable } from '../../model/ops';
import { gatherRows, SCATTER_ADD_ROWS } from './gather';
import { setWasmKernels } from './heap';
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

  for (const on of [true, false]) {
    it(`a trainable table's gradient matches cpu's one-hot product, repeated ids summed${on ? '' : ' (scatter-add switched off)'}`, async () => {
      setWasmKernels((k) => on || k !== SCATTER_ADD_ROWS);
      try {
        const [cpu, wasm] = await onBoth(() => {
          const table = newVariable(tf.randomNormal([13, 8], 0, 1, 'float32', 5) as tf.Tensor2D, true);
          // 3 x 7 ids with repeats (row 2 four times) and rows never used (their gradient is 0).
          const ids = tf.tensor2d(
            Int32Array.from({ length: 21 }, (_, i) => (i * i + 2) % 11),
            [3, 7],
            'int32',
          );
          const dy = tf.randomNormal([3, 7, 8], 0, 1, 'float32', 6);
          const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(embed(table, ids), dy)), [table]);
          const out = [value.dataSync().slice(), grads[table.name]!.dataSync().slice()];
          tf.dispose([table, ids, dy, value, ...Object.values(grads)]);
          return out;
        });
        expect(maxDiff(cpu[0]!, wasm[0]!)).toBeLessThan(1e-4);
        expect(maxDiff(cpu[1]!, wasm[1]!)).toBeLessThan(1e-5);
        expect(Math.max(...Array.from(cpu[1]!, Math.abs))).toBeGreaterThan(0.5);
      } finally {
        setWasmKernels(true);
      }
    });
  }

  it('runs the gradient as our kernel on wasm', async () => {
    const table = newVariable(tf.randomNormal([5, 4]) as tf.Tensor2D, true);
    const ids = tf.tensor1d([0, 3, 3], 'int32');
    const before = tf.memory().numTensors;
    const info = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(() => tf.sum(embed(table, ids)), [table]);
      tf.dispose([value, ...Object.values(grads)]);
    });
    expect(info.kernelNames).toContain(SCATTER_ADD_ROWS);
    expect(info.kernelNames).not.toContain('OneHot');
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([table, ids]);
  });
});
