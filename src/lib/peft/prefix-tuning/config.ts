/**
 * Prefix tuning settings with PEFT's names and defaults (peft/tuners/prefix_tuning/config.py).
 * Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation".
 */
import { PeftConfigError } from '../../errors';
import type { DecoderModel } from '../../model/decoder';
import type { TaskType } from '../../data/tasks/registry';
import type { PromptLearningConfig } from '../prompt-learning/config';
import { promptLearningBase, validatePromptLearning } from '../prompt-learning/config';

export interface PrefixTuningConfig extends PromptLearningConfig {
  peftType: 'PREFIX_TUNING';
  /** Hidden size of the reparameterising MLP (prefixProjection); null means the model width. */
  encoderHiddenSize: number | null;
  /** Reparameterise: an embedding [n, d] through Linear, Tanh, Linear to every layer's keys and values. */
  prefixProjection: boolean;
}

export function prefixTuningDefaults(taskType: TaskType): PrefixTuningConfig {
  return {
    ...promptLearningBase(taskType),
    peftType: 'PREFIX_TUNING',
    encoderHiddenSize: null,
    prefixProjection: false,
  };
}

export function validatePrefixTuning(c: PrefixTuningConfig, model?: DecoderModel): void {
  validatePromptLearning(c, model);
  if (c.encoderHiddenSize !== null && (!Number.isInteger(c.encoderHiddenSize) || c.encoderHiddenSize < 1)) {
    throw new PeftConfigError(
      `encoderHiddenSize must be a positive integer (or null for the model width), got ${c.encoderHiddenSize}`,
    );
  }
}
