/**
 * LN tuning: the trained copies replace the norms while the adapter is on, the frozen originals
 * answer when it is off, merge folds the copies into the originals with the same outputs and
 * unmerge restores them exactly; linear targets and unmatched names are refused, on GPT-2 and on
 * the Llama family (whose PEFT files are checked in ../llama-methods.test.ts).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../backend/node';
import { tinyGpt2, tinyLlama } from '../../model/testing';
import type { Gpt2Model } from '../../model/gpt2';
import { lnTuning } from '.';

const hidden = (model: Gpt2Model): Float32Array =>
  tf.tidy(() => {
    const ids = tf.tensor2d([[1, 8, 4, 0, 7, 3]], undefined, 'int32');
    return model.forward({ ids }).hidden.dataSync() as Float32Array;
  });
const maxAbs = (a: Float32Array, b: Float32Array): number =>
  a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

describe('LN tuning', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('swaps trained copies in, off and back, and merges exactly', () => {
    const model = tinyGpt2();
    const plain = hidden(model);
    const original = model.w('ln_f.weight');
    const adapter = lnTuning.create(model, lnTuning.defaults('CAUSAL_LM'), 0);
    if (adapter.kind !== 'inject') throw new Error('LN tuning is an inject method');
    // Five norms (ln_1, ln_2 of 2 blocks, ln_f), gain and bias of width 16 each.
    expect(adapter.trainable().size).toBe(10);
    expect(maxAbs(hidden(model), plain)).toBe(0);
    for (const v of adapter.trainable().values()) v.assign(tf.randomUniform(v.shape, 0.5, 1.5, 'float32', 3));
    const tuned = hidden(model);
    expect(maxAbs(tuned, plain)).toBeGreaterThan(0.1);
    const on = adapter.disableAdapter();
    expect(maxAbs(hidden(model), plain)).toBe(0);
    on();
    expect(maxAbs(hidden(model), tuned)).toBe(0);
    adapter.merge();
    expect(model.w('ln_f.weight')).toBe(original);
    expect(maxAbs(hidden(model), tuned)).toBeLessThan(1e-6);
    adapter.unmerge();
    adapter.dispose();
    expect(model.w('ln_f.weight')).toBe(original);
    expect(maxAbs(hidden(model), plain)).toBe(0);
    model.dispose();
  });

  it('trains only the norms named, and refuses linear layers and unknown names', () => {
    const model = tinyGpt2();
    const c = lnTuning.defaults('CAUSAL_LM');
    expect(lnTuning.countParams(model, { ...c, targetModules: ['ln_f'] })).toBe(32);
    expect(lnTuning.countParams(model, { ...c, excludeModules: ['ln_f'] })).toBe(4 * 32);
    expect(() => lnTuning.create(model, { ...c, targetModules: ['c_attn'] }, 0)).toThrow(
      /trains norms only \(ln_1, ln_2 \(every block\) and ln_f\)/,
    );
    expect(() => lnTuning.create(model, { ...c, targetModules: ['ln_3'] }, 0)).toThrow(
      /matches no norm; GPT-2 \(GPT2LMHeadModel\)'s are ln_1, ln_2/,
    );
    model.dispose();
  });

  it("counts and refuses on the Llama family's RMSNorms (a gain each, no bias)", () => {
    const model = tinyLlama();
    const c = {
      ...lnTuning.defaults('CAUSAL_LM'),
      targetModules: ['input_layernorm', 'post_attention_layernorm', 'norm'],
    };
    // 2 blocks x 2 norms + model.norm, width 32, gain only.
    expect(lnTuning.countParams(model, c)).toBe(5 * 32);
    expect(lnTuning.countParams(model, { ...c, targetModules: ['norm'] })).toBe(32);
    // GPT-2's names match nothing here, and the message names the family's norms.
    expect(() => lnTuning.create(model, lnTuning.defaults('CAUSAL_LM'), 0)).toThrow(
      /matches no norm; Llama \(LlamaForCausalLM\)'s are input_layernorm, post_attention_layernorm \(every block\) and norm/,
    );
    expect(() => lnTuning.create(model, { ...c, targetModules: ['q_proj'] }, 0)).toThrow(
      /names the linear layer model.layers.0.self_attn.q_proj: LN tuning trains norms only/,
    );
    const adapter = lnTuning.create(model, c, 0);
    expect([...adapter.trainable().keys()]).toContain('base_model.model.model.norm.ln_tuning_layers.weight');
    adapter.dispose();
    model.dispose();
  });
});
