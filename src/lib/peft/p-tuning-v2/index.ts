/**
 * P-tuning v2's registry entry: prefix tuning's deep prompts with a linear head, for SEQ_CLS and
 * TOKEN_CLS only (see config.ts). Its files are PREFIX_TUNING's, so they load back as prefix tuning.
 */
import { prefixSpec } from '../prefix-tuning';
import type { PrefixTuningConfig } from '../prefix-tuning/config';
import { promptLearningMethod } from '../prompt-learning/method';
import { pTuningV2Defaults } from './config';

export const pTuningV2 = promptLearningMethod<PrefixTuningConfig>({
  ...prefixSpec,
  cliName: 'p-tuning-v2',
  defaults: pTuningV2Defaults,
});
