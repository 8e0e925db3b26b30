/**
 * LN tuning (Zhao et al. 2023, "Tuning LayerNorm in Attention: Towards Efficient Multi-Modal LLM
 * Finetuning"): only the norms train, as trained copies of their parameters beside the frozen
 * originals (peft/tuners/ln_tuning: LNTuningConfig, LNTuningLayer): GPT-2's LayerNorms (gain and
 * bias), the Llama family's RMSNorms (gain only). Its settings with PEFT's names and defaults, and
 * its facts (tfjs-free), as every method's info.ts.
 */
import { PeftConfigError } from '../../errors';
import type { DecoderConfig } from '../../model/family';
import { FAMILY_LABEL, modelFamily } from '../../model/family';
import { isLlamaConfig } from '../../model/llama-config';
import type { TaskType } from '../../data/tasks/registry';
import { matchesTarget } from '../inject';
import type { MethodInfo } from '../method-info';
import type { PeftConfigBase } from '../types';

export interface LnTuningConfig extends PeftConfigBase {
  peftType: 'LN_TUNING';
  /**
   * Norms that train (list: exact or suffix match; or one regex). GPT-2's: ln_1, ln_2, ln_f; the
   * Llama family's: input_layernorm, post_attention_layernorm, norm.
   */
  targetModules: string[] | string;
  /** Norms left frozen although targetModules names them (list or regex), or null. */
  excludeModules: string[] | string | null;
  /** Extra modules trained in full and saved (the classification head). */
  modulesToSave: string[] | null;
}

/**
 * One norm of the model: its HF module name (what targetModules match), our weight-name prefix, and
 * the parameters it has (LayerNorm: weight and bias; RMSNorm: weight).
 */
export interface NormSite {
  hfName: string;
  key: string;
  params: readonly ('weight' | 'bias')[];
}

/** The norms of one block and the final one, as the family names them. */
function familyNorms(c: DecoderConfig): { block: string[]; final: string; params: NormSite['params'] } {
  return isLlamaConfig(c)
    ? { block: ['input_layernorm', 'post_attention_layernorm'], final: 'norm', params: ['weight'] }
    : { block: ['ln_1', 'ln_2'], final: 'ln_f', params: ['weight', 'bias'] };
}

/** Every norm of the model, in order (GPT-2's `transformer.h.N.ln_1`, Llama's `model.layers.N.input_layernorm`). */
export function modelNorms(c: DecoderConfig): NormSite[] {
  const { block, final, params } = familyNorms(c);
  const root = isLlamaConfig(c) ? 'model' : 'transformer';
  const layers = isLlamaConfig(c) ? 'layers' : 'h';
  const out: NormSite[] = [];
  for (let l = 0; l < c.nLayer; l++) {
    for (const n of block)
      out.push({ hfName: `${root}.${layers}.${l}.${n}`, key: `${layers}.${l}.${n}`, params });
  }
  out.push({ hfName: `${root}.${final}`, key: final, params });
  return out;
}

/** The norms' module names as a sentence, for messages: "ln_1, ln_2 (every block) and ln_f". */
export function normNames(c: DecoderConfig): string {
  const { block, final } = familyNorms(c);
  return `${block.join(', ')} (every block) and ${final}`;
}

/** The norms a config trains; none is an error naming what exists. */
export function tunedNorms(model: DecoderConfig, c: LnTuningConfig): NormSite[] {
  const all = modelNorms(model);
  const picked = all.filter(
    (n) =>
      matchesTarget(n.hfName, c.targetModules) &&
      !(c.excludeModules !== null && matchesTarget(n.hfName, c.excludeModules)),
  );
  if (picked.length === 0) {
    throw new PeftConfigError(
      `targetModules ${JSON.stringify(c.targetModules)}${c.excludeModules ? ` less excludeModules ${JSON.stringify(c.excludeModules)}` : ''} matches no norm; ${FAMILY_LABEL[modelFamily(model)]}'s are ${normNames(model)}`,
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
    // TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING for gpt2 (the Llama family's: familyDefaults).
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
  summary: "Only the norms train: a gain (and a LayerNorm's bias) per feature of each norm, nothing else.",
  // Gains and biases act on every feature at once: a rate like IA3's scales.
  defaultLr: 1e-2,
  defaults: lnTuningDefaults,
  // PEFT's targets per model type (every norm of GPT-2 and Llama, Qwen2's post_attention_layernorm);
  // a file may name others (targetModules, excludeModules), but the form's layer picker is for
  // linear layers, so the Lab trains PEFT's defaults.
  fields: [],
  // Two vectors of the model width per norm: the size is the model's, with nothing to turn.
  sizeKnob: () => null,
  ledger: { profile: () => 'ln-tuning' },
  capabilities: { targetsNorms: true },
};
