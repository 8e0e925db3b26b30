/**
 * P-tuning v2 (Liu et al. 2022, "P-Tuning v2: Prompt Tuning Can Be Comparable to Fine-tuning
 * Universally Across Scales and Tasks"): deep prompts, i.e. trained keys and values at every layer,
 * plus a randomly initialised linear head on top, for classification and tagging. PEFT implements
 * it as prefix tuning (its docs say so), so the config and the saved files are PrefixTuningConfig's
 * and load in Python as PREFIX_TUNING; the paper's optional reparameterisation is prefixProjection.
 */
import type { PrefixTuningConfig } from '../prefix-tuning/config';
import { prefixTuningDefaults } from '../prefix-tuning/config';
import type { TaskType } from '../types';

export function pTuningV2Defaults(taskType: TaskType): PrefixTuningConfig {
  // The paper's prompt lengths for simple classification are short; 10 fits our 256 positions.
  return prefixTuningDefaults(taskType);
}
