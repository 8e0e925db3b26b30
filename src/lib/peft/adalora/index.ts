/** AdaLoRA's registry entry. */
import { AdapterError } from '../../errors';
import { configFromPeftJson, configToPeftJson } from '../peft-json';
import type { PeftMethod } from '../types';
import type { AdaLoraConfig } from './config';
import { adaloraDefaults, validateAdalora } from './config';
import { AdaLoraAdapter, adaloraParamCount } from './adalora';
import { LORA_PEFT_EXTRA } from '../lora';
import { adaloraInfo } from './info';

export const adalora: PeftMethod<AdaLoraConfig> = {
  ...adaloraInfo,
  validate: validateAdalora,
  toPeftJson: (c) => configToPeftJson(c, LORA_PEFT_EXTRA),
  fromPeftJson: (json, source) => {
    const c = configFromPeftJson(json, adaloraDefaults('CAUSAL_LM'), source);
    // PEFT writes rank_pattern as { name: [bool...] }; anything else is not ours to guess.
    if (c.rankPattern !== null && (typeof c.rankPattern !== 'object' || Array.isArray(c.rankPattern))) {
      throw new AdapterError(`${source}: "rank_pattern" should map module names to lists of booleans`);
    }
    return c;
  },
  create: (model, config, seed) => {
    validateAdalora(config, model);
    return new AdaLoraAdapter(model, config, seed);
  },
  countParams: adaloraParamCount,
};
