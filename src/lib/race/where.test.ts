/**
 * The parameter diagram's map for every inject method of the catalog (OFT's and BOFT's rotations
 * included): built from the live adapter's state-dict names on the tiny GPT-2, every trainable
 * parameter lands in the layer and module it adapts, and none is left to the input or output.
 * LN tuning on the Llama family puts each block's RMSNorm gains in their rows and model.norm's at
 * the output.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../backend/node';
import { tinyGpt2, tinyLlama } from '../model/testing';
import { withFamilyDefaults } from '../train/plan';
import { METHOD_INFO, configForRun } from '../peft/catalog';
import { methodByCliName } from '../peft/registry';
import { parameterMap } from './where';

const INJECT = METHOD_INFO.filter((m) => m.kind === 'inject' && !m.capabilities.targetsNorms);

describe('parameter map', () => {
  beforeAll(async () => {
    await initNodeBackend('cpu');
  });

  it.each(INJECT.map((m) => m.cliName))('%s: every parameter sits at the layer it adapts', (name) => {
    const model = tinyGpt2();
    const method = methodByCliName(name);
    // configForRun: AdaLoRA's schedule needs its step count.
    const config = configForRun(
      { ...method.defaults('CAUSAL_LM'), targetModules: ['c_attn', 'mlp.c_proj'] },
      10,
    );
    const adapter = method.create(model, config, 1);
    const sizes = [...adapter.trainable()].map(([k, v]) => [k, v.size] as [string, number]);
    const map = parameterMap('lane', name, adapter.kind, model.config.nLayer, 0, sizes, {
      family: 'gpt2',
      tiedHead: true,
    });
    expect(map.total).toBe(method.countParams(model, config));
    expect([map.input, map.output, map.head, map.everyLayer]).toEqual([0, 0, 0, 0]);
    for (const row of map.layers) {
      expect(Object.keys(row).sort()).toEqual(['attn.c_attn', 'mlp.c_proj']);
      for (const n of Object.values(row)) expect(n).toBeGreaterThan(0);
    }
    adapter.dispose();
    model.dispose();
  });

  it("ln-tuning on Llama: the blocks' RMSNorms in their rows, model.norm at the output", () => {
    const model = tinyLlama();
    const method = methodByCliName('ln-tuning');
    const config = withFamilyDefaults(method.defaults('CAUSAL_LM'), model);
    const adapter = method.create(model, config, 1);
    const sizes = [...adapter.trainable()].map(([k, v]) => [k, v.size] as [string, number]);
    const map = parameterMap('lane', 'ln-tuning', adapter.kind, model.config.nLayer, 0, sizes, {
      family: 'llama',
      tiedHead: false,
    });
    expect(map.total).toBe(5 * 32);
    expect([map.input, map.output, map.head, map.everyLayer]).toEqual([0, 32, 0, 0]);
    for (const row of map.layers) expect(row).toEqual({ input_layernorm: 32, post_attention_layernorm: 32 });
    adapter.dispose();
    model.dispose();
  });
});
