/**
 * The settings and checks LoHa and LoKr share (peft/tuners/lycoris_utils.py, LycorisConfig),
 * tfjs-free so their info.ts files (and so the catalog the UI reads) reach no tensor code; the
 * layer itself is lycoris.ts.
 */
import { AdapterError, PeftConfigError } from '../errors';
import type { DecoderModel } from '../model/decoder';
import { targetedSites } from './inject';
import type { FieldSpec } from './method-info';
import { TARGETS } from './method-info';
import type { PeftConfigBase } from './types';

/** The settings LoHa and LoKr share, with PEFT's names (LycorisConfig). */
export interface LycorisConfig extends PeftConfigBase {
  /** Rank of the factors. */
  r: number;
  /** The delta is scaled by alpha / r. */
  alpha: number;
  /** While training, the probability of zeroing each output row of the delta. */
  rankDropout: number;
  /** While training, the probability of skipping a layer's whole update for a call. */
  moduleDropout: number;
  /** Module names (list: exact or suffix match) or one regex over full names. */
  targetModules: string[] | string;
  /** Only these layer indices get adapters (null: all). */
  layersToTransform: number[] | null;
  /** Extra modules trained in full and saved (the classification head). */
  modulesToSave: string[] | null;
}

/** PEFT's defaults of the shared fields (LoHaConfig, LoKrConfig). */
export function lycorisDefaults(taskType: PeftConfigBase['taskType']): Omit<LycorisConfig, 'peftType'> {
  return {
    taskType,
    baseModelNameOrPath: null,
    inferenceMode: false,
    r: 8,
    alpha: 8,
    rankDropout: 0,
    moduleDropout: 0,
    // TRANSFORMERS_MODELS_TO_LOHA/LOKR_TARGET_MODULES_MAPPING copy LoRA's: c_attn for gpt2.
    targetModules: ['c_attn'],
    layersToTransform: null,
    modulesToSave: taskType === 'CAUSAL_LM' ? null : ['classifier', 'score'],
  };
}

/** PEFT fields we do not model, at the values PEFT's save_pretrained writes. */
/** The fields LoHa and LoKr share after their own: PEFT's two dropouts and the target modules. */
export const LYCORIS_FIELDS: readonly FieldSpec[] = [
  {
    field: 'rankDropout',
    doc: 'Dropout of whole output rows of the update while training',
    type: 'number',
    min: 0,
    max: 0.9,
    step: 0.05,
  },
  {
    field: 'moduleDropout',
    doc: "Chance of skipping a layer's update in a training step",
    type: 'number',
    min: 0,
    max: 0.9,
    step: 0.05,
  },
  TARGETS,
];

export const LYCORIS_PEFT_EXTRA = {
  alpha_pattern: {},
  rank_pattern: {},
  exclude_modules: null,
  layers_pattern: null,
  revision: null,
  auto_mapping: null,
  use_effective_conv2d: false,
};

/**
 * Refuses a file whose settings we do not model (the extras above at other values), naming the
 * field: ignoring them would load a different adapter than PEFT does.
 */
export function checkLycorisJson(json: Record<string, unknown>, source: string): void {
  for (const k of ['alpha_pattern', 'rank_pattern'] as const) {
    const v = json[k];
    if (v != null && (typeof v !== 'object' || Object.keys(v).length > 0)) {
      throw new AdapterError(
        `${source}: ${k} ${JSON.stringify(v)} (per-layer ${k.split('_')[0]}) is not supported yet`,
      );
    }
  }
  if (json.exclude_modules != null) {
    throw new AdapterError(
      `${source}: exclude_modules ${JSON.stringify(json.exclude_modules)} is not supported yet: name the layers in target_modules instead`,
    );
  }
}

export function validateLycoris(c: LycorisConfig, model?: DecoderModel): void {
  if (!Number.isInteger(c.r) || c.r < 1)
    throw new PeftConfigError(`r must be a positive integer, got ${c.r}`);
  if (!(typeof c.alpha === 'number' && Number.isFinite(c.alpha)))
    throw new PeftConfigError(`alpha must be a number, got ${c.alpha}`);
  for (const f of ['rankDropout', 'moduleDropout'] as const) {
    if (!(c[f] >= 0 && c[f] < 1)) throw new PeftConfigError(`${f} must be in [0, 1), got ${c[f]}`);
  }
  if (c.modulesToSave !== null && c.modulesToSave.length > 0 && c.taskType === 'CAUSAL_LM') {
    throw new PeftConfigError(
      `modulesToSave ${JSON.stringify(c.modulesToSave)} needs task_type SEQ_CLS or TOKEN_CLS; got ${c.taskType}`,
    );
  }
  if (model) {
    for (const l of c.layersToTransform ?? []) {
      if (!Number.isInteger(l) || l < 0 || l >= model.config.nLayer) {
        throw new PeftConfigError(
          `layersToTransform: layer ${l} does not exist (the model has ${model.config.nLayer})`,
        );
      }
    }
    targetedSites(model.config, c.targetModules, c.layersToTransform);
  }
}
