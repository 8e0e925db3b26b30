/** P-tuning's facts (tfjs-free): what the catalog, the forms, the flags, equal budgets and the ledger ask. */
import type { MethodInfo } from '../method-info';
import { ENCODER_HIDDEN_KNOB, VIRTUAL_TOKENS } from '../method-info';
import type { PromptEncoderConfig } from './config';
import { ENCODER_TYPES, pTuningDefaults } from './config';

export const pTuningInfo: MethodInfo<PromptEncoderConfig> = {
  cliName: 'p-tuning',
  label: 'P-tuning',
  peftType: 'P_TUNING',
  kind: 'prompt',
  taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
  summary: 'Virtual token embeddings produced by a small prompt encoder (MLP or LSTM).',
  defaultLr: 1e-2,
  defaults: pTuningDefaults,
  fields: [
    VIRTUAL_TOKENS,
    {
      field: 'encoderReparameterizationType',
      doc: 'Prompt encoder',
      type: 'enum',
      options: ENCODER_TYPES,
    },
    {
      field: 'encoderHiddenSize',
      doc: 'Hidden size of the encoder',
      type: 'int',
      min: 1,
      nullable: 'model width',
    },
    {
      field: 'encoderNumLayers',
      doc: 'LSTM layers',
      type: 'int',
      min: 1,
      max: 4,
      when: { field: 'encoderReparameterizationType', equals: 'LSTM' },
    },
    {
      field: 'encoderDropout',
      doc: 'Dropout between LSTM layers',
      type: 'number',
      min: 0,
      max: 0.9,
      step: 0.05,
      when: { field: 'encoderReparameterizationType', equals: 'LSTM' },
    },
  ],
  // The encoder's hidden size dominates its count (its tokens only add rows to the input table).
  sizeKnob: () => ENCODER_HIDDEN_KNOB,
  ledger: {
    profile: (c) => (c.encoderReparameterizationType === 'LSTM' ? 'prompt-lstm' : 'prompt-mlp'),
  },
  capabilities: { nearestTokens: true },
};
