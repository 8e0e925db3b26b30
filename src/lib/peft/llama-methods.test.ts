/**
 * PEFT methods on the Llama family (tiny checkpoints written by transformers): adapters PEFT 0.21
 * made on tiny-llama (LoRA, LN tuning) and tiny-qwen2 (LN tuning) load and give PEFT's logits, and
 * PEFT's LN tuning targets are the ones we pick; every causal-LM method trains on tiny-llama
 * (loss falls, the base unchanged, no leaked tensors), saves with PEFT's key names, and loads into a
 * fresh model with identical outputs; prefix tuning also runs on Mistral's single key/value head;
 * full fine-tuning saves transformers' own checkpoint layout, and LoRA trains SEQ_CLS and TOKEN_CLS
 * heads named as LlamaFor*Classification name them.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import type { DecoderModel } from '../model/decoder';
import { lmLogits } from '../model/heads';
import { tinyLlama } from '../model/testing';
import { parseSafetensorsHeader, readTensorAsFloat32 } from '../io/safetensors';
import { loadAdapter, saveAdapter } from '../io/peft-format';
import { withFamilyDefaults } from '../train/plan';
import { Trainer } from '../train/trainer';
import { clsBatchSource, clsLogits } from '../train/classification';
import type { EncodedSet } from '../data/cls-data';
import { padBatch } from '../data/cls-data';
import { Rng } from '../util/rng';
import { adapterDecorator } from './forward';
import { methodByCliName } from './registry';
import { countTrainable } from './state';
import { headFor } from './task-head';
import type { Adapter, PeftConfigBase } from './types';

const PEFT_LORA = join(import.meta.dirname, 'fixtures/peft-0.21-llama/lora');
const PEFT_LN_TUNING = join(import.meta.dirname, 'fixtures/peft-0.21-llama/ln_tuning');
const STREAM = Int32Array.from({ length: 600 }, (_, i) => (i * 7) % 11);
const STEPS = 30;

function logitsOf(model: DecoderModel, adapter: Adapter, ids: number[][]): Float32Array {
  return tf.tidy(() => {
    const r = model.forward(
      adapterDecorator(model, adapter)({ ids: tf.tensor2d(ids, undefined, 'int32') }, true),
    );
    const T = ids[0]!.length;
    const h =
      r.hidden.shape[1] > T ? tf.slice(r.hidden, [0, r.hidden.shape[1] - T, 0], [-1, -1, -1]) : r.hidden;
    return lmLogits(model, h as tf.Tensor3D).dataSync() as Float32Array;
  });
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('PEFT methods on the Llama family', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it("a LoRA adapter saved by PEFT 0.21 on tiny-llama gives PEFT's logits within 1e-4", () => {
    const expected = JSON.parse(readFileSync(join(PEFT_LORA, 'expected.json'), 'utf8')) as {
      input_ids: number[][];
      logits: number[][][];
    };
    const model = tinyLlama();
    const adapter = loadAdapter(
      model,
      {
        config: readFileSync(join(PEFT_LORA, 'adapter_config.json'), 'utf8'),
        weights: new Uint8Array(readFileSync(join(PEFT_LORA, 'adapter_model.safetensors'))),
      },
      'peft-0.21-llama/lora',
    );
    const ours = logitsOf(model, adapter, expected.input_ids);
    const plain = (() => {
      const restore = adapter.disableAdapter();
      const l = logitsOf(model, adapter, expected.input_ids);
      restore();
      return l;
    })();
    const want = expected.logits.flat(2);
    // The adapter matters (B is not zero), and ours matches PEFT's.
    expect(maxAbsDiff(plain, want)).toBeGreaterThan(0.1);
    expect(maxAbsDiff(ours, want)).toBeLessThan(1e-4);
    adapter.dispose();
    model.dispose();
  });

  // scripts/reference/peft_interop/make_ln_tuning_llama_fixtures.py: target_modules left None, so
  // PEFT picked its defaults for the model type; every RMSNorm gain copy is 1 + N(0, 0.2^2).
  it.each([
    ['ln_tuning', 'tiny-llama'],
    ['ln_tuning_qwen2', 'tiny-qwen2'],
  ] as const)(
    "LN tuning saved by PEFT 0.21 (%s on %s) gives PEFT's logits within 1e-4, with PEFT's default targets",
    async (fixture, base) => {
      const dir = join(import.meta.dirname, 'fixtures/peft-0.21-llama', fixture);
      const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as {
        input_ids: number[][];
        logits: number[][][];
      };
      const config = readFileSync(join(dir, 'adapter_config.json'), 'utf8');
      const weights = new Uint8Array(readFileSync(join(dir, 'adapter_model.safetensors')));
      const model = tinyLlama(base);
      const before = tf.memory().numTensors;
      const method = methodByCliName('ln-tuning');
      // What we would train on this model type is what PEFT filled in.
      expect(withFamilyDefaults(method.defaults('CAUSAL_LM'), model)).toMatchObject({
        targetModules: (JSON.parse(config) as { target_modules: string[] }).target_modules,
      });
      const adapter = loadAdapter(model, { config, weights }, fixture);
      const want = expected.logits.flat(2);
      const ours = logitsOf(model, adapter, expected.input_ids);
      const restore = adapter.disableAdapter();
      const plain = logitsOf(model, adapter, expected.input_ids);
      restore();
      expect(maxAbsDiff(plain, want), 'the adapter matters').toBeGreaterThan(0.1);
      expect(maxAbsDiff(ours, want)).toBeLessThan(1e-4);
      if (adapter.kind !== 'inject') throw new Error('LN tuning is an inject method');
      adapter.merge();
      expect(maxAbsDiff(logitsOf(model, adapter, expected.input_ids), want)).toBeLessThan(1e-4);
      adapter.unmerge();
      // Saved again: PEFT's tensor names and shapes, PEFT's config keys.
      const files = await saveAdapter(adapter, base);
      const layout = (b: Uint8Array): string[] =>
        parseSafetensorsHeader(b, 'adapter_model.safetensors')
          .tensors.map((t) => `${t.name} [${t.shape.join(', ')}]`)
          .sort();
      expect(layout(files.weights)).toEqual(layout(weights));
      expect(Object.keys(JSON.parse(files.config) as object).sort()).toEqual(
        Object.keys(JSON.parse(config) as object).sort(),
      );
      adapter.dispose();
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    },
  );

  const CASES: {
    name: string;
    method: string;
    config?: Record<string, unknown>;
    lr: number;
    model?: 'tiny-mistral';
  }[] = [
    { name: 'LoRA', method: 'lora', lr: 2e-2 },
    {
      name: 'AdaLoRA',
      method: 'adalora',
      lr: 3e-2,
      config: { initR: 6, targetR: 2, tinit: 5, tfinal: 5, totalStep: STEPS },
    },
    { name: 'IA3', method: 'ia3', lr: 5e-2 },
    { name: 'LN tuning', method: 'ln-tuning', lr: 5e-2 },
    { name: 'LN tuning on Mistral', method: 'ln-tuning', lr: 5e-2, model: 'tiny-mistral' },
    { name: 'prompt tuning', method: 'prompt-tuning', lr: 1e-1, config: { numVirtualTokens: 4 } },
    { name: 'P-tuning', method: 'p-tuning', lr: 1e-2, config: { numVirtualTokens: 4 } },
    { name: 'prefix tuning (GQA 4/2)', method: 'prefix-tuning', lr: 5e-2, config: { numVirtualTokens: 4 } },
    {
      name: 'prefix tuning with projection on Mistral (one key/value head)',
      method: 'prefix-tuning',
      lr: 5e-2,
      config: { numVirtualTokens: 4, prefixProjection: true },
      model: 'tiny-mistral',
    },
  ];

  it.each(CASES)('$name: trains, saves with PEFT key names, reloads', async (c) => {
    const name = c.model ?? 'tiny-llama';
    const method = methodByCliName(c.method);
    const model = tinyLlama(name);
    const base = new Map([...model.weights].map(([k, v]) => [k, v.dataSync().slice()]));
    model.invalidateCaches();
    const before = tf.memory().numTensors;
    const config = {
      ...withFamilyDefaults(method.defaults('CAUSAL_LM'), model),
      ...c.config,
    } as PeftConfigBase;
    method.validate(config as never, model);
    const adapter = method.create(model, config as never, 42, {
      tokenize: (t) => [...t].map((ch) => ch.charCodeAt(0) % 90),
    });
    expect(countTrainable(adapter)).toBe(method.countParams(model, config as never));
    const trainer = new Trainer(model, adapter, STREAM, {
      steps: STEPS,
      lr: c.lr,
      batchSize: 8,
      seqLen: 12,
      seed: 7,
      warmupSteps: 3,
    });
    const losses: number[] = [];
    let afterFirst = 0;
    for (let i = 0; i < STEPS; i++) {
      losses.push((await trainer.trainStep()).loss);
      if (i === 0) afterFirst = tf.memory().numTensors;
    }
    expect(tf.memory().numTensors).toBeLessThanOrEqual(afterFirst);
    const head = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const tail = losses.slice(-5).reduce((a, b) => a + b) / 5;
    expect(tail, losses.map((l) => l.toFixed(3)).join(' ')).toBeLessThan(head * 0.9);

    const ids = [[5, 17, 42, 7, 99, 3]];
    const trained = logitsOf(model, adapter, ids);
    const files = await saveAdapter(adapter, name);
    const keys = parseSafetensorsHeader(files.weights, 'saved').tensors.map((t) => t.name);
    if (c.method === 'lora') {
      // PEFT's own key names for its default targets on llama (as in the PEFT-made fixture).
      const peftKeys = parseSafetensorsHeader(
        new Uint8Array(readFileSync(join(PEFT_LORA, 'adapter_model.safetensors'))),
        'peft',
      ).tensors.map((t) => t.name);
      expect(keys.sort()).toEqual(peftKeys.sort());
      expect(JSON.parse(files.config).target_modules.sort()).toEqual(['q_proj', 'v_proj']);
    }
    if (c.method === 'ia3') expect(keys).toContain('base_model.model.model.layers.0.mlp.down_proj.ia3_l');
    if (c.method === 'ln-tuning') {
      // PEFT's keys for its llama (and mistral) defaults: every RMSNorm's gain, model.norm included.
      const peftKeys = parseSafetensorsHeader(
        new Uint8Array(readFileSync(join(PEFT_LN_TUNING, 'adapter_model.safetensors'))),
        'peft',
      ).tensors.map((t) => t.name);
      expect(keys.sort()).toEqual(peftKeys.sort());
    }
    trainer.dispose();
    adapter.dispose();
    for (const [k, v] of model.weights) expect(v.dataSync(), k).toEqual(base.get(k));
    model.invalidateCaches();
    expect(tf.memory().numTensors).toBe(before);

    const fresh = tinyLlama(name);
    const loaded = loadAdapter(fresh, files, 'saved');
    expect(Array.from(logitsOf(fresh, loaded, ids))).toEqual(Array.from(trained));
    loaded.dispose();
    fresh.dispose();
    model.dispose();
  });
});

describe('full fine-tuning and classification heads on the Llama family', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it.each(['tiny-llama', 'tiny-qwen2'] as const)(
    "%s: full fine-tuning's state dict is transformers' own checkpoint, then trains, saves and reloads",
    async (name) => {
      const model = tinyLlama(name);
      const method = methodByCliName('full');
      const config = method.defaults('CAUSAL_LM');
      method.validate(config as never, model);
      const adapter = method.create(model, config as never, 1);
      // Before a step: the same keys, shapes ([out, in] linears) and values as the model.safetensors
      // transformers wrote (an untied lm_head for tiny-llama, none for tied tiny-qwen2).
      const file = new Uint8Array(
        readFileSync(join(import.meta.dirname, '../model/fixtures', name, 'model.safetensors')),
      );
      const hf = parseSafetensorsHeader(file, name).tensors;
      const ours = await adapter.stateDict();
      expect([...ours.keys()].sort()).toEqual(hf.map((t) => t.name).sort());
      for (const t of hf) {
        expect(ours.get(t.name)!.shape, t.name).toEqual(t.shape);
        expect(ours.get(t.name)!.data, t.name).toEqual(readTensorAsFloat32(file, t));
      }
      const trainer = new Trainer(model, adapter, STREAM, {
        steps: 12,
        lr: 3e-3,
        batchSize: 4,
        seqLen: 12,
        seed: 7,
      });
      const losses: number[] = [];
      for (let i = 0; i < 12; i++) losses.push((await trainer.trainStep()).loss);
      expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.9);
      const ids = [[5, 17, 42, 7, 99, 3]];
      const trained = logitsOf(model, adapter, ids);
      const files = await saveAdapter(adapter, name);
      trainer.dispose();
      adapter.dispose();
      const fresh = tinyLlama(name);
      const loaded = loadAdapter(fresh, files, 'saved');
      expect(maxAbsDiff(logitsOf(fresh, loaded, ids), trained)).toBeLessThan(1e-5);
      loaded.dispose();
      fresh.dispose();
      model.dispose();
    },
  );

  it.each(['SEQ_CLS', 'TOKEN_CLS'] as const)(
    '%s: LoRA with its score head trains, saves the head as PEFT names it, and reloads',
    async (task) => {
      const model = tinyLlama();
      const lora = methodByCliName('lora');
      const config = withFamilyDefaults(lora.defaults(task), model);
      lora.validate(config as never, model);
      const adapter = lora.create(model, config as never, 3);
      adapter.attachHead!(headFor(model, config, task, 3, 4));
      const rng = new Rng(5);
      const set: EncodedSet = {
        task,
        padId: 0,
        examples: Array.from({ length: 24 }, () => {
          const n = 3 + Math.floor(rng.next() * 6);
          const ids = Array.from({ length: n }, () => 3 + Math.floor(rng.next() * 290));
          return { ids, label: task === 'SEQ_CLS' ? ids[0]! % 3 : ids.map((t) => t % 3) };
        }),
      };
      const trainer = new Trainer(model, adapter, clsBatchSource(set), {
        steps: 20,
        lr: 2e-2,
        batchSize: 8,
        seqLen: 12,
        seed: 7,
      });
      const losses: number[] = [];
      for (let i = 0; i < 20; i++) losses.push((await trainer.trainStep()).loss);
      const head = losses.slice(0, 4).reduce((a, b) => a + b) / 4;
      const tail = losses.slice(-4).reduce((a, b) => a + b) / 4;
      expect(tail, losses.map((l) => l.toFixed(3)).join(' ')).toBeLessThan(head);
      const files = await saveAdapter(adapter, 'tiny-llama');
      const keys = parseSafetensorsHeader(files.weights, 'saved').tensors.map((t) => t.name);
      // LlamaFor*Classification name both heads `score` (the token head with a bias).
      expect(keys).toContain('base_model.model.score.weight');
      expect(keys.includes('base_model.model.score.bias')).toBe(task === 'TOKEN_CLS');
      const batch = padBatch(set, [0, 1, 2, 3]);
      const before = tf.tidy(() => clsLogits(model, adapter, adapter.head!, batch, false, 0).dataSync());
      trainer.dispose();
      adapter.dispose();
      const fresh = tinyLlama();
      const loaded = loadAdapter(fresh, files, 'saved');
      const after = tf.tidy(() => clsLogits(fresh, loaded, loaded.head!, batch, false, 0).dataSync());
      expect(Array.from(after)).toEqual(Array.from(before));
      loaded.dispose();
      fresh.dispose();
      model.dispose();
    },
  );
});

describe('merging on the Llama family (layers without biases)', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('a merged LoRA (PEFT-made) and IA3 give the unmerged logits, and unmerge restores the base', () => {
    const model = tinyLlama();
    const ids = [[5, 17, 42, 7, 99, 3]];
    const base = new Map([...model.weights].map(([k, v]) => [k, v.dataSync().slice()]));
    const ia3 = methodByCliName('ia3');
    const makers: (() => Adapter)[] = [
      () =>
        loadAdapter(
          model,
          {
            config: readFileSync(join(PEFT_LORA, 'adapter_config.json'), 'utf8'),
            weights: new Uint8Array(readFileSync(join(PEFT_LORA, 'adapter_model.safetensors'))),
          },
          'peft-0.21-llama/lora',
        ),
      () => ia3.create(model, withFamilyDefaults(ia3.defaults('CAUSAL_LM'), model) as never, 3),
    ];
    for (const make of makers) {
      const adapter = make();
      if (adapter.kind !== 'inject') throw new Error('inject kinds only');
      // IA3 starts at ones: move its vectors so merging has something to fold in.
      for (const v of adapter.trainable().values())
        tf.tidy(() => v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.3, 'float32', 5))));
      const unmerged = logitsOf(model, adapter, ids);
      adapter.merge();
      expect(maxAbsDiff(logitsOf(model, adapter, ids), unmerged)).toBeLessThan(1e-4);
      adapter.unmerge();
      adapter.dispose();
      for (const [k, v] of model.weights) expect(v.dataSync(), k).toEqual(base.get(k));
    }
    model.dispose();
  });

  it('LoRA refuses bias "lora_only" on layers without a bias', () => {
    const model = tinyLlama();
    const lora = methodByCliName('lora');
    const config = { ...withFamilyDefaults(lora.defaults('CAUSAL_LM'), model), bias: 'lora_only' };
    expect(() => lora.validate(config as never, model)).toThrow(
      /model.layers.0.self_attn.q_proj has no bias to train/,
    );
    model.dispose();
  });
});
