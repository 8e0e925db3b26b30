import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import { loadGpt2 } from './load';
import { lmLogits } from './heads';
import { Gpt2Model } from './gpt2';
import { parseGpt2Config } from './config';

const FIX = join(import.meta.dirname, 'fixtures');

interface Expected {
  input_ids: number[][];
  logits: number[][][];
  greedy: number[];
}

function load(name: string): { model: Gpt2Model; expected: Expected } {
  const dir = join(FIX, name);
  const model = loadGpt2({
    config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(dir, 'model.safetensors'))),
    source: name,
  });
  return { model, expected: JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected };
}

function maxAbsDiff(a: Float32Array | number[], b: number[]): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.each(['wasm', 'cpu'] as const)('GPT-2 forward on %s', (backend) => {
  beforeAll(async () => {
    await initNodeBackend(backend);
  });

  it.each(['tiny-gpt2', 'tiny-gpt2-f16'])(
    '%s logits match the independent NumPy reference within 1e-4',
    (name) => {
      const { model, expected } = load(name);
      const logits = tf.tidy(() =>
        lmLogits(model, model.forward({ ids: tf.tensor2d(expected.input_ids, undefined, 'int32') }).hidden),
      );
      const diff = maxAbsDiff(logits.dataSync() as Float32Array, expected.logits.flat(2));
      logits.dispose();
      model.dispose();
      expect(diff).toBeLessThan(1e-4);
    },
  );

  it('a KV-cached forward gives the same last logits as the full sequence', () => {
    const { model, expected } = load('tiny-gpt2');
    const ids = expected.input_ids[0]!;
    tf.tidy(() => {
      const first = model.forward({
        ids: tf.tensor2d([ids.slice(0, 8)], undefined, 'int32'),
        returnPresents: true,
      });
      const rest = model.forward({
        ids: tf.tensor2d([ids.slice(8)], undefined, 'int32'),
        past: first.presents,
      });
      const cached = lmLogits(model, rest.hidden).dataSync() as Float32Array;
      const full = lmLogits(
        model,
        model.forward({ ids: tf.tensor2d([ids], undefined, 'int32') }).hidden,
      ).dataSync();
      const V = model.config.vocabSize;
      expect(maxAbsDiff(cached, Array.from(full.slice(8 * V)))).toBeLessThan(1e-5);
    });
    model.dispose();
  });
});

describe('random init', () => {
  it('builds every weight of the config with no leaked tensors after dispose', async () => {
    await initNodeBackend('cpu');
    const before = tf.memory().numTensors;
    const cfg = parseGpt2Config({ vocab_size: 50, n_positions: 16, n_embd: 8, n_layer: 2, n_head: 2 });
    const m = Gpt2Model.random(cfg, 1);
    expect(m.weights.size).toBe(2 + 2 * 12 + 2);
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('Gpt2Model.random', () => {
  it('is reproducible for every seed, 0 included', async () => {
    await initNodeBackend('cpu');
    const cfg = parseGpt2Config({ vocab_size: 30, n_positions: 8, n_embd: 8, n_layer: 1, n_head: 2 });
    for (const seed of [0, 5]) {
      const a = Gpt2Model.random(cfg, seed);
      const b = Gpt2Model.random(cfg, seed);
      for (const [k, v] of a.weights)
        expect(Array.from(v.dataSync()), k).toEqual(Array.from(b.w(k).dataSync()));
      a.dispose();
      b.dispose();
    }
  });
});
