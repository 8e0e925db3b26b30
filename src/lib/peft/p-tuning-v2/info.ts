/** P-tuning v2's facts (tfjs-free): what the catalog, the forms, the flags, equal budgets and the ledger ask. */
import type { MethodInfo } from '../method-info';
import { PREFIX_FIELDS, VIRTUAL_TOKENS_KNOB } from '../method-info';
import type { PTuningV2Config } from './config';
import { pTuningV2Defaults } from './config';

export const pTuningV2Info: MethodInfo<PTuningV2Config> = {
  cliName: 'p-tuning-v2',
  label: 'P-tuning v2',
  peftType: 'PREFIX_TUNING',
  kind: 'prefix',
  taskTypes: ['SEQ_CLS', 'TOKEN_CLS'],
  summary:
    'Deep prompts at every layer plus a linear head (or a verbalizer), for classification and tagging.',
  defaultLr: 1e-2,
  defaults: pTuningV2Defaults,
  fields: [
    ...PREFIX_FIELDS,
    {
      field: 'verbalizer',
      doc: "Classify with the label words' LM-head logits instead of a trained linear head",
      type: 'bool',
    },
  ],
  sizeKnob: () => VIRTUAL_TOKENS_KNOB,
  ledger: { profile: (c) => (c.prefixProjection ? 'prefix-mlp' : 'prefix-table') },
  capabilities: {},
};
