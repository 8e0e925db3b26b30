/**
 * Prompt tuning's registry entry (Lester et al. 2021): n soft token embeddings before the input.
 * TEXT init follows PEFT's PromptEmbedding (peft/tuners/prompt_tuning/model.py): the text's token
 * ids, repeated until there are enough and cut to n, looked up in the frozen word embeddings.
 */
import * as tf from '@tensorflow/tfjs';
import { PeftConfigError } from '../../errors';
import { encoderParams, tableEncoder } from '../prompt-learning/encoders';
import { promptLearningMethod } from '../prompt-learning/method';
import type { PromptTuningConfig } from './config';
import { validatePromptTuning } from './config';
import { promptTuningInfo } from './info';

/** The text's ids repeated and cut to exactly n (PEFT's TEXT init). */
export function textInitIds(ids: number[], n: number): number[] {
  if (ids.length === 0) return [];
  const reps = Math.ceil(n / ids.length);
  return Array.from({ length: reps }, () => ids)
    .flat()
    .slice(0, n);
}

export const promptTuning = promptLearningMethod<PromptTuningConfig>({
  info: promptTuningInfo,
  validate: validatePromptTuning,
  encoder: (c, model, rng, opts) => {
    const n = c.numVirtualTokens;
    const d = model.config.nEmbd;
    let ids: number[] | null = null;
    if (c.promptTuningInit === 'TEXT') {
      if (!opts.tokenize) {
        throw new PeftConfigError(
          "promptTuningInit TEXT needs the model's tokenizer to turn promptTuningInitText into tokens; pass it, or choose RANDOM",
        );
      }
      ids = textInitIds(opts.tokenize(c.promptTuningInitText ?? ''), n);
      if (ids.length === 0) {
        throw new PeftConfigError(
          `promptTuningInitText ${JSON.stringify(c.promptTuningInitText)} has no tokens: give it some words`,
        );
      }
    } else if (c.promptTuningInit === 'SAMPLE_VOCAB') {
      ids = Array.from({ length: n }, () => rng.int(model.config.vocabSize));
    }
    const init = ids
      ? tf.tidy(() => tf.clone(tf.gather(model.w('wte.weight'), tf.tensor1d(ids, 'int32'))) as tf.Tensor2D)
      : undefined;
    return tableEncoder(n, d, rng, init);
  },
  encoderParams: (c, model) => encoderParams.table(c.numVirtualTokens, model.config.nEmbd),
  peftExtra: { tokenizer_kwargs: null },
  // PEFT's PromptTuningConfig refuses TEXT init without a tokenizer name: the base model's is ours.
  beforeSave: (c) =>
    c.promptTuningInit === 'TEXT' && c.tokenizerNameOrPath === null
      ? { ...c, tokenizerNameOrPath: c.baseModelNameOrPath }
      : c,
});
