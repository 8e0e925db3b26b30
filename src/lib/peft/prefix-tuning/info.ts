/** Prefix tuning's facts (tfjs-free): what the catalog, the forms, the flags, equal budgets and the ledger ask. */
import type { MethodInfo } from '../method-info';
import { ENCODER_HIDDEN_KNOB, PREFIX_FIELDS, VIRTUAL_TOKENS_KNOB } from '../method-info';
import type { PrefixTuningConfig } from './config';
import { prefixTuningDefaults } from './config';

export const prefixTuningInfo: MethodInfo<PrefixTuningConfig> = {
  cliName: 'prefix-tuning',
  label: 'Prefix tuning',
  peftType: 'PREFIX_TUNING',
  kind: 'prefix',
  taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
  summary: 'Trained keys and values prepended at every attention layer, optionally through an MLP.',
  defaultLr: 1e-2,
  defaults: prefixTuningDefaults,
  fields: PREFIX_FIELDS,
  // Through the MLP the hidden size dominates the count; a plain table grows with its tokens.
  sizeKnob: (c) => (c.prefixProjection ? ENCODER_HIDDEN_KNOB : VIRTUAL_TOKENS_KNOB),
  ledger: { profile: (c) => (c.prefixProjection ? 'prefix-mlp' : 'prefix-table') },
  capabilities: {},
};
