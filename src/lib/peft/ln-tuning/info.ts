/**
 * LN tuning (Zhao et al. 2023, "Tuning LayerNorm in Attention: Towards Efficient Multi-Modal LLM
 * Finetuning"): only the LayerNorms train, as trained copies of their gain and bias beside the
 * frozen originals (peft/tuners/ln_tuning: LNTuningConfig, LNTuningLayer). Its settings with
 * PEFT's names and defaults, and its facts (tfjs-free), as every method's info.ts.
 */
import { PeftConfigError } from '../../errors';
import type { Gpt2Config } from '../../model/config';
import type { TaskType } from '../../data/tasks/registry';
import { matchesTarget } from '../inject';
import type { MethodInfo } from '../method-info';
import type { PeftConfigBase } from '../types';

export interface LnTuningConfig extends PeftConfigBase {
  peftType: 'LN_TUNING';
  /** LayerNorms that train (list: exact or suffix match; or one regex). GPT-2's: ln_1, ln_2, ln_f. */
  targetModules: string[] | string;
  /** LayerNorms left frozen although targetModules names them (list or regex), or null. */
  excludeModules: string[] | string | null;
  /** Extra modules trained in full and saved (the classification head). */
  modulesToSave: string[] | null;
}

/** GPT-2's LayerNorms: their HF module names and our weight-name prefixes. */
export function layerNorms(c: Gpt2Config): { hfName: string; key: string }[] {
  const out: { hfName: string; key: string }[] = [];
  for (let l = 0; l < c.nLayer; l++) {
    for (const n of ['ln_1', 'ln_2']) out.push({ hfName: `transformer.h.${l}.${n}`, key: `h.${l}.${n}` });
  }
  out.push({ hfName: 'transformer.ln_f', key: 'ln_f' });
  return out;
}

/** The LayerNorms a config trains; none is an error naming what exists. */
export function tunedNorms(model: Gpt2Config, c: LnTuningConfig): { hfName: string; key: string }[] {
  const all = layerNorms(model);
  const picked = all.filter(
    (n) =>
      matchesTarget(n.hfName, c.targetModules) &&
      !(c.excludeModules !== null && matchesTarget(n.hfName, c.excludeModules)),
  );
  if (picked.length === 0) {
    throw new PeftConfigError(
      `targetModules ${JSON.stringify(c.targetModules)}${c.excludeModules ? ` less excludeModules ${JSON.stringify(c.excludeModules)}` : ''} matches no LayerNorm; GPT-2's are ln_1, ln_2 (every block) and ln_f`,
    );
  }
  return picked;
}

export function lnTuningDefaults(taskType: TaskType): LnTuningConfig {
  return {
    peftType: 'LN_TUNING',
    taskType,
    baseModelNameOrPath: null,
    inferenceMode: false,
    // TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING for gpt2.
    targetModules: ['ln_1', 'ln_2', 'ln_f'],
    excludeModules: null,
    modulesToSave: taskType === 'CAUSAL_LM' ? null : ['classifier', 'score'],
  };
}

export const lnTuningInfo: MethodInfo<LnTuningConfig> = {
  cliName: 'ln-tuning',
  label: 'LN tuning',
  peftType: 'LN_TUNING',
  kind: 'inject',
  taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
  summary: 'Only the LayerNorms train: a gain and a bias per feature of each norm, nothing else.',
  // Gains and biases act on every feature at once: a rate like IA3's scales.
  defaultLr: 1e-2,
  defaults: lnTuningDefaults,
  // PEFT's targets are every LayerNorm of GPT-2; a file may name fewer (targetModules,
  // excludeModules), but the form's layer picker is for linear layers, so the Lab trains them all.
  fields: [],
  // Two vectors of the model width per norm: the size is the model's, with nothing to turn.
  sizeKnob: () => null,
  ledger: { profile: () => 'ln-tuning' },
  capabilities: { targetsNorms: true },
  gpt2Only: "it trains GPT-2's LayerNorms; the Llama family's RMSNorms are not wired yet",
};
