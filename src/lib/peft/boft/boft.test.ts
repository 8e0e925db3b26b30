/**
 * BOFT against PEFT 0.21 on tiny-llama (PEFT refuses BOFT on GPT-2's Conv1D; methods.test.ts
 * trains it there): PEFT's files load and give PEFT's logits to 1e-4
 * (scripts/reference/peft_interop/make_boft_fixtures.py: one factor as PEFT runs without CUDA, and
 * two and three butterfly factors with the CUDA block-diagonal kernel replaced by torch's), merge
 * gives the unmerged logits, our config file has exactly PEFT's keys and values, our save has
 * PEFT's tensor names and shapes and loads back with identical logits; the gradient reaches boft_R
 * and boft_s with the multiplicative dropout on; a one-factor file under a two-factor config (what
 * PEFT without CUDA saves) is refused with the fix.
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
import { AdapterError } from '../../errors';
import { adapterDecorator } from '../forward';
import type { Adapter } from '../types';
import { boft } from '.';
import { boftDefaults, boftShape } from './info';

const FIXTURES = join(import.meta.dirname, '../fixtures/peft-0.21-llama');
const CASES = ['boft', 'boft_butterfly', 'boft_block_num'] as const;

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

describe('BOFT against PEFT 0.21 on tiny-llama', () => {
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

    if (adapter.kind !== 'inject') throw new Error('BOFT is an inject method');
    adapter.merge();
    expect(maxAbsDiff(logitsOf(model, adapter, ids), want)).toBeLessThan(1e-4);
    adapter.unmerge();
    expect(maxAbsDiff(logitsOf(model, adapter, ids), ours)).toBe(0);

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

  it("a one-factor file under a two-factor config is refused with the fix; PEFT's size checks are ours", () => {
    const f = read('boft');
    const config = JSON.stringify({ ...JSON.parse(f.config), boft_n_butterfly_factor: 2 });
    const model = tinyLlama();
    expect(() => loadAdapter(model, { config, weights: f.weights }, 'cpu-trained')).toThrow(AdapterError);
    expect(() => loadAdapter(model, { config, weights: f.weights }, 'cpu-trained')).toThrow(
      /set boft_n_butterfly_factor to 1/,
    );
    model.dispose();
    const c = boftDefaults('CAUSAL_LM');
    expect(boftShape({ ...c, boftBlockSize: 6 }, 32)).toMatch(/not divisible/);
    expect(boftShape({ ...c, boftBlockSize: 8, boftNButterflyFactor: 3 }, 80)).toMatch(/multiple of 32/);
    expect(boftShape({ ...c, boftBlockSize: 0, boftBlockNum: 4, boftNButterflyFactor: 3 }, 32)).toEqual({
      factors: 3,
      blockNum: 4,
      blockSize: 8,
    });
  });

  it('the gradient reaches boft_R and boft_s through two factors with the dropout on', () => {
    const model = tinyLlama();
    const config = {
      ...boftDefaults('CAUSAL_LM'),
      targetModules: ['q_proj', 'down_proj'],
      boftNButterflyFactor: 2,
      boftDropout: 0.5,
      initWeights: false,
    };
    const adapter = boft.create(model, config, 3);
    const vars = [...adapter.trainable().values()];
    const ids = tf.tensor2d([[1, 2, 3, 4]], undefined, 'int32');
    const before = tf.memory().numTensors;
    const { grads, value } = tf.variableGrads(() => {
      const r = model.forward({
        ...adapterDecorator(model, adapter)({ ids }, true),
        training: true,
        seed: 5,
      });
      return tf.mean(tf.square(lmLogits(model, r.hidden)));
    }, vars);
    for (const [k, g] of Object.entries(grads)) {
      const d = g.dataSync();
      expect(d.every(Number.isFinite), k).toBe(true);
      expect(Math.max(...Array.from(d, Math.abs)), k).toBeGreaterThan(0);
    }
    tf.dispose([value, ...Object.values(grads)]);
    model.invalidateCaches();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(ids);
    adapter.dispose();
    model.dispose();
  });
});
