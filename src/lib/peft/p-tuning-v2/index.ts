/**
 * P-tuning v2's registry entry: prefix tuning's deep prompts with a linear head or a verbalizer,
 * for SEQ_CLS and TOKEN_CLS only (see config.ts). Its files are PREFIX_TUNING's, so they load in
 * Python as prefix tuning; here the verbalizer fields bring the verbalizer back.
 */
import { prefixSpec } from '../prefix-tuning';
import { promptLearningMethod } from '../prompt-learning/method';
import type { PTuningV2Config } from './config';
import { pTuningV2Defaults, validatePTuningV2 } from './config';

export const pTuningV2 = promptLearningMethod<PTuningV2Config>({
  ...(prefixSpec as unknown as Omit<Parameters<typeof promptLearningMethod<PTuningV2Config>>[0], 'cliName'>),
  cliName: 'p-tuning-v2',
  defaults: pTuningV2Defaults,
  validate: validatePTuningV2,
});
