/** LoRA's registry entry. */
import { configFromPeftJson, configToPeftJson } from '../peft-json';
import type { PeftMethod } from '../types';
import type { LoraConfig } from './config';
import { loraDefaults, loraPeftValues, startsFromWeight, validateLora } from './config';
import { DoraAdapter, doraParamCount } from './dora';
import { LoraAdapter, loraParamCount } from './lora';
import { WeightInitLoraAdapter, readInitLoraWeights } from './weight-init';
import { loraInfo } from './info';

/**
 * PEFT LoraConfig fields we do not model, written at PEFT's defaults so Python reads the file as-is
 * (AdaLoraConfig inherits them; its own rank_pattern, a config field there, overrides this one).
 */
export const LORA_PEFT_EXTRA = {
  alpha_pattern: {},
  rank_pattern: {},
  init_lora_weights: true,
  layers_pattern: null,
  revision: null,
  auto_mapping: null,
  // Fields PEFT 0.21 added for variants we do not implement, at the values its save_pretrained
  // writes for a plain LoRA, so Python reads every field it expects.
  alora_invocation_tokens: null,
  arrow_config: null,
  corda_config: null,
  ensure_weight_tying: false,
  eva_config: null,
  exclude_modules: null,
  kasa_config: null,
  layer_replication: null,
  loftq_config: {},
  lora_bias: false,
  lora_ga_config: null,
  megatron_config: null,
  megatron_core: 'megatron.core',
  monteclora_config: null,
  qalora_group_size: 16,
  target_parameters: null,
  trainable_token_indices: null,
  use_bdlora: null,
  use_qalora: false,
  velora_config: null,
};

export const lora: PeftMethod<LoraConfig> = {
  ...loraInfo,
  validate: validateLora,
  toPeftJson: (c) => configToPeftJson(loraPeftValues(c), LORA_PEFT_EXTRA),
  fromPeftJson: (json, source) => {
    // init_lora_weights is a bool or a string in PEFT: read apart from the typed fields.
    const { init_lora_weights: init, ...rest } = json;
    const c = configFromPeftJson(rest, loraDefaults('CAUSAL_LM'), source);
    return { ...c, initLoraWeights: readInitLoraWeights(init, source) };
  },
  create: (model, config, seed) => {
    validateLora(config, model);
    if (startsFromWeight(config)) return new WeightInitLoraAdapter(model, config);
    return config.useDora ? new DoraAdapter(model, config, seed) : new LoraAdapter(model, config, seed);
  },
  countParams: (model, c) => (c.useDora ? doraParamCount(model, c) : loraParamCount(model, c)),
};
