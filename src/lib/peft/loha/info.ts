/**
 * LoHa (Hyeon-Woo et al. 2022, "FedPara"; LyCORIS): the delta weight is the Hadamard product of two
 * rank-r products, ΔW = (W1a W1b) ⊙ (W2a W2b) · alpha / r, so its rank can reach r² from 4 r (in +
 * out) / 2 parameters (peft/tuners/loha: LoHaConfig, LoHaLayer). Its settings with PEFT's names
 * and defaults, and its facts (tfjs-free), as every method's info.ts.
 */
import type { TaskType } from '../../data/tasks/registry';
import type { MethodInfo } from '../method-info';
import { conv1dRefusal } from '../method-info';
import type { LycorisConfig } from '../lycoris-info';
import { LYCORIS_FIELDS, lycorisDefaults } from '../lycoris-info';

export interface LoHaConfig extends LycorisConfig {
  peftType: 'LOHA';
  /**
   * PEFT's init (W1a, W1b, W2a Kaiming-uniform, W2b zero: the model starts unchanged); false makes
   * W2b random too, so the model starts changed.
   */
  initWeights: boolean;
}

export function lohaDefaults(taskType: TaskType): LoHaConfig {
  return { peftType: 'LOHA', ...lycorisDefaults(taskType), initWeights: true };
}

/** hada_w1_a, hada_w2_a [out, r] and hada_w1_b, hada_w2_b [r, in] per layer. */
export function lohaLayerParams(r: number, inDim: number, outDim: number): number {
  return 2 * r * (inDim + outDim);
}

export const lohaInfo: MethodInfo<LoHaConfig> = {
  cliName: 'loha',
  label: 'LoHa',
  peftType: 'LOHA',
  kind: 'inject',
  taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
  summary: "Delta weight = Hadamard product of two low-rank products: rank up to r² for 2x LoRA's size.",
  defaultLr: 3e-3,
  defaults: lohaDefaults,
  fields: [
    { field: 'r', doc: 'Rank of each of the two products', type: 'int', min: 1, max: 256 },
    { field: 'alpha', doc: 'Scale of the update (alpha / r)', type: 'number', min: 0.01 },
    ...LYCORIS_FIELDS,
  ],
  peftRefusal: conv1dRefusal('LoHa'),
  sizeKnob: () => ({ field: 'r', max: () => 256 }),
  ledger: { profile: () => 'loha', rank: (c) => c.r },
  capabilities: {},
};
