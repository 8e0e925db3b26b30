/**
 * IA3 against its formulas: attention layers scale the output, (x W + b) * l; feed-forward layers
 * scale the input, (x * l) W + b; merge folds both into the weights exactly; PEFT's saved shapes.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../backend/node';
import { ia3 } from '.';
import { tinyGpt2 } from '../../model/testing';

describe('IA3', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('scales outputs of attention, inputs of the feed-forward, and merges exactly', async () => {
    const model = tinyGpt2();
    const adapter = ia3.create(model, ia3.defaults('CAUSAL_LM'), 0);
    // Random scales instead of the ones they start at.
    for (const [, v] of adapter.trainable()) v.assign(tf.randomUniform(v.shape, 0.5, 1.5, 'float32', 9));
    const x = tf.randomNormal([3, 16], 0, 1, 'float32', 4) as tf.Tensor2D;
    const ctx = { training: false, seed: 0 };
    const l = (k: string): tf.Tensor =>
      adapter.trainable().get(`base_model.model.transformer.h.0.${k}.ia3_l`)!;
    const w = (k: string): tf.Tensor2D => model.w(`h.0.${k}.weight`) as unknown as tf.Tensor2D;
    const bias = (k: string): tf.Tensor => model.w(`h.0.${k}.bias`);
    const close = async (a: tf.Tensor, b: tf.Tensor): Promise<void> => {
      const d = (await tf.max(tf.abs(tf.sub(a, b))).data())[0]!;
      expect(d).toBeLessThan(1e-5);
    };
    await close(
      model.linear(0, 'attn.c_attn', x, ctx),
      tf.mul(tf.add(tf.matMul(x, w('attn.c_attn')), bias('attn.c_attn')), l('attn.c_attn')),
    );
    const h = tf.randomNormal([3, 64], 0, 1, 'float32', 5) as tf.Tensor2D;
    await close(
      model.linear(0, 'mlp.c_proj', h, ctx),
      tf.add(tf.matMul(tf.mul(h, l('mlp.c_proj')), w('mlp.c_proj')), bias('mlp.c_proj')),
    );
    const before = [model.linear(0, 'attn.c_attn', x, ctx), model.linear(0, 'mlp.c_proj', h, ctx)];
    if (adapter.kind !== 'inject') throw new Error('IA3 is an inject method');
    adapter.merge();
    await close(model.linear(0, 'attn.c_attn', x, ctx), before[0]!);
    await close(model.linear(0, 'mlp.c_proj', h, ctx), before[1]!);
    adapter.unmerge();
    // PEFT's shapes: [out, 1] for an output scale, [1, in] for an input scale.
    const sd = await adapter.stateDict();
    expect(sd.get('base_model.model.transformer.h.0.attn.c_attn.ia3_l')!.shape).toEqual([48, 1]);
    expect(sd.get('base_model.model.transformer.h.0.mlp.c_proj.ia3_l')!.shape).toEqual([1, 64]);
    tf.dispose([x, h, ...before]);
    adapter.dispose();
    model.dispose();
  });

  it('refuses feed-forward modules that are not targets', () => {
    const model = tinyGpt2();
    const c = { ...ia3.defaults('CAUSAL_LM'), targetModules: ['c_attn'], feedforwardModules: ['mlp.c_proj'] };
    expect(() => ia3.validate(c, model)).toThrow(/feedforwardModules .* subset of targetModules/);
    model.dispose();
  });
});
