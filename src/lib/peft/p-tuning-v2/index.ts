/**
 * P-tuning v2's registry entry: prefix tuning's deep prompts with a linear head or a verbalizer,
 * for SEQ_CLS and TOKEN_CLS only (see config.ts). Its files are PREFIX_TUNING's, so they load in
 * Python as prefix tuning; here the verbalizer fields bring the verbalizer back.
 */
import { prefixSpec } from '../prefix-tuning';
import { promptLearningMethod } from '../prompt-learning/method';
import type { PTuningV2Config } from './config';
import { validatePTuningV2 } from './config';
import { pTuningV2Info } from './info';

export const pTuningV2 = promptLearningMethod<PTuningV2Config>({
  ...prefixSpec,
  info: pTuningV2Info,
  validate: validatePTuningV2,
});
