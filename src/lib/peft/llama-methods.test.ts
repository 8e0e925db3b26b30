/**
 * PEFT methods on the Llama family (tiny checkpoints written by transformers): an adapter PEFT 0.21
 * made on tiny-llama loads and gives PEFT's logits; every causal-LM method trains on tiny-llama
 * (loss falls, the base unchanged, no leaked tensors), saves with PEFT's key names, and loads into a
 * fresh model with identical outputs; prefix tuning also runs on Mistral's single key/value head.
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
import { withFamilyDefaults } from '../train/plan';
import { Trainer } from '../train/trainer';
import { adapterDecorator } from './forward';
import { methodByCliName } from './registry';
import { countTrainable } from './state';
import { headFor } from './task-head';
import type { Adapter, PeftConfigBase } from './types';

const PEFT_LORA = join(import.meta.dirname, 'fixtures/peft-0.21-llama/lora');
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

describe('what is not there yet on the Llama family says so', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('SEQ_CLS and TOKEN_CLS heads are refused with a PeftConfigError naming the family', () => {
    const model = tinyLlama();
    const lora = methodByCliName('lora');
    for (const task of ['SEQ_CLS', 'TOKEN_CLS'] as const) {
      expect(() => headFor(model, lora.defaults(task), task, 2, 0)).toThrow(
        new RegExp(`${task} heads on llama models are not supported yet`),
      );
    }
    model.dispose();
  });

  it('full fine-tuning is refused with a PeftConfigError naming the family', () => {
    const model = tinyLlama('tiny-qwen2');
    const method = methodByCliName('full');
    expect(() => method.validate(method.defaults('CAUSAL_LM') as never, model)).toThrow(
      /this model is qwen2: not supported on the Llama family yet/,
    );
    model.dispose();
  });
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
