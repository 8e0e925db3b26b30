/**
 * One table-driven test runs every registry entry through: init, training steps, loss falls,
 * the frozen base unchanged bit for bit, trainable count = formula, save in PEFT's format, load
 * into a fresh model, identical logits, no leaked tensors (ARCHITECTURE.md, habit 6).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import { loadGpt2 } from '../model/load';
import type { Gpt2Model } from '../model/gpt2';
import { lmLogits } from '../model/heads';
import { adapterDecorator } from './forward';
import { METHODS } from './registry';
import type { Adapter, PeftConfigBase, PeftMethod } from './types';
import { Trainer } from '../train/trainer';
import { loadAdapter, saveAdapter } from '../io/peft-format';

const FIX = join(import.meta.dirname, '../model/fixtures/tiny-gpt2');

function tinyModel(): Gpt2Model {
  return loadGpt2({
    config: JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(FIX, 'model.safetensors'))),
    source: 'tiny-gpt2',
  });
}

/** A learnable stream: a repeating 11-token pattern. */
const STREAM = Int32Array.from({ length: 600 }, (_, i) => (i * 7) % 11);

function logitsOf(model: Gpt2Model, adapter: Adapter | null): Float32Array {
  return tf.tidy(() => {
    const ids = tf.tensor2d([[1, 8, 4, 0, 7, 3]], undefined, 'int32');
    const r = model.forward(adapterDecorator(model, adapter)({ ids }, true));
    return lmLogits(model, r.hidden).dataSync() as Float32Array;
  });
}

function snapshot(model: Gpt2Model): Map<string, Float32Array> {
  return new Map([...model.weights].map(([k, v]) => [k, v.dataSync() as Float32Array]));
}

const LR: Record<string, number> = { LORA: 2e-2, FULL: 3e-3 };

describe.each(Object.values(METHODS) as PeftMethod<PeftConfigBase>[])('$label', (method) => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('trains, keeps the base, saves and loads in PEFT format, leaks nothing', async () => {
    const model = tinyModel();
    const base = snapshot(model);
    // The model's cached wte^T is model-owned, not a leak: drop it around each count.
    model.invalidateCaches();
    const tensorsBefore = tf.memory().numTensors;
    const config = method.defaults('CAUSAL_LM');
    const adapter = method.create(model, config, 42);

    // Trainable count matches the formula.
    let live = 0;
    for (const v of adapter.trainable().values()) live += v.size;
    expect(live).toBe(method.countParams(model, config));

    const trainer = new Trainer(model, adapter, STREAM, {
      steps: 30,
      lr: LR[method.peftType]!,
      batchSize: 4,
      seqLen: 12,
      seed: 7,
      warmupSteps: 3,
    });
    const losses: number[] = [];
    const afterFirst = { n: 0 };
    for (let i = 0; i < 30; i++) {
      losses.push((await trainer.trainStep()).loss);
      if (i === 0) afterFirst.n = tf.memory().numTensors;
    }
    // No tensor is leaked by a training step (optimizer state is created on the first step).
    expect(tf.memory().numTensors).toBe(afterFirst.n);
    const head = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const tail = losses.slice(-5).reduce((a, b) => a + b) / 5;
    expect(tail).toBeLessThan(head * 0.8);

    const trainedLogits = logitsOf(model, adapter);
    const files = await saveAdapter(adapter, 'tiny-gpt2');
    trainer.dispose();
    adapter.dispose();

    // The frozen base is unchanged bit for bit, and everything the adapter made is freed.
    for (const [k, v] of snapshot(model)) expect(v, k).toEqual(base.get(k));
    model.invalidateCaches();
    expect(tf.memory().numTensors).toBe(tensorsBefore);

    // A fresh model + the saved files give identical logits.
    const fresh = tinyModel();
    const loaded = loadAdapter(fresh, files, 'saved');
    const reloaded = logitsOf(fresh, loaded);
    expect(Array.from(reloaded)).toEqual(Array.from(trainedLogits));
    loaded.dispose();
    fresh.dispose();
    model.dispose();
  });
});
