/**
 * Prompt tuning settings with PEFT's names and defaults (peft/tuners/prompt_tuning/config.py).
 * Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning".
 */
import { PeftConfigError } from '../../errors';
import type { DecoderModel } from '../../model/decoder';
import type { TaskType } from '../../data/tasks/registry';
import type { PromptLearningConfig } from '../prompt-learning/config';
import { promptLearningBase, validatePromptLearning } from '../prompt-learning/config';

export const PROMPT_TUNING_INITS = ['RANDOM', 'TEXT', 'SAMPLE_VOCAB'] as const;
export type PromptTuningInit = (typeof PROMPT_TUNING_INITS)[number];

export interface PromptTuningConfig extends PromptLearningConfig {
  peftType: 'PROMPT_TUNING';
  /** RANDOM: N(0, 1); TEXT: the embeddings of a text's tokens; SAMPLE_VOCAB: of random vocabulary tokens. */
  promptTuningInit: PromptTuningInit;
  /** The text whose token embeddings start the prompt (TEXT), repeated or cut to numVirtualTokens. */
  promptTuningInitText: string | null;
  /** Which tokenizer TEXT init used (informational here: the base model's own is used). */
  tokenizerNameOrPath: string | null;
}

export function promptTuningDefaults(taskType: TaskType): PromptTuningConfig {
  return {
    ...promptLearningBase(taskType),
    peftType: 'PROMPT_TUNING',
    promptTuningInit: 'RANDOM',
    promptTuningInitText: null,
    tokenizerNameOrPath: null,
  };
}

export function validatePromptTuning(c: PromptTuningConfig, model?: DecoderModel): void {
  validatePromptLearning(c, model);
  if (!(PROMPT_TUNING_INITS as readonly string[]).includes(c.promptTuningInit)) {
    throw new PeftConfigError(
      `promptTuningInit must be one of ${PROMPT_TUNING_INITS.join(', ')}, got ${JSON.stringify(c.promptTuningInit)}`,
    );
  }
  if (c.promptTuningInit === 'TEXT' && !c.promptTuningInitText?.trim()) {
    throw new PeftConfigError(
      'promptTuningInitText is empty: TEXT init needs a text (e.g. "Classify if the email is spam or not:"), or choose RANDOM',
    );
  }
}
