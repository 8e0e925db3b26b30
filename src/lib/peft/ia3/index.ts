/** IA3's registry entry. */
import { configFromPeftJson, configToPeftJson } from '../peft-json';
import type { PeftMethod } from '../types';
import type { IA3Config } from './config';
import { ia3Defaults, validateIa3 } from './config';
import { Ia3Adapter, ia3ParamCount } from './ia3';
import { ia3Info } from './info';

export const ia3: PeftMethod<IA3Config> = {
  ...ia3Info,
  validate: validateIa3,
  toPeftJson: (c) =>
    configToPeftJson(c, {
      revision: null,
      auto_mapping: null,
      exclude_modules: null,
    }),
  fromPeftJson: (json, source) => configFromPeftJson(json, ia3Defaults('CAUSAL_LM'), source),
  create: (model, config) => {
    validateIa3(config, model);
    return new Ia3Adapter(model, config);
  },
  countParams: ia3ParamCount,
};
