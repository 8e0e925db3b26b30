/** AdaLoRA's facts (tfjs-free): what the catalog, the forms, the flags, equal budgets and the ledger ask. */
import type { MethodInfo } from '../method-info';
import { LORA_ALPHA, LORA_DROPOUT, TARGETS } from '../method-info';
import type { AdaLoraConfig } from './config';
import { adaloraDefaults } from './config';

export const adaloraInfo: MethodInfo<AdaLoraConfig> = {
  cliName: 'adalora',
  label: 'AdaLoRA',
  peftType: 'ADALORA',
  kind: 'inject',
  taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
  summary: 'LoRA in SVD form P·Λ·Q whose rank budget moves to the matrices that matter most.',
  defaultLr: 5e-3,
  defaults: adaloraDefaults,
  fields: [
    { field: 'initR', doc: 'Starting rank of every matrix', type: 'int', min: 1, max: 256 },
    { field: 'targetR', doc: 'Average rank the budget shrinks to', type: 'int', min: 1, max: 256 },
    { field: 'tinit', doc: 'Warm-up steps before the budget shrinks', type: 'int', min: 0 },
    { field: 'tfinal', doc: 'Final steps at the target budget', type: 'int', min: 0 },
    { field: 'deltaT', doc: 'Steps between budget allocations', type: 'int', min: 1 },
    { field: 'beta1', doc: 'Smoothing of the sensitivity', type: 'number', min: 0, max: 0.999, step: 0.01 },
    { field: 'beta2', doc: 'Smoothing of the uncertainty', type: 'number', min: 0, max: 0.999, step: 0.01 },
    {
      field: 'orthRegWeight',
      doc: 'Weight of the orthogonal regulariser',
      type: 'number',
      min: 0,
      step: 0.1,
    },
    LORA_ALPHA,
    LORA_DROPOUT,
    TARGETS,
  ],
  sizeKnob: () => ({
    field: 'initR',
    max: () => 256,
    with: (v, d) => ({
      targetR: Math.max(1, Math.round((v * Number(d.targetR)) / Number(d.initR))),
    }),
  }),
  // The ledger's rank terms were fitted at the starting rank, the most a step ever holds.
  ledger: { profile: () => 'adalora', rank: (c) => c.initR },
  capabilities: { rankHistory: true },
};
