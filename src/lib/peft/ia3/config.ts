/**
 * IA3 settings with PEFT's names and defaults (peft/tuners/ia3/config.py, IA3Config).
 * Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context Learning".
 */
import { PeftConfigError } from '../../errors';
import type { DecoderModel } from '../../model/decoder';
import { checkFanInFanOut } from '../inject';
import { targetedSites, matchesTarget } from '../inject';
import type { PeftConfigBase } from '../types';
import type { TaskType } from '../../data/tasks/registry';
import { CLS_HEAD_MODULES } from '../lora/config';

export interface IA3Config extends PeftConfigBase {
  peftType: 'IA3';
  /** Layers whose activations are rescaled (list: exact or suffix match; or one regex). */
  targetModules: string[] | string;
  /** Those of the targets that are feed-forward: their input is scaled, not their output. */
  feedforwardModules: string[] | string;
  /** True for GPT-2's Conv1D, whose weight is stored [in, out]. */
  fanInFanOut: boolean;
  /** Start the vectors at one, so training starts from the base model exactly. */
  initIa3Weights: boolean;
  /** Extra modules trained in full and saved (the classification head). */
  modulesToSave: string[] | null;
}

export function ia3Defaults(taskType: TaskType): IA3Config {
  return {
    peftType: 'IA3',
    taskType,
    baseModelNameOrPath: null,
    inferenceMode: false,
    // TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING / _FEEDFORWARD_MODULES_MAPPING for gpt2.
    targetModules: ['c_attn', 'mlp.c_proj'],
    feedforwardModules: ['mlp.c_proj'],
    fanInFanOut: true,
    initIa3Weights: true,
    modulesToSave: taskType === 'CAUSAL_LM' ? null : [...CLS_HEAD_MODULES],
  };
}

export function validateIa3(c: IA3Config, model?: DecoderModel): void {
  checkFanInFanOut(c.fanInFanOut, model);
  if (c.modulesToSave !== null && c.modulesToSave.length > 0 && c.taskType === 'CAUSAL_LM') {
    throw new PeftConfigError(
      `modulesToSave ${JSON.stringify(c.modulesToSave)} needs task_type SEQ_CLS or TOKEN_CLS; got ${c.taskType}`,
    );
  }
  if (!model) return;
  const sites = targetedSites(model.config, c.targetModules);
  // PEFT: every feed-forward module must also be a target (IA3Model._create_and_replace).
  const stray = targetedSites(model.config, c.feedforwardModules, null, true).filter(
    (s) => !sites.some((t) => t.key === s.key),
  );
  if (stray.length > 0) {
    throw new PeftConfigError(
      `feedforwardModules ${JSON.stringify(c.feedforwardModules)} names ${stray[0]!.hfName}, which targetModules ${JSON.stringify(c.targetModules)} does not: feed-forward modules must be a subset of targetModules`,
    );
  }
}

/** Whether a targeted layer is feed-forward (its input is scaled) under the config. */
export function isFeedforward(c: IA3Config, hfName: string): boolean {
  return matchesTarget(hfName, c.feedforwardModules);
}
