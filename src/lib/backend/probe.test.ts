import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from './node';
import { countProbeOps, timeProbeStep } from './probe';

beforeAll(async () => {
  await initNodeBackend('wasm');
});

describe('timeProbeStep', () => {
  it('times a real training step on wasm and leaves no tensor behind', async () => {
    const before = tf.memory().numTensors;
    const r = await timeProbeStep();
    expect(r.note).toBeUndefined();
    expect(r.msPerStep).toBeGreaterThan(0);
    expect(r.msPerStep).toBeLessThan(2000);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('calls a backend whose first step passes the cap too slow, with the figure', async () => {
    const r = await timeProbeStep(0);
    expect(r.msPerStep).toBeNull();
    expect(r.note).toMatch(/^over the 0 ms cap \(first step \d+ ms\)$/);
  });

  it('counts the step ops, and rules a backend out by its per-op cost alone when that cannot win', async () => {
    const ops = await countProbeOps();
    expect(ops).toBeGreaterThan(50);
    const r = await timeProbeStep(2000, { msPerStep: 1e-6, ops });
    expect(r.msPerStep).toBeNull();
    expect(r.note).toMatch(
      new RegExp(`^at least \\d+ ms/step \\([\\d.]+ ms per op x ${ops} ops\\), not timed further$`),
    );
    // A figure it can beat is timed as usual.
    expect((await timeProbeStep(2000, { msPerStep: 1e9, ops })).msPerStep).toBeGreaterThan(0);
  });
});
