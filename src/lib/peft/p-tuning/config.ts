/**
 * P-tuning settings with PEFT's names and defaults (peft/tuners/p_tuning/config.py,
 * PromptEncoderConfig). Liu et al. 2021, "GPT Understands, Too".
 */
import { PeftConfigError } from '../../errors';
import type { DecoderModel } from '../../model/decoder';
import type { TaskType } from '../../data/tasks/registry';
import type { PromptLearningConfig } from '../prompt-learning/config';
import { promptLearningBase, validatePromptLearning } from '../prompt-learning/config';

export const ENCODER_TYPES = ['MLP', 'LSTM'] as const;
export type EncoderReparameterizationType = (typeof ENCODER_TYPES)[number];

export interface PromptEncoderConfig extends PromptLearningConfig {
  peftType: 'P_TUNING';
  /** MLP: Linear, ReLU, Linear, ReLU, Linear; LSTM: a bidirectional LSTM, then Linear, ReLU, Linear. */
  encoderReparameterizationType: EncoderReparameterizationType;
  /** Hidden size of the prompt encoder; null means the model width. */
  encoderHiddenSize: number | null;
  /** LSTM layers (PEFT's MLP ignores it and always has two hidden layers). */
  encoderNumLayers: number;
  /** Dropout between LSTM layers while training (PyTorch LSTM's `dropout`). */
  encoderDropout: number;
}

export function pTuningDefaults(taskType: TaskType): PromptEncoderConfig {
  return {
    ...promptLearningBase(taskType),
    peftType: 'P_TUNING',
    encoderReparameterizationType: 'MLP',
    encoderHiddenSize: null,
    encoderNumLayers: 2,
    encoderDropout: 0.0,
  };
}

export function validatePTuning(c: PromptEncoderConfig, model?: DecoderModel): void {
  validatePromptLearning(c, model);
  if (!(ENCODER_TYPES as readonly string[]).includes(c.encoderReparameterizationType)) {
    throw new PeftConfigError(
      `encoderReparameterizationType must be MLP or LSTM, got ${JSON.stringify(c.encoderReparameterizationType)}`,
    );
  }
  if (c.encoderHiddenSize !== null && (!Number.isInteger(c.encoderHiddenSize) || c.encoderHiddenSize < 1)) {
    throw new PeftConfigError(
      `encoderHiddenSize must be a positive integer (or null for the model width), got ${c.encoderHiddenSize}`,
    );
  }
  if (!Number.isInteger(c.encoderNumLayers) || c.encoderNumLayers < 1) {
    throw new PeftConfigError(`encoderNumLayers must be a positive integer, got ${c.encoderNumLayers}`);
  }
  if (!(c.encoderDropout >= 0 && c.encoderDropout < 1)) {
    throw new PeftConfigError(`encoderDropout must be in [0, 1), got ${c.encoderDropout}`);
  }
}
