/**
 * DoRA against its formula: it starts as the base model, computes m (W + s B A) / ||W + s B A||
 * per output feature, merges into the weights with the same outputs, saves PEFT's fields and
 * keys, and sends no gradient through the norm (PEFT detaches it).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../backend/node';
import { tinyGpt2 } from '../../model/testing';
import { saveAdapter } from '../../io/peft-format';
import { lora } from '.';
import type { LoraConfig } from './config';

const cfg = (over: Partial<LoraConfig> = {}): LoraConfig => ({
  ...lora.defaults('CAUSAL_LM'),
  r: 4,
  loraAlpha: 8,
  useDora: true,
  ...over,
});
const SITE = 'base_model.model.transformer.h.0.attn.c_attn';

async function maxDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  return (await tf.max(tf.abs(tf.sub(a, b))).data())[0]!;
}

describe('DoRA (LoRA with useDora)', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('starts as the base model, follows the formula, and merges and unmerges exactly', async () => {
    const model = tinyGpt2();
    const x = tf.randomNormal([5, 16], 0, 1, 'float32', 3) as tf.Tensor2D;
    const ctx = { training: false, seed: 0 };
    const w = model.w('h.0.attn.c_attn.weight') as unknown as tf.Tensor2D; // [16, 48]
    const b = model.w('h.0.attn.c_attn.bias');
    const plain = tf.add(tf.matMul(x, w), b);
    const adapter = lora.create(model, cfg(), 0);
    if (adapter.kind !== 'inject') throw new Error('DoRA is an inject method');
    expect(await maxDiff(model.linear(0, 'attn.c_attn', x, ctx), plain)).toBeLessThan(1e-5);

    const vars = adapter.trainable();
    const a = vars.get(`${SITE}.lora_A.weight`)!; // ours: A^T [16, 4]
    const bt = vars.get(`${SITE}.lora_B.weight`)!; // ours: B^T [4, 48]
    const m = vars.get(`${SITE}.lora_magnitude_vector`)!;
    expect([a.shape, bt.shape, m.shape]).toEqual([[16, 4], [4, 48], [48]]);
    bt.assign(tf.randomNormal([4, 48], 0, 0.3, 'float32', 5));
    m.assign(tf.mul(m, tf.randomUniform([48], 0.5, 1.5, 'float32', 6)));
    const s = 8 / 4;
    const full = tf.add(w, tf.mul(tf.matMul(a, bt), s)); // [in, out]
    const g = tf.div(m, tf.sqrt(tf.sum(tf.square(full), 0)));
    const want = tf.add(tf.mul(tf.matMul(x, full), g), b);
    const before = model.linear(0, 'attn.c_attn', x, ctx);
    expect(await maxDiff(before, want)).toBeLessThan(1e-5);
    // The magnitude moved the output, so the check above is not the base model's.
    expect(await maxDiff(before, plain)).toBeGreaterThan(0.05);

    const original = w.dataSync().slice();
    adapter.merge();
    expect(await maxDiff(model.linear(0, 'attn.c_attn', x, ctx), before)).toBeLessThan(1e-5);
    adapter.unmerge();
    expect(Array.from(model.w('h.0.attn.c_attn.weight').dataSync())).toEqual(Array.from(original));
    adapter.dispose();
    model.dispose();
  });

  it('sends the gradient to A, B and the magnitude, none of it through the norm', async () => {
    const model = tinyGpt2();
    const adapter = lora.create(model, cfg({ targetModules: ['c_attn'], layersToTransform: [0] }), 0);
    const vars = adapter.trainable();
    const a = vars.get(`${SITE}.lora_A.weight`)!;
    const bt = vars.get(`${SITE}.lora_B.weight`)!;
    const m = vars.get(`${SITE}.lora_magnitude_vector`)!;
    bt.assign(tf.randomNormal([4, 48], 0, 0.3, 'float32', 5));
    const x = tf.randomNormal([5, 16], 0, 1, 'float32', 3) as tf.Tensor2D;
    const ctx = { training: false, seed: 0 };
    const { grads } = tf.variableGrads(
      () => tf.sum(model.linear(0, 'attn.c_attn', x, ctx)) as tf.Scalar,
      [a, bt, m],
    );
    // With the norm held constant: d/dm = sum over rows of (x W + s x A B) / norm.
    const w = model.w('h.0.attn.c_attn.weight') as unknown as tf.Tensor2D;
    const full = tf.add(w, tf.mul(tf.matMul(a, bt), 2));
    const norm = tf.sqrt(tf.sum(tf.square(full), 0));
    const dm = tf.div(tf.sum(tf.matMul(x, full), 0), norm);
    expect(await maxDiff(grads[m.name]!, dm)).toBeLessThan(1e-4);
    // d/dB^T = s (x A)^T (ones * g), which the norm's own gradient would change.
    const g = tf.div(m, norm);
    const dB = tf.mul(tf.matMul(tf.transpose(tf.matMul(x, a)), tf.mul(tf.onesLike(tf.matMul(x, w)), g)), 2);
    expect(await maxDiff(grads[bt.name]!, dB)).toBeLessThan(1e-4);
    adapter.dispose();
    model.dispose();
  });

  it("writes PEFT's use_dora and lora_magnitude_vector, and counts the magnitudes", async () => {
    const model = tinyGpt2();
    const c = cfg({ targetModules: ['c_attn', 'mlp.c_fc'] });
    const adapter = lora.create(model, c, 0);
    // 2 layers: c_attn r (16 + 48) + 48, c_fc r (16 + 64) + 64.
    expect(lora.countParams(model, c)).toBe(2 * (4 * 64 + 48 + 4 * 80 + 64));
    const files = await saveAdapter(adapter, 'tiny');
    expect(JSON.parse(files.config)).toMatchObject({ peft_type: 'LORA', use_dora: true });
    const sd = await adapter.stateDict();
    expect(sd.get(`${SITE}.lora_magnitude_vector`)!.shape).toEqual([48]);
    adapter.dispose();
    expect(() =>
      lora.create(model, { ...cfg(), peftType: 'LORA' as const, useDora: true, bias: 'all' }, 0),
    ).toThrow(/bias "all"/);
    model.dispose();
  });
});
