/**
 * LoHa and LoKr against PEFT 0.21 on tiny-llama (PEFT refuses both on GPT-2's Conv1D, so there is
 * no PEFT check on GPT-2; methods.test.ts trains them there): PEFT's files load and give PEFT's
 * logits to 1e-4 (scripts/reference/peft_interop/make_lycoris_fixtures.py, every factor random),
 * our config file has exactly PEFT's keys, our save has PEFT's tensor names and shapes and loads
 * back with identical logits, merge gives the unmerged logits, and `factorization` agrees with
 * PEFT's documented examples.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import type { DecoderModel } from '../model/decoder';
import { lmLogits } from '../model/heads';
import { tinyLlama } from '../model/testing';
import { parseSafetensorsHeader } from '../io/safetensors';
import { loadAdapter, saveAdapter } from '../io/peft-format';
import { AdapterError } from '../errors';
import { adapterDecorator } from './forward';
import { factorization, kronShape, lokrDefaults } from './lokr/info';
import { kron } from './lokr';
import type { Adapter } from './types';

const FIXTURES = join(import.meta.dirname, 'fixtures/peft-0.21-llama');
const CASES = ['loha', 'lokr', 'lokr_factored', 'lokr_factor4'] as const;

interface Expected {
  input_ids: number[][];
  logits: number[][][];
}

function read(name: string): { config: string; weights: Uint8Array; expected: Expected } {
  const dir = join(FIXTURES, name);
  return {
    config: readFileSync(join(dir, 'adapter_config.json'), 'utf8'),
    weights: new Uint8Array(readFileSync(join(dir, 'adapter_model.safetensors'))),
    expected: JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected,
  };
}

function logitsOf(model: DecoderModel, adapter: Adapter, ids: number[][]): Float32Array {
  return tf.tidy(() => {
    const r = model.forward(
      adapterDecorator(model, adapter)({ ids: tf.tensor2d(ids, undefined, 'int32') }, true),
    );
    return lmLogits(model, r.hidden).dataSync() as Float32Array;
  });
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Tensor names and shapes of a safetensors file. */
function layout(bytes: Uint8Array): Record<string, number[]> {
  return Object.fromEntries(
    parseSafetensorsHeader(bytes, 'adapter_model.safetensors').tensors.map((t) => [t.name, t.shape]),
  );
}

describe('LoHa and LoKr against PEFT 0.21 on tiny-llama', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it.each(CASES)("%s: PEFT's file gives PEFT's logits; merge, save and load keep them", async (name) => {
    const f = read(name);
    const model = tinyLlama();
    const before = tf.memory().numTensors;
    const adapter = loadAdapter(model, { config: f.config, weights: f.weights }, name);
    const ids = f.expected.input_ids;
    const want = f.expected.logits.flat(2);
    const ours = logitsOf(model, adapter, ids);
    const restore = adapter.disableAdapter();
    const plain = logitsOf(model, adapter, ids);
    restore();
    expect(maxAbsDiff(plain, want), 'the adapter matters').toBeGreaterThan(0.1);
    expect(maxAbsDiff(ours, want)).toBeLessThan(1e-4);

    // Merge folds ΔW into the base weights; unmerge restores them.
    if (adapter.kind !== 'inject') throw new Error('LoHa/LoKr are inject methods');
    adapter.merge();
    expect(maxAbsDiff(logitsOf(model, adapter, ids), want)).toBeLessThan(1e-4);
    adapter.unmerge();
    expect(maxAbsDiff(logitsOf(model, adapter, ids), ours)).toBe(0);

    // Our save: PEFT's config keys, tensor names and shapes; it loads back with the same logits.
    const saved = await saveAdapter(adapter, 'src/lib/model/fixtures/tiny-llama');
    const peftJson = JSON.parse(f.config) as Record<string, unknown>;
    const ourJson = JSON.parse(saved.config) as Record<string, unknown>;
    expect(Object.keys(ourJson).sort()).toEqual(Object.keys(peftJson).sort());
    for (const k of ['peft_type', 'r', 'alpha', 'decompose_both', 'decompose_factor', 'init_weights'])
      expect(ourJson[k], k).toEqual(peftJson[k]);
    expect(layout(saved.weights)).toEqual(layout(f.weights));
    adapter.dispose();
    // The model's cached transposed head is the model's, not a leak.
    model.invalidateCaches();
    expect(tf.memory().numTensors).toBe(before);

    const fresh = tinyLlama();
    const again = loadAdapter(fresh, saved, `${name} (ours)`);
    expect(maxAbsDiff(logitsOf(fresh, again, ids), ours)).toBe(0);
    again.dispose();
    fresh.dispose();
    model.dispose();
  });

  it('a file whose factor forms differ from the config (another r) is refused, naming the tensor', () => {
    const f = read('lokr_factored');
    const config = JSON.stringify({ ...JSON.parse(f.config), r: 8 });
    const model = tinyLlama();
    expect(() => loadAdapter(model, { config, weights: f.weights }, 'lokr r 8')).toThrow(/lokr_w2/);
    const pattern = JSON.stringify({ ...JSON.parse(f.config), rank_pattern: { q_proj: 4 } });
    expect(() => loadAdapter(model, { config: pattern, weights: f.weights }, 'x')).toThrow(AdapterError);
    model.dispose();
  });

  it("factorization and the factor forms follow PEFT's rules", () => {
    // PEFT's docstring examples.
    expect(factorization(256)).toEqual([16, 16]);
    expect(factorization(128)).toEqual([8, 16]);
    expect(factorization(127)).toEqual([1, 127]);
    expect(factorization(128, 4)).toEqual([4, 32]);
    // tiny-llama's widths, as the fixtures show them.
    expect(factorization(32)).toEqual([4, 8]);
    expect(factorization(80)).toEqual([8, 10]);
    const c = { ...lokrDefaults('CAUSAL_LM'), r: 2, decomposeBoth: true };
    expect(kronShape(c, 80, 32)).toEqual({ a: 4, b: 8, c: 8, d: 10, fullW1: false, fullW2: false });
    expect(kronShape(c, 32, 32)).toEqual({ a: 4, b: 8, c: 4, d: 8, fullW1: true, fullW2: false });
  });

  it('kron matches the definition element by element', () => {
    const x = tf.tensor2d([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const y = tf.tensor2d([
      [0, 1],
      [2, 3],
      [5, 7],
    ]);
    const k = kron(x, y);
    expect(k.shape).toEqual([6, 6]);
    const v = k.arraySync();
    const xs = x.arraySync();
    const ys = y.arraySync();
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 3; j++)
        for (let p = 0; p < 3; p++)
          for (let q = 0; q < 2; q++) expect(v[i * 3 + p]![j * 2 + q]).toBe(xs[i]![j]! * ys[p]![q]!);
    tf.dispose([x, y, k]);
  });
});
