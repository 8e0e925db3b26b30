/**
 * Several adapters on one base: each answers exactly as it does alone, the base answers between
 * them, two LoRA adapters on the same layers take turns, and everything is freed at the end.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import type { Gpt2Model } from '../model/gpt2';
import { lmLogits } from '../model/heads';
import { tinyGpt2 } from '../model/testing';
import { AdapterSet } from './adapter-set';
import { adapterDecorator } from './forward';
import { methodByCliName } from './registry';
import type { Adapter } from './types';

function logits(model: Gpt2Model, adapter: Adapter | null): number[] {
  return tf.tidy(() => {
    const ids = tf.tensor2d([[3, 1, 4, 1, 5]], undefined, 'int32');
    return Array.from(
      lmLogits(model, model.forward(adapterDecorator(model, adapter)({ ids }, true)).hidden).dataSync(),
    );
  });
}

/** A method's adapter with every trainable variable moved off its init, so it changes the outputs. */
function make(model: Gpt2Model, name: string, seed: number, config: Record<string, unknown> = {}): Adapter {
  const m = methodByCliName(name);
  const a = m.create(model, { ...m.defaults('CAUSAL_LM'), ...config } as never, seed);
  for (const v of a.trainable().values()) {
    const next = tf.tidy(() => tf.add(v, tf.randomNormal(v.shape, 0, 0.3, 'float32', seed)));
    v.assign(next);
    next.dispose();
  }
  return a;
}

describe('AdapterSet', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('switches between resident adapters without reloading the base', () => {
    const model = tinyGpt2();
    const base = logits(model, null);
    model.invalidateCaches();
    const before = tf.memory().numTensors;
    const set = new AdapterSet();
    const specs: [string, string, Record<string, unknown>][] = [
      ['lora-a', 'lora', {}],
      ['lora-b', 'lora', { r: 2 }],
      ['ia3', 'ia3', {}],
      ['prefix', 'prefix-tuning', { numVirtualTokens: 3 }],
    ];
    const alone = new Map<string, number[]>();
    specs.forEach(([name, method, config], i) => {
      const a = set.add(name, () => make(model, method, i + 1, config));
      alone.set(name, logits(model, a));
    });
    expect(set.names()).toEqual(['lora-a', 'lora-b', 'ia3', 'prefix']);
    for (const name of ['ia3', 'lora-a', 'prefix', 'lora-b', 'lora-a']) {
      set.use(name);
      expect(set.activeAdapterName).toBe(name);
      expect(logits(model, set.active)).toEqual(alone.get(name));
    }
    set.use(null);
    expect(logits(model, set.active)).toEqual(base);
    expect(() => set.use('dora')).toThrow(
      /no adapter named "dora" is loaded; loaded: lora-a, lora-b, ia3, prefix/,
    );
    expect(() => set.add('ia3', () => make(model, 'ia3', 9))).toThrow(/already loaded/);
    set.dispose();
    model.invalidateCaches();
    expect(tf.memory().numTensors).toBe(before);
    expect(logits(model, null)).toEqual(base);
    model.dispose();
  });
});
