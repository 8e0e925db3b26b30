/**
 * Equal-budget races: each method sized to about the same number of trainable parameters, so a
 * race compares methods rather than sizes. Each method has one size knob (LoRA's r, AdaLoRA's
 * initR, the number of virtual tokens, a prompt encoder's hidden size); the knob's value whose
 * count (the method's own countParams, the task head left out, as it is the same for every method)
 * comes closest to the target is chosen. IA3 and full fine-tuning have no knob and keep their size.
 */
import type { Gpt2Model } from '../model/gpt2';
import { methodByCliName } from '../peft/registry';
import type { PeftConfigBase } from '../peft/types';
import type { TaskType } from '../data/tasks/registry';

export interface SizedConfig {
  config: Record<string, unknown>;
  /** Trainable parameters of the adapter at that size (head not counted). */
  params: number;
  /** The field that was set, or null when the method has no size knob. */
  knob: string | null;
}

interface Knob {
  field: string;
  max(model: Gpt2Model, seqLen: number): number;
  /** Other fields that follow the knob (AdaLoRA's targetR keeps its ratio to initR). */
  with?(value: number, defaults: Record<string, unknown>): Record<string, unknown>;
}

const virtualTokens: Knob = {
  field: 'numVirtualTokens',
  max: (model, seqLen) => Math.max(1, model.config.nPositions - seqLen),
};
const encoderHidden: Knob = { field: 'encoderHiddenSize', max: () => 4096 };

function knobFor(method: string, config: Record<string, unknown>): Knob | null {
  switch (method) {
    case 'lora':
      return { field: 'r', max: () => 256 };
    case 'adalora':
      return {
        field: 'initR',
        max: () => 256,
        with: (v, d) => ({
          targetR: Math.max(1, Math.round((v * Number(d.targetR)) / Number(d.initR))),
        }),
      };
    case 'prompt-tuning':
    case 'p-tuning-v2':
      return virtualTokens;
    case 'prefix-tuning':
      return config.prefixProjection ? encoderHidden : virtualTokens;
    case 'p-tuning':
      return encoderHidden;
    default:
      return null;
  }
}

/** The default budget: prompt tuning's default soft prompt on this model (n virtual tokens x width). */
export function defaultBudget(model: Gpt2Model, taskType: TaskType): number {
  const m = methodByCliName('prompt-tuning');
  return m.countParams(model, m.defaults(taskType) as never);
}

/** The method's config (over `overrides`) with its size knob set so its count is closest to `target`. */
export function sizeToBudget(
  model: Gpt2Model,
  methodName: string,
  overrides: Record<string, unknown>,
  taskType: TaskType,
  target: number,
  seqLen: number,
): SizedConfig {
  const method = methodByCliName(methodName);
  const defaults = method.defaults(taskType) as unknown as Record<string, unknown>;
  const base = { ...defaults, ...overrides };
  const count = (c: Record<string, unknown>): number =>
    method.countParams(model, c as unknown as PeftConfigBase as never);
  const knob = knobFor(method.cliName, base);
  if (!knob) return { config: overrides, params: count(base), knob: null };
  let best: SizedConfig | null = null;
  // Counts grow with the knob, so the scan stops once it passes the target.
  for (let v = 1; v <= knob.max(model, seqLen); v++) {
    const set = { [knob.field]: v, ...(knob.with?.(v, defaults) ?? {}) };
    const params = count({ ...base, ...set });
    if (!best || Math.abs(params - target) < Math.abs(best.params - target)) {
      best = { config: { ...overrides, ...set }, params, knob: knob.field };
    }
    if (params >= target) break;
  }
  return best!;
}
