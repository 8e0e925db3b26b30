/**
 * AdaLoRA settings with PEFT's names and defaults (peft/tuners/adalora/config.py, AdaLoraConfig).
 * Zhang et al. 2023, "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning".
 */
import { PeftConfigError } from '../../errors';
import type { DecoderModel } from '../../model/decoder';
import { linearShape } from '../../model/family';
import { targetedSites } from '../inject';
import type { LoraConfig } from '../lora/config';
import { loraDefaults, validateLora } from '../lora/config';
import type { TaskType } from '../../data/tasks/registry';

export interface AdaLoraConfig extends Omit<LoraConfig, 'peftType'> {
  peftType: 'ADALORA';
  /** Average rank per matrix the budget shrinks to. */
  targetR: number;
  /** Rank every matrix starts with. */
  initR: number;
  /** Steps of warm-up before the budget starts to shrink. */
  tinit: number;
  /** Final steps trained at the target budget with the rank pattern fixed. */
  tfinal: number;
  /** Steps between two budget allocations. */
  deltaT: number;
  /** Smoothing of the sensitivity (EMA of |w * grad|). */
  beta1: number;
  /** Smoothing of its uncertainty (EMA of the deviation from the smoothed sensitivity). */
  beta2: number;
  /** Weight of the orthogonal regulariser ||P^T P - I||_F + ||Q Q^T - I||_F added to the loss. */
  orthRegWeight: number;
  /** Total training steps; the budget schedule needs it (the Lab fills it from the run's steps). */
  totalStep: number | null;
  /** Which singular values each matrix keeps, by module name (written when the budget has moved). */
  rankPattern: Record<string, boolean[]> | null;
}

export function adaloraDefaults(taskType: TaskType): AdaLoraConfig {
  const { peftType: _lora, ...lora } = loraDefaults(taskType);
  return {
    ...lora,
    peftType: 'ADALORA',
    // AdaLoraConfig's r is unused (init_r sets the starting rank); PEFT keeps LoRA's default 8.
    targetR: 8,
    initR: 12,
    tinit: 0,
    tfinal: 0,
    deltaT: 1,
    beta1: 0.85,
    beta2: 0.85,
    orthRegWeight: 0.5,
    totalStep: null,
    rankPattern: null,
  };
}

export function validateAdalora(c: AdaLoraConfig, model?: DecoderModel): void {
  // LoRA's own checks cover alpha, dropout, targets, bias and heads; r is unused here.
  if (c.useDora) throw new PeftConfigError('useDora: AdaLoRA has no DoRA variant (as in PEFT): use LoRA');
  validateLora({ ...c, peftType: 'LORA', r: 1 }, model);
  const posInt = (field: keyof AdaLoraConfig, v: number, min: number): void => {
    if (!Number.isInteger(v) || v < min) {
      throw new PeftConfigError(`${field} must be an integer >= ${min}, got ${v}`);
    }
  };
  posInt('initR', c.initR, 1);
  posInt('targetR', c.targetR, 1);
  posInt('tinit', c.tinit, 0);
  posInt('tfinal', c.tfinal, 0);
  posInt('deltaT', c.deltaT, 1);
  if (c.targetR > c.initR) {
    throw new PeftConfigError(
      `targetR ${c.targetR} is larger than initR ${c.initR}: the budget only shrinks`,
    );
  }
  for (const [f, v] of [
    ['beta1', c.beta1],
    ['beta2', c.beta2],
  ] as const) {
    if (!(v >= 0 && v < 1)) throw new PeftConfigError(`${f} must be in [0, 1), got ${v}`);
  }
  if (!(c.orthRegWeight >= 0)) {
    throw new PeftConfigError(`orthRegWeight must be >= 0, got ${c.orthRegWeight}`);
  }
  // A saved adapter (inference mode) is done training: its budget schedule no longer runs.
  if (!c.inferenceMode) checkSchedule(c);
  if (model) {
    const sites = targetedSites(model.config, c.targetModules, c.layersToTransform);
    const smallest = Math.min(...sites.map((s) => Math.min(...linearShape(model.config, s.module))));
    if (c.initR > smallest) {
      throw new PeftConfigError(
        `initR ${c.initR} is larger than the model width ${smallest}: choose initR <= ${smallest}`,
      );
    }
  }
}

/** totalStep must be set and leave steps between tinit and totalStep - tfinal for the budget to move. */
function checkSchedule(c: AdaLoraConfig): void {
  if (c.totalStep === null || !Number.isInteger(c.totalStep) || c.totalStep < 1) {
    throw new PeftConfigError(
      `totalStep must be the number of training steps (a positive integer), got ${c.totalStep}: the budget schedule needs it`,
    );
  }
  if (c.tinit >= c.totalStep - c.tfinal) {
    throw new PeftConfigError(
      `tinit ${c.tinit} + tfinal ${c.tfinal} leave no steps for the budget to move in totalStep ${c.totalStep}: make tinit + tfinal < totalStep`,
    );
  }
}
