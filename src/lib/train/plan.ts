/**
 * Everything between "this method, these settings, this task" and an adapter ready to train, in
 * one place, so the Lab, the CLI and a race refuse the same things with the same words: the
 * method/task pair, AdaLoRA's totalStep from the run, the method's own validation, virtual tokens
 * that overrun the positions, a verbalizer's label words, and the classification head.
 */
import type { TaskInfo } from '../data/tasks/registry';
import type { DecoderModel } from '../model/decoder';
import { familyDefaults } from '../model/family';
import { checkRunFits, checkTaskSupported, configForRun } from '../peft/catalog';
import { methodByCliName } from '../peft/registry';
import { headFor, withHeadConfig } from '../peft/task-head';
import type { Adapter, PeftConfigBase, PeftMethod } from '../peft/types';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import { PeftConfigError } from '../errors';

export interface RunShape {
  /** Optimizer steps the run is scheduled for (AdaLoRA's totalStep, the LR schedule). */
  steps: number;
  seqLen: number;
  seed: number;
}

/** A method's defaults (GPT-2's target modules) with those PEFT picks for the model's family. */
export function withFamilyDefaults<C extends PeftConfigBase>(defaults: C, model: DecoderModel): C {
  return { ...defaults, ...familyDefaults(defaults.peftType, model.family) };
}

/** A checked method config for a task, before any tensor exists. */
export function planAdapter(
  model: DecoderModel,
  methodName: string,
  overrides: Record<string, unknown>,
  info: TaskInfo,
  run: RunShape,
  modelId: string,
): { method: PeftMethod<PeftConfigBase>; config: PeftConfigBase } {
  const method = methodByCliName(methodName);
  checkTaskSupported(method.cliName, info.taskType);
  const config = configForRun(
    {
      ...withFamilyDefaults(method.defaults(info.taskType), model),
      ...overrides,
      baseModelNameOrPath: modelId,
    } as PeftConfigBase,
    run.steps,
  );
  method.validate(config, model);
  checkRunFits(config, run.seqLen, model.config.nPositions);
  return { method, config };
}

/**
 * Builds the adapter on the model (seeded by run.seed) and, for a classification task, its head:
 * a linear head seeded by run.seed + 1 (so its draw differs from the adapter's) or the verbalizer
 * the config asks for.
 */
export function createAdapter(
  model: DecoderModel,
  tokenizer: TextTokenizer,
  method: PeftMethod<PeftConfigBase>,
  config: PeftConfigBase,
  info: TaskInfo,
  seed: number,
): Adapter {
  const encode = (t: string): number[] => tokenizer.encode(t);
  const cfg = info.taskType === 'CAUSAL_LM' ? config : withHeadConfig(config, info.labels, encode);
  const adapter = method.create(model, cfg, seed, { tokenize: encode });
  if (info.taskType === 'CAUSAL_LM') return adapter;
  try {
    if (!adapter.attachHead)
      throw new PeftConfigError(
        `${method.label} cannot carry a classification head: pick another method for ${info.title}`,
      );
    adapter.attachHead(headFor(model, cfg, info.taskType, info.labels.length, seed + 1));
  } catch (e) {
    adapter.dispose();
    throw e;
  }
  return adapter;
}
