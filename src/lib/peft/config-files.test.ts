/**
 * adapter_config.json both ways for every method: our config -> PEFT's snake_case file -> our
 * config again, the fields PEFT requires (checked against files PEFT 0.21 writes, see the field
 * lists in peft/tuners/<method>/config.py), and a file as Python writes it loading here.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { initNodeBackend } from '../backend/node';
import { writeSafetensors } from '../io/safetensors';
import { loadAdapter, readAdapterConfig, saveAdapter } from '../io/peft-format';
import { METHOD_INFO, checkTaskSupported } from './catalog';
import { methodByCliName } from './registry';
import type { PeftConfigBase } from './types';
import { tinyGpt2 } from '../model/testing';

/** Fields PEFT's config class for each peft_type has and a file must carry (beyond the base ones). */
const REQUIRED: Record<string, string[]> = {
  LORA: ['r', 'lora_alpha', 'lora_dropout', 'target_modules', 'fan_in_fan_out', 'bias', 'modules_to_save'],
  ADALORA: [
    'target_r',
    'init_r',
    'tinit',
    'tfinal',
    'deltaT',
    'beta1',
    'beta2',
    'orth_reg_weight',
    'total_step',
    'rank_pattern',
  ],
  IA3: ['target_modules', 'feedforward_modules', 'fan_in_fan_out', 'init_ia3_weights', 'modules_to_save'],
  LN_TUNING: ['target_modules', 'exclude_modules', 'modules_to_save'],
  VERA: [
    'r',
    'target_modules',
    'projection_prng_key',
    'save_projection',
    'vera_dropout',
    'd_initial',
    'fan_in_fan_out',
    'bias',
    'modules_to_save',
    'init_weights',
    'layers_to_transform',
  ],
  LOHA: ['r', 'alpha', 'rank_dropout', 'module_dropout', 'target_modules', 'init_weights', 'modules_to_save'],
  LOKR: [
    'r',
    'alpha',
    'rank_dropout',
    'module_dropout',
    'decompose_both',
    'decompose_factor',
    'rank_dropout_scale',
    'target_modules',
    'init_weights',
    'modules_to_save',
  ],
  OFT: [
    'r',
    'oft_block_size',
    'module_dropout',
    'target_modules',
    'fan_in_fan_out',
    'bias',
    'init_weights',
    'modules_to_save',
    'coft',
    'eps',
    'block_share',
    'use_cayley_neumann',
    'num_cayley_neumann_terms',
  ],
  BOFT: [
    'boft_block_size',
    'boft_block_num',
    'boft_n_butterfly_factor',
    'target_modules',
    'boft_dropout',
    'fan_in_fan_out',
    'bias',
    'modules_to_save',
    'init_weights',
    'layers_to_transform',
  ],
  PROMPT_TUNING: [
    'num_virtual_tokens',
    'token_dim',
    'num_layers',
    'num_attention_heads',
    'num_transformer_submodules',
    'prompt_tuning_init',
    'prompt_tuning_init_text',
    'tokenizer_name_or_path',
    'tokenizer_kwargs',
  ],
  PREFIX_TUNING: [
    'num_virtual_tokens',
    'token_dim',
    'num_layers',
    'encoder_hidden_size',
    'prefix_projection',
    'init_weights',
  ],
  P_TUNING: [
    'num_virtual_tokens',
    'encoder_reparameterization_type',
    'encoder_hidden_size',
    'encoder_num_layers',
    'encoder_dropout',
  ],
  FULL: [],
};

describe('adapter_config.json', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it.each(METHOD_INFO.map((m) => [m.cliName, m] as const))('%s: snake_case file and back', (_, info) => {
    const method = methodByCliName(info.cliName);
    const task = info.taskTypes[0]!;
    const config = method.defaults(task);
    const json = method.toPeftJson(config);
    expect(json.peft_type).toBe(info.peftType);
    expect(json.task_type).toBe(task);
    for (const k of ['base_model_name_or_path', 'inference_mode', ...REQUIRED[info.peftType]!])
      expect(json, k).toHaveProperty(k);
    // No camelCase leaks into the file (deltaT is PEFT's own spelling).
    for (const k of Object.keys(json)) expect(k === 'deltaT' || !/[A-Z]/.test(k), k).toBe(true);
    expect(method.fromPeftJson(JSON.parse(JSON.stringify(json)), 'test')).toEqual(config);
  });

  it('a prompt-tuning file as PEFT 0.21 writes it, with fields we do not know, loads and runs', async () => {
    const model = tinyGpt2();
    const file = {
      auto_mapping: null,
      base_model_name_or_path: 'tiny-gpt2',
      inference_mode: true,
      modules_to_save: null,
      num_attention_heads: 4,
      num_layers: 2,
      num_transformer_submodules: 1,
      num_virtual_tokens: 3,
      peft_type: 'PROMPT_TUNING',
      peft_version: '0.21.0',
      prompt_tuning_init: 'RANDOM',
      prompt_tuning_init_text: null,
      revision: null,
      task_type: 'CAUSAL_LM',
      token_dim: 16,
      tokenizer_kwargs: null,
      tokenizer_name_or_path: null,
    };
    const weights = writeSafetensors(
      new Map([
        ['prompt_embeddings', { dtype: 'F32', shape: [3, 16], data: new Float32Array(48).fill(0.1) }],
      ]),
      { format: 'pt' },
    );
    const adapter = loadAdapter(model, { config: JSON.stringify(file), weights }, 'python');
    expect(adapter.kind).toBe('prompt');
    const again = JSON.parse((await saveAdapter(adapter, 'tiny-gpt2')).config) as Record<string, unknown>;
    for (const [k, v] of Object.entries(file)) if (k !== 'peft_version') expect(again[k], k).toEqual(v);
    adapter.dispose();
    model.dispose();
  });

  it("a file made for another model's width is refused with both sizes named", () => {
    const model = tinyGpt2();
    const file = {
      peft_type: 'PREFIX_TUNING',
      task_type: 'CAUSAL_LM',
      num_virtual_tokens: 3,
      token_dim: 768,
      num_layers: 12,
    };
    const weights = writeSafetensors(
      new Map([
        ['prompt_embeddings', { dtype: 'F32', shape: [3, 18432], data: new Float32Array(3 * 18432) }],
      ]),
      { format: 'pt' },
    );
    expect(() => loadAdapter(model, { config: JSON.stringify(file), weights }, 'gpt2-prefix')).toThrow(
      /tokenDim 768 does not fit this model \(n_embd 16\)/,
    );
    model.dispose();
  });

  it('TEXT init names a tokenizer, as PEFT requires of a saved TEXT config', () => {
    const m = methodByCliName('prompt-tuning');
    const c = {
      ...m.defaults('CAUSAL_LM'),
      promptTuningInit: 'TEXT',
      promptTuningInitText: 'hi',
      baseModelNameOrPath: 'peftlab-s',
    } as PeftConfigBase;
    expect(m.toPeftJson(c).tokenizer_name_or_path).toBe('peftlab-s');
  });

  it('an unsupported method and task pair names the pairs that work', () => {
    expect(() => checkTaskSupported('p-tuning-v2', 'CAUSAL_LM')).toThrow(
      /P-tuning v2 does not train CAUSAL_LM tasks: it supports SEQ_CLS, TOKEN_CLS; for CAUSAL_LM choose LoRA, AdaLoRA/,
    );
    // A type no branch implements; the known list grows with the catalog.
    expect(() => readAdapterConfig(JSON.stringify({ peft_type: 'NOT_A_TUNER' }), 'x')).toThrow(
      /peft_type "NOT_A_TUNER" is not supported; known: LORA, ADALORA, IA3, .*PROMPT_TUNING, PREFIX_TUNING, P_TUNING, .*FULL/,
    );
  });

  it('an AdaLoRA file whose tensors do not match its rank pattern names the tensor and both shapes', () => {
    const model = tinyGpt2();
    const file = {
      ...methodByCliName('adalora').toPeftJson(methodByCliName('adalora').defaults('CAUSAL_LM')),
      init_r: 4,
      target_r: 2,
      inference_mode: true,
      rank_pattern: {
        'transformer.h.0.attn.c_attn.lora_E': [true, false, true, false],
        'transformer.h.1.attn.c_attn.lora_E': [true, true, true, true],
      },
    };
    // Layer 0 keeps 2 ranks by its pattern, but the file holds 3.
    const t = (shape: number[]): { dtype: 'F32'; shape: number[]; data: Float32Array } => ({
      dtype: 'F32',
      shape,
      data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
    });
    const tensors = new Map([
      ['base_model.model.transformer.h.0.attn.c_attn.lora_A', t([3, 16])],
      ['base_model.model.transformer.h.0.attn.c_attn.lora_E', t([3, 1])],
      ['base_model.model.transformer.h.0.attn.c_attn.lora_B', t([48, 3])],
      ['base_model.model.transformer.h.1.attn.c_attn.lora_A', t([4, 16])],
      ['base_model.model.transformer.h.1.attn.c_attn.lora_E', t([4, 1])],
      ['base_model.model.transformer.h.1.attn.c_attn.lora_B', t([48, 4])],
    ]);
    const weights = writeSafetensors(tensors, { format: 'pt' });
    expect(() => loadAdapter(model, { config: JSON.stringify(file), weights }, 'cut')).toThrow(
      /tensor base_model.model.transformer.h.0.attn.c_attn.lora_A has shape \[3,16\] but this model and rank_pattern need \[2,16\]/,
    );
    model.dispose();
  });
});
