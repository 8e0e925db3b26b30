/**
 * VeRA (Kopiczko et al. 2024, "VeRA: Vector-based Random Matrix Adaptation"): one pair of frozen
 * random projections A [r, in_max], B [out_max, r] shared by every adapted layer, and two trained
 * vectors per layer, lambda_d [r] and lambda_b [out] (peft/tuners/vera: VeraConfig, VeraLayer).
 * Its settings with PEFT's names and defaults, and its facts (tfjs-free), as every method's info.ts.
 */
import { PeftConfigError } from '../../errors';
import type { DecoderModel } from '../../model/decoder';
import type { TaskType } from '../../data/tasks/registry';
import { linearShape } from '../../model/family';
import { targetedSites } from '../inject';
import type { MethodInfo } from '../method-info';
import { LORA_DROPOUT, TARGETS } from '../method-info';
import type { PeftConfigBase } from '../types';

export interface VeraConfig extends PeftConfigBase {
  peftType: 'VERA';
  /** Rank of the shared projections (PEFT's default is 256: the vectors, not r, set the size). */
  r: number;
  /** Layers that get the update (list: exact or suffix match; or one regex). GPT-2's default is c_attn. */
  targetModules: string[] | string;
  /** Seed of the shared projections (PEFT draws them with torch's generator from it). */
  projectionPrngKey: number;
  /** Save the projections in the file (PEFT's default); without them PEFT redraws them with torch. */
  saveProjection: boolean;
  /** Dropout on the adapter's input while training. */
  veraDropout: number;
  /** Where lambda_d starts (lambda_b starts at zero, so the model starts unchanged). */
  dInitial: number;
  /** True for GPT-2's Conv1D, whose weight is stored [in, out]. */
  fanInFanOut: boolean;
  /** Which biases train: only "none" here. */
  bias: 'none' | 'all' | 'vera_only';
  /** Extra modules trained in full and saved (the classification head). */
  modulesToSave: string[] | null;
  /**
   * PEFT's init (lambda_d at dInitial, lambda_b at zero). False (random lambdas in PEFT, a model
   * that starts changed) is read from files but trains from PEFT's init: loaded weights replace it.
   */
  initWeights: boolean;
  /** Only these layer indices get adapters (null: all). */
  layersToTransform: number[] | null;
}

export function veraDefaults(taskType: TaskType): VeraConfig {
  return {
    peftType: 'VERA',
    taskType,
    baseModelNameOrPath: null,
    inferenceMode: false,
    r: 256,
    // TRANSFORMERS_MODELS_TO_VERA_TARGET_MODULES_MAPPING for gpt2.
    targetModules: ['c_attn'],
    projectionPrngKey: 0,
    saveProjection: true,
    veraDropout: 0,
    dInitial: 0.1,
    fanInFanOut: true,
    bias: 'none',
    modulesToSave: taskType === 'CAUSAL_LM' ? null : ['classifier', 'score'],
    initWeights: true,
    layersToTransform: null,
  };
}

export function validateVera(c: VeraConfig, model?: DecoderModel): void {
  if (!Number.isInteger(c.r) || c.r < 1)
    throw new PeftConfigError(`r must be a positive integer, got ${c.r}`);
  if (!(c.veraDropout >= 0 && c.veraDropout < 1))
    throw new PeftConfigError(`veraDropout must be in [0, 1), got ${c.veraDropout}`);
  if (!Number.isInteger(c.projectionPrngKey))
    throw new PeftConfigError(`projectionPrngKey must be an integer, got ${c.projectionPrngKey}`);
  if (!c.saveProjection) {
    throw new PeftConfigError(
      "saveProjection false: PEFT would redraw the projections with torch's generator, which PEFT Lab cannot reproduce; keep saveProjection true",
    );
  }
  if (c.bias !== 'none')
    throw new PeftConfigError(`bias ${JSON.stringify(c.bias)} is not supported for VeRA yet: use "none"`);
  if (!c.fanInFanOut)
    throw new PeftConfigError(
      'fanInFanOut must be true for GPT-2: its Conv1D layers store weights as [in, out]',
    );
  if (c.modulesToSave !== null && c.modulesToSave.length > 0 && c.taskType === 'CAUSAL_LM') {
    throw new PeftConfigError(
      `modulesToSave ${JSON.stringify(c.modulesToSave)} needs task_type SEQ_CLS or TOKEN_CLS; got ${c.taskType}`,
    );
  }
  if (model) veraDims(model, c);
}

/** The adapted layers with their [in, out], and the shared projections' in_max and out_max. */
export function veraDims(
  model: DecoderModel,
  c: VeraConfig,
): { sites: ReturnType<typeof targetedSites>; shapes: [number, number][]; inMax: number; outMax: number } {
  const sites = targetedSites(model.config, c.targetModules, c.layersToTransform);
  const shapes = sites.map((s) => linearShape(model.config, s.module));
  return {
    sites,
    shapes,
    inMax: Math.max(...shapes.map((s) => s[0])),
    outMax: Math.max(...shapes.map((s) => s[1])),
  };
}

export const veraInfo: MethodInfo<VeraConfig> = {
  cliName: 'vera',
  label: 'VeRA',
  peftType: 'VERA',
  kind: 'inject',
  taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
  summary: 'Shared frozen random projections A, B; each layer trains only two scaling vectors.',
  // Only scales train, on fixed random directions: VeRA's paper uses rates 10-100 times LoRA's.
  defaultLr: 1e-2,
  defaults: veraDefaults,
  fields: [
    { field: 'r', doc: 'Rank of the shared random projections', type: 'int', min: 1, max: 1024 },
    { ...LORA_DROPOUT, field: 'veraDropout' },
    { field: 'dInitial', doc: 'Where lambda_d starts', type: 'number', min: 0 },
    { field: 'projectionPrngKey', doc: 'Seed of the shared projections', type: 'int', min: 0 },
    TARGETS,
  ],
  // r adds one lambda_d entry per layer: the count grows with it, if slowly.
  sizeKnob: () => ({ field: 'r', max: () => 4096 }),
  ledger: { profile: () => 'vera', rank: (c) => c.r },
  capabilities: {},
};
