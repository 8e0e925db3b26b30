/**
 * The head a classification run gets, chosen from the config, never from the method's name: a
 * trained linear head (PEFT's modules_to_save) unless the config asks for a verbalizer
 * (P-tuning v2's option), whose label words are turned into token ids once and kept in the config,
 * so a saved adapter rebuilds the same head without a tokenizer.
 */
import { PeftConfigError } from '../errors';
import type { DecoderModel } from '../model/decoder';
import type { ClsTask, TaskHead } from '../model/heads';
import { ClsHead, VerbalizerHead, headModule, verbalizerTokenIds } from '../model/heads';
import type { PeftConfigBase, VerbalizerFields } from './types';

/** Fills the verbalizer's token ids from the class names (the label words) when the config wants one. */
export function withHeadConfig<C extends PeftConfigBase>(
  config: C,
  labels: readonly string[],
  encode: (text: string) => number[],
): C {
  const v = config as C & VerbalizerFields;
  if (!v.verbalizer || v.verbalizerTokenIds) return config;
  try {
    return { ...config, verbalizerTokenIds: verbalizerTokenIds(encode, labels) };
  } catch (e) {
    throw new PeftConfigError(`verbalizer: ${(e as Error).message}`);
  }
}

/** A verbalizer for a config that has its token ids, else a new linear head of numLabels classes. */
export function headFor(
  model: DecoderModel,
  config: PeftConfigBase,
  task: ClsTask,
  numLabels: number,
  seed: number,
): TaskHead {
  const ids = (config as VerbalizerFields).verbalizerTokenIds;
  // The Llama family's token head is `score`, GPT-2's `classifier` (checked against transformers in
  // model/llama-heads.test.ts).
  if (!ids) return new ClsHead(task, model.config.nEmbd, numLabels, seed, headModule(model.family, task));
  if (ids.length !== numLabels) {
    throw new PeftConfigError(
      `verbalizerTokenIds has ${ids.length} tokens but the task has ${numLabels} classes: one label word per class`,
    );
  }
  return new VerbalizerHead(task, model, ids);
}

/** Classes of a saved verbalizer adapter, or null when its head is a saved linear one. */
export function verbalizerClasses(config: PeftConfigBase): number | null {
  return (config as VerbalizerFields).verbalizerTokenIds?.length ?? null;
}
