/**
 * Prefix tuning's registry entry (Li & Liang 2021): trained keys and values at every layer, read by
 * attention as if they were n earlier tokens. With prefixProjection, PEFT's PrefixEncoder
 * reparameterises them through an MLP (the paper found direct optimisation unstable).
 */
import type { DecoderModel } from '../../model/decoder';
import { encoderParams, prefixMlpEncoder, tableEncoder } from '../prompt-learning/encoders';
import { promptLearningMethod } from '../prompt-learning/method';
import type { PromptLearningSpec } from '../prompt-learning/method';
import type { PrefixTuningConfig } from './config';
import { validatePrefixTuning } from './config';
import { prefixTuningInfo } from './info';

/** 2 L d: keys and values of every layer, d the key/value width (withModelSizes has set tokenDim). */
const kvWidth = (model: DecoderModel, c: PrefixTuningConfig): number =>
  2 * model.config.nLayer * (c.tokenDim ?? model.config.nEmbd);

/** The prefix encoder choice, shared with P-tuning v2 (whose config extends this one). */
export const prefixSpec: Omit<PromptLearningSpec<PrefixTuningConfig>, 'info' | 'beforeSave'> = {
  // PrefixTuningConfig's init_weights ("zero" zeroes the last layer); we keep PEFT's default.
  peftExtra: { init_weights: null },
  validate: validatePrefixTuning,
  encoder: (c, model, rng) => {
    const d = c.tokenDim ?? model.config.nEmbd;
    return c.prefixProjection
      ? prefixMlpEncoder(c.numVirtualTokens, d, c.encoderHiddenSize ?? d, kvWidth(model, c), rng)
      : tableEncoder(c.numVirtualTokens, kvWidth(model, c), rng);
  },
  encoderParams: (c, model) => {
    const d = c.tokenDim ?? model.config.nEmbd;
    return c.prefixProjection
      ? encoderParams.prefixMlp(c.numVirtualTokens, d, c.encoderHiddenSize ?? d, kvWidth(model, c))
      : encoderParams.table(c.numVirtualTokens, kvWidth(model, c));
  },
};

export const prefixTuning = promptLearningMethod<PrefixTuningConfig>({
  info: prefixTuningInfo,
  ...prefixSpec,
});
