/** Full fine-tuning's facts (tfjs-free): what the catalog, the forms, the flags, equal budgets and the ledger ask. */
import type { MethodInfo } from '../method-info';
import type { FullConfig } from './config';
import { fullDefaults } from './config';

export const fullInfo: MethodInfo<FullConfig> = {
  cliName: 'full',
  label: 'Full fine-tuning',
  peftType: 'FULL',
  kind: 'full',
  taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
  summary: 'Every weight of the model trains: the baseline the others are measured against.',
  // Every weight moves: a tenth of LoRA's rate keeps small pretrained models from forgetting.
  defaultLr: 3e-4,
  defaults: fullDefaults,
  fields: [],
  // Every weight of the model: the model's size, with nothing to turn.
  sizeKnob: () => null,
  ledger: { profile: () => 'full' },
  capabilities: {},
};
