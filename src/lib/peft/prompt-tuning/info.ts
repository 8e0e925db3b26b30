/** Prompt tuning's facts (tfjs-free): what the catalog, the forms, the flags, equal budgets and the ledger ask. */
import type { MethodInfo } from '../method-info';
import { VIRTUAL_TOKENS, VIRTUAL_TOKENS_KNOB } from '../method-info';
import type { PromptTuningConfig } from './config';
import { PROMPT_TUNING_INITS, promptTuningDefaults } from './config';

export const promptTuningInfo: MethodInfo<PromptTuningConfig> = {
  cliName: 'prompt-tuning',
  label: 'Prompt tuning',
  peftType: 'PROMPT_TUNING',
  kind: 'prompt',
  taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
  summary: 'Soft token embeddings prepended to the input; nothing inside the model changes.',
  defaultLr: 3e-2,
  defaults: promptTuningDefaults,
  fields: [
    VIRTUAL_TOKENS,
    {
      field: 'promptTuningInit',
      doc: 'Start from random vectors, a text, or random vocabulary tokens',
      type: 'enum',
      options: PROMPT_TUNING_INITS,
    },
    {
      field: 'promptTuningInitText',
      doc: 'Text whose token embeddings start the prompt',
      type: 'text',
      when: { field: 'promptTuningInit', equals: 'TEXT' },
    },
  ],
  sizeKnob: () => VIRTUAL_TOKENS_KNOB,
  ledger: { profile: () => 'prompt-table' },
  capabilities: { nearestTokens: true },
};
