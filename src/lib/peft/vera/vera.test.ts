/**
 * VeRA against its formula: shared projections sliced per layer, lambda_b * ((lambda_d * x A^T) B^T)
 * added to the frozen output, merge with the same outputs, PEFT's keys and shapes, and a file
 * without its projections refused with the reason.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../backend/node';
import { tinyGpt2 } from '../../model/testing';
import { vera } from '.';

const P = 'base_model.model.transformer.h.0';

describe('VeRA', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('adds the sliced shared projections scaled by the two vectors, and merges exactly', async () => {
    const model = tinyGpt2();
    const c = { ...vera.defaults('CAUSAL_LM'), r: 4, targetModules: ['c_attn', 'mlp.c_fc'] };
    const adapter = vera.create(model, c, 0);
    if (adapter.kind !== 'inject') throw new Error('VeRA is an inject method');
    for (const v of adapter.trainable().values()) v.assign(tf.randomNormal(v.shape, 0, 0.5, 'float32', 5));
    const sd = await adapter.stateDict();
    // Shared: A [r, in_max], B [out_max, r] (c_fc's 64 outputs are the widest).
    expect(sd.get('base_model.vera_A')!.shape).toEqual([4, 16]);
    expect(sd.get('base_model.vera_B')!.shape).toEqual([64, 4]);
    expect(sd.get(`${P}.attn.c_attn.vera_lambda_b`)!.shape).toEqual([48]);
    expect(sd.get(`${P}.attn.c_attn.vera_lambda_d`)!.shape).toEqual([4]);
    expect(vera.countParams(model, c)).toBe(2 * (4 + 48 + 4 + 64));

    const x = tf.randomNormal([3, 16], 0, 1, 'float32', 2) as tf.Tensor2D;
    const ctx = { training: false, seed: 0 };
    const A = tf.tensor2d(sd.get('base_model.vera_A')!.data, [4, 16]);
    const B = tf.tensor2d(sd.get('base_model.vera_B')!.data, [64, 4]).slice([0, 0], [48, 4]);
    const ld = tf.tensor1d(sd.get(`${P}.attn.c_attn.vera_lambda_d`)!.data);
    const lb = tf.tensor1d(sd.get(`${P}.attn.c_attn.vera_lambda_b`)!.data);
    const w = model.w('h.0.attn.c_attn.weight') as unknown as tf.Tensor2D;
    const want = tf.add(
      tf.add(tf.matMul(x, w), model.w('h.0.attn.c_attn.bias')),
      tf.mul(tf.matMul(tf.mul(tf.matMul(x, A, false, true), ld), B, false, true), lb),
    );
    const got = model.linear(0, 'attn.c_attn', x, ctx);
    expect((await tf.max(tf.abs(tf.sub(got, want))).data())[0]).toBeLessThan(1e-5);
    adapter.merge();
    const merged = model.linear(0, 'attn.c_attn', x, ctx);
    expect((await tf.max(tf.abs(tf.sub(merged, got))).data())[0]).toBeLessThan(1e-5);
    adapter.unmerge();

    // A file saved without its projections (PEFT's save_projection=False).
    const other = tinyGpt2();
    const fresh = vera.create(other, c, 0);
    const noProj = new Map([...sd].filter(([k]) => !k.startsWith('base_model.vera_')));
    expect(() => fresh.loadStateDict(noProj, 'f')).toThrow(/save_projection/);
    fresh.dispose();
    other.dispose();
    adapter.dispose();
    model.dispose();
  });

  it('refuses save_projection false and other biases', () => {
    const d = vera.defaults('CAUSAL_LM');
    expect(() => vera.validate({ ...d, saveProjection: false })).toThrow(/cannot reproduce/);
    expect(() => vera.validate({ ...d, bias: 'all' })).toThrow(/not supported/);
  });
});
