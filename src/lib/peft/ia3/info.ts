/** IA3's facts (tfjs-free): what the catalog, the forms, the flags, equal budgets and the ledger ask. */
import type { MethodInfo } from '../method-info';
import { TARGETS } from '../method-info';
import type { IA3Config } from './config';
import { ia3Defaults } from './config';

export const ia3Info: MethodInfo<IA3Config> = {
  cliName: 'ia3',
  label: 'IA3',
  peftType: 'IA3',
  kind: 'inject',
  taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
  summary: 'Learned vectors that rescale keys, values and the feed-forward activations.',
  defaultLr: 1e-2,
  defaults: ia3Defaults,
  fields: [
    TARGETS,
    {
      field: 'feedforwardModules',
      doc: 'Targets whose input is scaled (feed-forward layers)',
      type: 'modules',
    },
  ],
  // One scale per feature of each target: its size is the targets', with nothing to turn.
  sizeKnob: () => null,
  ledger: { profile: () => 'ia3' },
  capabilities: {},
};
