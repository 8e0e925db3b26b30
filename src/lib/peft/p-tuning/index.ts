/**
 * P-tuning's registry entry (Liu et al. 2021): virtual token embeddings produced by a prompt
 * encoder, an MLP or a bidirectional LSTM with an MLP head, as PEFT's PromptEncoder.
 */
import { encoderParams, lstmPromptEncoder, mlpPromptEncoder } from '../prompt-learning/encoders';
import { promptLearningMethod } from '../prompt-learning/method';
import type { PromptEncoderConfig } from './config';
import { validatePTuning } from './config';
import { pTuningInfo } from './info';

export const pTuning = promptLearningMethod<PromptEncoderConfig>({
  info: pTuningInfo,
  validate: validatePTuning,
  encoder: (c, model, rng) => {
    const d = model.config.nEmbd;
    const h = c.encoderHiddenSize ?? d;
    return c.encoderReparameterizationType === 'LSTM'
      ? lstmPromptEncoder(c.numVirtualTokens, d, h, c.encoderNumLayers, c.encoderDropout, rng)
      : mlpPromptEncoder(c.numVirtualTokens, d, h, rng);
  },
  encoderParams: (c, model) => {
    const d = model.config.nEmbd;
    const h = c.encoderHiddenSize ?? d;
    return c.encoderReparameterizationType === 'LSTM'
      ? encoderParams.lstm(c.numVirtualTokens, d, h, c.encoderNumLayers)
      : encoderParams.mlp(c.numVirtualTokens, d, h);
  },
});
