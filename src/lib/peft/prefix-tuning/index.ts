/**
 * Prefix tuning's registry entry (Li & Liang 2021): trained keys and values at every layer, read by
 * attention as if they were n earlier tokens. With prefixProjection, PEFT's PrefixEncoder
 * reparameterises them through an MLP (the paper found direct optimisation unstable).
 */
import type { Gpt2Model } from '../../model/gpt2';
import { encoderParams, prefixMlpEncoder, tableEncoder } from '../prompt-learning/encoders';
import { promptLearningMethod } from '../prompt-learning/method';
import type { PromptLearningSpec } from '../prompt-learning/method';
import type { PrefixTuningConfig } from './config';
import { validatePrefixTuning } from './config';
import { prefixTuningInfo } from './info';

const kvWidth = (model: Gpt2Model): number => 2 * model.config.nLayer * model.config.nEmbd;

/** The prefix encoder choice, shared with P-tuning v2 (whose config extends this one). */
export const prefixSpec: Omit<PromptLearningSpec<PrefixTuningConfig>, 'info' | 'beforeSave'> = {
  // PrefixTuningConfig's init_weights ("zero" zeroes the last layer); we keep PEFT's default.
  peftExtra: { init_weights: null },
  validate: validatePrefixTuning,
  encoder: (c, model, rng) => {
    const d = model.config.nEmbd;
    return c.prefixProjection
      ? prefixMlpEncoder(c.numVirtualTokens, d, c.encoderHiddenSize ?? d, kvWidth(model), rng)
      : tableEncoder(c.numVirtualTokens, kvWidth(model), rng);
  },
  encoderParams: (c, model) => {
    const d = model.config.nEmbd;
    return c.prefixProjection
      ? encoderParams.prefixMlp(c.numVirtualTokens, d, c.encoderHiddenSize ?? d, kvWidth(model))
      : encoderParams.table(c.numVirtualTokens, kvWidth(model));
  },
};

export const prefixTuning = promptLearningMethod<PrefixTuningConfig>({
  info: prefixTuningInfo,
  ...prefixSpec,
});
