/**
 * Equal-budget races: each method sized to about the same number of trainable parameters, so a
 * race compares methods rather than sizes. Each method names its size knob in its description
 * (LoRA's r, AdaLoRA's initR, the number of virtual tokens, a prompt encoder's hidden size; see
 * peft/method-info.ts SizeKnob); the knob's value whose
 * count (the method's own countParams, the task head left out, as it is the same for every method)
 * comes closest to the target is chosen. A method without a knob (IA3, full fine-tuning) keeps its size.
 */
import type { DecoderModel } from '../model/decoder';
import { methodByCliName } from '../peft/registry';
import { withFamilyDefaults } from '../train/plan';
import type { PeftConfigBase } from '../peft/types';
import type { TaskType } from '../data/tasks/registry';

export interface SizedConfig {
  config: Record<string, unknown>;
  /** Trainable parameters of the adapter at that size (head not counted). */
  params: number;
  /** The field that was set, or null when the method has no size knob. */
  knob: string | null;
}

/** The default budget: prompt tuning's default soft prompt on this model (n virtual tokens x width). */
export function defaultBudget(model: DecoderModel, taskType: TaskType): number {
  const m = methodByCliName('prompt-tuning');
  return m.countParams(model, m.defaults(taskType));
}

/** The method's config (over `overrides`) with its size knob set so its count is closest to `target`. */
export function sizeToBudget(
  model: DecoderModel,
  methodName: string,
  overrides: Record<string, unknown>,
  taskType: TaskType,
  target: number,
  seqLen: number,
): SizedConfig {
  const method = methodByCliName(methodName);
  // The family's defaults (PEFT's target modules for llama are q_proj and v_proj, not c_attn).
  const defaults = withFamilyDefaults(method.defaults(taskType), model);
  // The overrides are a form's fields (unchecked here: the method validates the config it runs).
  const merge = (set: Record<string, unknown>): PeftConfigBase => ({ ...defaults, ...set }) as PeftConfigBase;
  const base = merge(overrides);
  const count = (c: PeftConfigBase): number => method.countParams(model, c);
  const knob = method.sizeKnob(base);
  if (!knob) return { config: overrides, params: count(base), knob: null };
  let best: SizedConfig | null = null;
  // Counts grow with the knob, so the scan stops once it passes the target.
  for (let v = 1; v <= knob.max(model.config, seqLen); v++) {
    const set = { [knob.field]: v, ...(knob.with?.(v, { ...defaults }) ?? {}) };
    const params = count(merge({ ...overrides, ...set }));
    if (!best || Math.abs(params - target) < Math.abs(best.params - target)) {
      best = { config: { ...overrides, ...set }, params, knob: knob.field };
    }
    if (params >= target) break;
  }
  return best!;
}
