/** LoRA's facts (tfjs-free): what the catalog, the forms, the flags, equal budgets and the ledger ask. */
import type { MethodInfo } from '../method-info';
import { LORA_ALPHA, LORA_DROPOUT, TARGETS } from '../method-info';
import type { LoraConfig } from './config';
import { loraDefaults, loraPeftRefusal, loraPeftValues } from './config';

export const loraInfo: MethodInfo<LoraConfig> = {
  cliName: 'lora',
  label: 'LoRA',
  peftType: 'LORA',
  kind: 'inject',
  taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
  summary: 'Low-rank matrices A, B beside chosen linear layers; the frozen weights never change.',
  defaultLr: 3e-3,
  defaults: loraDefaults,
  fields: [
    { field: 'r', doc: 'Rank of the update B·A', type: 'int', min: 1, max: 256 },
    LORA_ALPHA,
    LORA_DROPOUT,
    { field: 'useRslora', doc: 'Scale by alpha / sqrt(r) instead (rsLoRA)', type: 'bool' },
    { field: 'useDora', doc: 'DoRA: train a magnitude per output beside the direction', type: 'bool' },
    {
      field: 'initLoraWeights',
      doc: 'Start: PEFT default (B = 0), principal singular directions (PiSSA) or QR (OLoRA)',
      type: 'enum',
      options: ['true', 'pissa', 'olora'],
    },
    TARGETS,
  ],
  // Alpha 16 (scale 2) and a little dropout train our 0.5M-2M parameter models faster and steadier
  // than PEFT's alpha 8, dropout 0.
  labDefaults: { r: 8, loraAlpha: 16, loraDropout: 0.05, initLoraWeights: 'true' },
  peftValues: loraPeftValues,
  peftRefusal: loraPeftRefusal,
  sizeKnob: () => ({ field: 'r', max: () => 256 }),
  ledger: { profile: (c) => (c.useDora ? 'dora' : 'lora'), rank: (c) => c.r },
  capabilities: {},
};
