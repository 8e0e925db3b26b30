/**
 * P-tuning v2 (Liu et al. 2022, "P-Tuning v2: Prompt Tuning Can Be Comparable to Fine-tuning
 * Universally Across Scales and Tasks"): deep prompts, i.e. trained keys and values at every layer,
 * plus a randomly initialised linear head on top, for classification and tagging. PEFT implements
 * it as prefix tuning (its docs say so), so the config and the saved files are PrefixTuningConfig's
 * and load in Python as PREFIX_TUNING; the paper's optional reparameterisation is prefixProjection.
 * Two fields are ours, for the paper's head ablation: `verbalizer` classifies with label words read
 * off the frozen LM head instead of the linear head (Python's PEFT ignores both fields).
 */
import { PeftConfigError } from '../../errors';
import type { DecoderModel } from '../../model/decoder';
import type { PrefixTuningConfig } from '../prefix-tuning/config';
import { prefixTuningDefaults, validatePrefixTuning } from '../prefix-tuning/config';
import type { TaskType } from '../../data/tasks/registry';

export interface PTuningV2Config extends PrefixTuningConfig {
  /** Classify with the label words' LM-head logits (no trained head) instead of a linear head. */
  verbalizer: boolean;
  /** The label words' token ids, one per class, recorded when the verbalizer is made (saved with the adapter). */
  verbalizerTokenIds: number[] | null;
}

export function pTuningV2Defaults(taskType: TaskType): PTuningV2Config {
  const base = prefixTuningDefaults(taskType);
  return {
    ...base,
    // The verbalizer has no head to save; the linear head is saved as PEFT's modules_to_save.
    verbalizer: false,
    verbalizerTokenIds: null,
  };
}

export function validatePTuningV2(c: PTuningV2Config, model?: DecoderModel): void {
  validatePrefixTuning(c, model);
  if (c.verbalizerTokenIds !== null && !c.verbalizer) {
    throw new PeftConfigError(
      'verbalizerTokenIds is set but verbalizer is false: set verbalizer true or drop the ids',
    );
  }
}
