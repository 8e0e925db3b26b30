/**
 * OFT against PEFT 0.21 on tiny-llama (PEFT refuses OFT on GPT-2's Conv1D, so there is no PEFT
 * check on GPT-2; methods.test.ts trains it there): PEFT's files load and give PEFT's logits to
 * 1e-4 (scripts/reference/peft_interop/make_oft_fixtures.py, every oft_R random: the Neumann
 * series, the exact Cayley transform, block share with COFT, block sizes PEFT adjusts), merge
 * gives the unmerged logits, our config file has exactly PEFT's keys, our save has PEFT's tensor
 * names and shapes and loads back with identical logits; the rotation is orthogonal where it
 * should be, and the gradient reaches oft_R.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../../backend/node';
import type { DecoderModel } from '../../model/decoder';
import { lmLogits } from '../../model/heads';
import { tinyLlama } from '../../model/testing';
import { parseSafetensorsHeader } from '../../io/safetensors';
import { loadAdapter, saveAdapter } from '../../io/peft-format';
import { AdapterError, PeftConfigError } from '../../errors';
import { adapterDecorator } from '../forward';
import type { Adapter } from '../types';
import { oft, cayleyExact, cayleyNeumann, projectCoft, skewSymmetric } from '.';
import { adjustOftParameter, oftBlocks, oftDefaults } from './info';

const FIXTURES = join(import.meta.dirname, '../fixtures/peft-0.21-llama');
const CASES = ['oft', 'oft_exact', 'oft_share_coft', 'oft_adjusted'] as const;

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

function layout(bytes: Uint8Array): Record<string, number[]> {
  return Object.fromEntries(
    parseSafetensorsHeader(bytes, 'adapter_model.safetensors').tensors.map((t) => [t.name, t.shape]),
  );
}

describe('OFT against PEFT 0.21 on tiny-llama', () => {
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

    // Merge folds the rotation into the base weights; unmerge restores them.
    if (adapter.kind !== 'inject') throw new Error('OFT is an inject method');
    adapter.merge();
    expect(maxAbsDiff(logitsOf(model, adapter, ids), want)).toBeLessThan(1e-4);
    adapter.unmerge();
    expect(maxAbsDiff(logitsOf(model, adapter, ids), ours)).toBe(0);

    // Our save: PEFT's config keys and values, tensor names and shapes; it loads back the same.
    const saved = await saveAdapter(adapter, 'src/lib/model/fixtures/tiny-llama');
    const peftJson = JSON.parse(f.config) as Record<string, unknown>;
    const ourJson = JSON.parse(saved.config) as Record<string, unknown>;
    expect(Object.keys(ourJson).sort()).toEqual(Object.keys(peftJson).sort());
    for (const k of Object.keys(peftJson).filter((k) => k !== 'target_modules' && k !== 'inference_mode'))
      expect(ourJson[k], k).toEqual(peftJson[k]);
    expect(layout(saved.weights)).toEqual(layout(f.weights));
    adapter.dispose();
    model.invalidateCaches();
    expect(tf.memory().numTensors).toBe(before);

    const fresh = tinyLlama();
    const again = loadAdapter(fresh, saved, `${name} (ours)`);
    expect(maxAbsDiff(logitsOf(fresh, again, ids), ours)).toBe(0);
    again.dispose();
    fresh.dispose();
    model.dispose();
  });

  it('a file from before PEFT 0.14 (no oft_block_size) or with r and oft_block_size both set is refused', () => {
    const f = read('oft');
    const { oft_block_size: _, ...old } = JSON.parse(f.config) as Record<string, unknown>;
    const model = tinyLlama();
    expect(() => loadAdapter(model, { config: JSON.stringify(old), weights: f.weights }, 'old')).toThrow(
      AdapterError,
    );
    const both = JSON.stringify({ ...JSON.parse(f.config), r: 4 });
    expect(() => loadAdapter(model, { config: both, weights: f.weights }, 'both')).toThrow(
      /exactly one of r/,
    );
    expect(() => oft.validate({ ...oftDefaults('CAUSAL_LM'), r: 4 })).toThrow(PeftConfigError);
    model.dispose();
  });

  it("sizes blocks as PEFT's update_layer and adjust_oft_parameters do", () => {
    expect(adjustOftParameter(32, 6)).toBe(4); // 4 and 8 are both 2 away: the lower wins
    expect(adjustOftParameter(80, 6)).toBe(5);
    expect(adjustOftParameter(32, 40)).toBe(32);
    const c = { ...oftDefaults('CAUSAL_LM'), oftBlockSize: 8 };
    expect(oftBlocks(c, 80)).toEqual({ r: 10, blockSize: 8 });
    // r 3 on 32: 2 and 4 are both 1 away, the lower wins.
    expect(oftBlocks({ ...c, r: 3, oftBlockSize: 0 }, 32)).toEqual({ r: 2, blockSize: 16 });
  });

  it('the exact Cayley transform is orthogonal, the series close to its inverse for a small Q, COFT bounds the norm', () => {
    tf.tidy(() => {
      const vec = tf.randomNormal([3, 10], 0, 0.3, 'float32', 5) as tf.Tensor2D; // b = 5
      const q = skewSymmetric(vec, 5);
      expect(maxAbsDiff(tf.add(q, tf.transpose(q, [0, 2, 1])).dataSync(), new Float32Array(75))).toBe(0);
      const r = cayleyExact(q);
      const rrt = tf.matMul(r, r, false, true).dataSync();
      const eye = tf.tile(tf.expandDims(tf.eye(5), 0), [3, 1, 1]).dataSync();
      expect(maxAbsDiff(rrt, eye)).toBeLessThan(1e-5);
      // PEFT's series, I + 2Q + 2Q² + ..., expands (I + Q)(I - Q)⁻¹: the exact form's transpose
      // (its inverse), so the two settings rotate the same weights in opposite senses, as in PEFT.
      const small = skewSymmetric(tf.mul(vec, 0.05) as tf.Tensor2D, 5);
      const exactT = tf.transpose(cayleyExact(small), [0, 2, 1]);
      expect(maxAbsDiff(cayleyNeumann(small, 8).dataSync(), exactT.dataSync())).toBeLessThan(1e-5);
      const p = projectCoft(vec, 0.1);
      const norms = tf.sqrt(tf.mul(tf.sum(tf.square(p), 1), 2)).dataSync();
      for (const n of norms) expect(n).toBeLessThanOrEqual(0.1 / Math.sqrt(3) + 1e-6);
    });
  });

  it('the gradient reaches every oft_R, through the series and through the exact transform', () => {
    for (const useCayleyNeumann of [true, false]) {
      const model = tinyLlama();
      const config = {
        ...oftDefaults('CAUSAL_LM'),
        targetModules: ['q_proj', 'down_proj'],
        oftBlockSize: 8,
        initWeights: false,
        useCayleyNeumann,
      };
      const adapter = oft.create(model, config, 3);
      const vars = [...adapter.trainable().values()];
      const ids = tf.tensor2d([[1, 2, 3, 4]], undefined, 'int32');
      const { grads, value } = tf.variableGrads(() => {
        const r = model.forward(adapterDecorator(model, adapter)({ ids }, true));
        return tf.mean(tf.square(lmLogits(model, r.hidden)));
      }, vars);
      for (const [k, g] of Object.entries(grads)) {
        const d = g.dataSync();
        expect(d.every(Number.isFinite), k).toBe(true);
        expect(Math.max(...Array.from(d, Math.abs)), k).toBeGreaterThan(0);
      }
      tf.dispose([ids, value, ...Object.values(grads)]);
      adapter.dispose();
      model.dispose();
    }
  });
});
