import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import { loadGpt2 } from '../model/load';
import { lora } from '../peft/lora';
import { Trainer } from './trainer';
import { AdamW, clipByGlobalNorm } from './adamw';
import { cosineWithWarmup } from './schedule';
import { newVariable } from '../model/ops';

const FIX = join(import.meta.dirname, '../model/fixtures/tiny-gpt2');
const STREAM = Int32Array.from({ length: 400 }, (_, i) => (i * 5) % 13);
const tiny = () =>
  loadGpt2({
    config: JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(FIX, 'model.safetensors'))),
  });

describe('trainer pieces', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('AdamW matches the written-out formula with decoupled weight decay', () => {
    const p = newVariable(tf.tensor1d([0.5, -1.0]), true);
    const opt = new AdamW({ beta1: 0.9, beta2: 0.99, eps: 1e-7, weightDecay: 0.1 });
    const grads = [
      [0.2, -0.4],
      [0.1, 0.3],
    ];
    let ref = [0.5, -1.0];
    let m = [0, 0];
    let v = [0, 0];
    grads.forEach((g, t) => {
      const gt = tf.tensor1d(g);
      opt.apply(new Map([['p', p]]), new Map([['p', gt]]), 0.01);
      gt.dispose();
      m = m.map((mi, i) => 0.9 * mi + 0.1 * g[i]!);
      v = v.map((vi, i) => 0.99 * vi + 0.01 * g[i]! ** 2);
      const c1 = 1 - 0.9 ** (t + 1);
      const c2 = 1 - 0.99 ** (t + 1);
      ref = ref.map((x, i) => x - 0.01 * (m[i]! / c1 / (Math.sqrt(v[i]! / c2) + 1e-7) + 0.1 * x));
    });
    const got = Array.from(p.dataSync());
    got.forEach((x, i) => expect(x).toBeCloseTo(ref[i]!, 6));
    opt.dispose();
    p.dispose();
  });

  it('clips by the global norm', async () => {
    const g = new Map<string, tf.Tensor>([
      ['a', tf.tensor1d([3, 0])],
      ['b', tf.tensor1d([0, 4])],
    ]);
    const { norm, grads } = clipByGlobalNorm(g, 1);
    expect((await norm.data())[0]).toBeCloseTo(5, 5);
    expect(Array.from(await grads.get('a')!.data())[0]).toBeCloseTo(0.6, 5);
    expect(Array.from(await grads.get('b')!.data())[1]).toBeCloseTo(0.8, 5);
    tf.dispose([norm, ...grads.values(), ...g.values()]);
  });

  it('warms up linearly, then decays by a half cosine to zero', () => {
    expect(cosineWithWarmup(0, 1, 10, 110)).toBeCloseTo(0.1);
    expect(cosineWithWarmup(9, 1, 10, 110)).toBeCloseTo(1);
    expect(cosineWithWarmup(60, 1, 10, 110)).toBeCloseTo(0.5);
    expect(cosineWithWarmup(110, 1, 10, 110)).toBeCloseTo(0);
  });

  it('gradient accumulation of 2 x 2 gives the same update as one batch of 4', async () => {
    const run = async (batchSize: number, gradAccumSteps: number): Promise<Float32Array[]> => {
      const model = tiny();
      const adapter = lora.create(model, { ...lora.defaults('CAUSAL_LM'), r: 2 }, 5);
      const t = new Trainer(model, adapter, STREAM, {
        steps: 2,
        lr: 1e-2,
        batchSize,
        seqLen: 8,
        seed: 3,
        gradAccumSteps,
        warmupSteps: 0,
      });
      await t.trainStep();
      await t.trainStep();
      const out = [...adapter.trainable().values()].map((v) => v.dataSync() as Float32Array);
      t.dispose();
      adapter.dispose();
      model.dispose();
      return out;
    };
    const big = await run(4, 1);
    const accumulated = await run(2, 2);
    big.forEach((w, i) => w.forEach((x, j) => expect(accumulated[i]![j]!).toBeCloseTo(x, 5)));
    // And it differs from plain batch 2, so the comparison can fail.
    const small = await run(2, 1);
    expect(Array.from(small[1]!)).not.toEqual(Array.from(big[1]!));
  });
});
