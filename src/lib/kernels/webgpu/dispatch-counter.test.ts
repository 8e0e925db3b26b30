import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { countDispatches, dispatchCounts } from './dispatch-counter';
import { webgpuForTests } from './testing';

const gpu = await webgpuForTests();

describe.skipIf(!gpu)('dispatch counter on webgpu', () => {
  it('counts one dispatch per program and one readback per GPU read', async () => {
    await tf.setBackend('webgpu');
    const a = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    const b = tf.tensor2d([5, 6, 7, 8], [2, 2]);
    const { result, counts } = await countDispatches(() => tf.tidy(() => tf.add(tf.matMul(a, b), tf.exp(a))));
    // matMul, exp and add: three programs; uploads and reshapes are not dispatches.
    expect(counts.dispatches).toBe(3);
    expect(counts.readbacks).toBe(0);
    expect(Object.values(counts.byProgram).reduce((s, v) => s + v, 0)).toBe(3);
    const read = await countDispatches(() => result.data());
    expect(read.counts.dispatches).toBe(0);
    expect(read.counts.readbacks).toBe(1);
    expect(read.counts.submits).toBeGreaterThanOrEqual(1);
    // A second read is served from the CPU copy tfjs keeps: no readback.
    expect((await countDispatches(() => result.dataSync())).counts.readbacks).toBe(0);
    const want = [19 + Math.exp(1), 22 + Math.exp(2), 43 + Math.exp(3), 50 + Math.exp(4)];
    Array.from(await result.data()).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 4));
    tf.dispose([a, b, result]);
  });

  it('keeps counting across calls (totals only grow)', async () => {
    await tf.setBackend('webgpu');
    const before = dispatchCounts().dispatches;
    tf.tidy(() => tf.relu(tf.tensor1d([1, -1])));
    expect(dispatchCounts().dispatches).toBe(before + 1);
  });

  it('refuses another backend with a message', async () => {
    await tf.setBackend('cpu');
    expect(() => dispatchCounts()).toThrow(/needs the webgpu backend, but cpu is active/);
  });
});
