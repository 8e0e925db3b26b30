/** LoRA's registry entry. */
import { configFromPeftJson, configToPeftJson } from '../peft-json';
import type { PeftMethod } from '../types';
import type { LoraConfig } from './config';
import { loraDefaults, loraInit, startsFromWeight, validateLora } from './config';
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
};

export const lora: PeftMethod<LoraConfig> = {
  ...loraInfo,
  validate: validateLora,
  toPeftJson: (c) => configToPeftJson({ ...c, initLoraWeights: loraInit(c) }, LORA_PEFT_EXTRA),
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
