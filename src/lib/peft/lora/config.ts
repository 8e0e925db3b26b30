/**
 * LoRA settings with PEFT's names and defaults (peft/tuners/lora/config.py, LoraConfig).
 * Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models".
 */
import { PeftConfigError } from '../../errors';
import type { DecoderModel } from '../../model/decoder';
import { checkFanInFanOut } from '../inject';
import { linearShape } from '../../model/family';
import { targetedSites } from '../inject';
import type { PeftConfigBase } from '../types';
import type { TaskType } from '../../data/tasks/registry';

export interface LoraConfig extends PeftConfigBase {
  peftType: 'LORA';
  /** Rank of the update B A. */
  r: number;
  /** The update is scaled by loraAlpha / r (or / sqrt(r) with rsLoRA). */
  loraAlpha: number;
  /** Dropout on the adapter's input, during training only. */
  loraDropout: number;
  /** Module names (list: exact or suffix match) or one regex over full names. GPT-2's default is c_attn. */
  targetModules: string[] | string;
  /** True for GPT-2's Conv1D, whose weight is stored [in, out]. */
  fanInFanOut: boolean;
  /** Rank-stabilised scaling loraAlpha / sqrt(r) (Kalajdzievski 2023). */
  useRslora: boolean;
  /** DoRA: a trained magnitude per output feature times the direction of W + s B A (dora.ts). */
  useDora: boolean;
  /** How A and B start: true (PEFT's default), "pissa", "pissa_niter_N" or "olora" (weight-init.ts). */
  initLoraWeights: boolean | string;
  /** Which biases train: none, all, or only those of the targeted layers. */
  bias: 'none' | 'all' | 'lora_only';
  /** Only these layer indices get adapters (null: all). */
  layersToTransform: number[] | null;
  /** Extra modules trained in full and saved (e.g. a classification head). */
  modulesToSave: string[] | null;
}

export function loraDefaults(taskType: TaskType): LoraConfig {
  return {
    peftType: 'LORA',
    taskType,
    baseModelNameOrPath: null,
    inferenceMode: false,
    r: 8,
    loraAlpha: 8,
    loraDropout: 0.0,
    // PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING gives ["c_attn"] for gpt2.
    targetModules: ['c_attn'],
    fanInFanOut: true,
    useRslora: false,
    useDora: false,
    initLoraWeights: true,
    bias: 'none',
    layersToTransform: null,
    // PeftModelForSequenceClassification / ForTokenClassification add ["classifier", "score"] to
    // modules_to_save (whichever the model has is trained in full and saved with the adapter).
    modulesToSave: taskType === 'CAUSAL_LM' ? null : [...CLS_HEAD_MODULES],
  };
}

/** The head names PEFT puts in modules_to_save for classification tasks; the only ones we support. */
export const CLS_HEAD_MODULES = ['classifier', 'score'] as const;

export function validateLora(c: LoraConfig, model?: DecoderModel): void {
  if (!Number.isInteger(c.r) || c.r < 1)
    throw new PeftConfigError(`r must be a positive integer, got ${c.r}`);
  if (!(c.loraAlpha > 0)) throw new PeftConfigError(`loraAlpha must be positive, got ${c.loraAlpha}`);
  if (!(c.loraDropout >= 0 && c.loraDropout < 1)) {
    throw new PeftConfigError(`loraDropout must be in [0, 1), got ${c.loraDropout}`);
  }
  if (startsFromWeight(c) && (c.useDora || c.bias !== 'none')) {
    throw new PeftConfigError(
      `initLoraWeights ${JSON.stringify(c.initLoraWeights)} with ${c.useDora ? 'useDora' : `bias "${c.bias}"`} is not supported yet: use PiSSA/OLoRA with plain LoRA and bias "none"`,
    );
  }
  if (c.bias === 'all') {
    throw new PeftConfigError(
      'bias "all" (every bias of the base model, LayerNorms included) is not supported yet: use "none" or "lora_only"',
    );
  }
  if (!['none', 'lora_only'].includes(c.bias)) {
    throw new PeftConfigError(`bias must be "none" or "lora_only", got ${JSON.stringify(c.bias)}`);
  }
  if (c.modulesToSave !== null && c.modulesToSave.length > 0) {
    const other = c.modulesToSave.filter((m) => !(CLS_HEAD_MODULES as readonly string[]).includes(m));
    if (other.length > 0) {
      throw new PeftConfigError(
        `modulesToSave ${JSON.stringify(c.modulesToSave)}: only the classification heads ${JSON.stringify(CLS_HEAD_MODULES)} can be trained in full and saved, not ${JSON.stringify(other)}`,
      );
    }
    if (c.taskType === 'CAUSAL_LM') {
      throw new PeftConfigError(
        `modulesToSave ${JSON.stringify(c.modulesToSave)} needs task_type SEQ_CLS or TOKEN_CLS (a causal LM has no classification head); got ${c.taskType}`,
      );
    }
  }
  checkFanInFanOut(c.fanInFanOut, model);
  if (model) {
    const sites = targetedSites(model.config, c.targetModules, c.layersToTransform);
    // PEFT trains the base layer's bias under "all" and "lora_only"; a layer without one has none.
    const noBias = sites.find((s) => !model.weights.has(`${s.key}.bias`));
    if (c.bias !== 'none' && noBias) {
      throw new PeftConfigError(
        `bias ${JSON.stringify(c.bias)}: ${noBias.hfName} has no bias to train; use bias "none" or target layers with a bias`,
      );
    }
    for (const l of c.layersToTransform ?? []) {
      if (!Number.isInteger(l) || l < 0 || l >= model.config.nLayer) {
        throw new PeftConfigError(
          `layersToTransform: layer ${l} does not exist (the model has ${model.config.nLayer})`,
        );
      }
    }
    const smallest = Math.min(...sites.map((s) => Math.min(...linearShape(model.config, s.module))));
    if (c.r > smallest)
      throw new PeftConfigError(
        `r ${c.r} is larger than the model width ${smallest}: choose r <= ${smallest}`,
      );
  }
}

/** How LoRA starts: PEFT's default (A Kaiming-uniform, B zero), or from the base weight. */
export type LoraInit = true | 'pissa' | 'olora' | `pissa_niter_${number}`;

/** The config's init as PEFT writes it (the Lab's form and the CLI give the default as "true"). */
export function loraInit(c: { initLoraWeights: boolean | string }): LoraInit {
  const v = c.initLoraWeights;
  if (v === true || v === 'true') return true;
  if (v === 'pissa' || v === 'olora' || (typeof v === 'string' && /^pissa_niter_\d+$/.test(v)))
    return v as LoraInit;
  throw new PeftConfigError(
    `initLoraWeights ${JSON.stringify(v)} is not supported: use true (PEFT's default), "pissa", "pissa_niter_N" or "olora"`,
  );
}

/** The config with its init as PEFT's LoraConfig takes it (the bool true for the option "true"). */
export function loraPeftValues(c: LoraConfig): LoraConfig {
  return { ...c, initLoraWeights: loraInit(c) };
}

/** OLoRA's init on GPT-2's Conv1D (fanInFanOut) is the one LoRA config PEFT 0.21 cannot take. */
export function loraPeftRefusal(c: LoraConfig): string | null {
  // PEFT 0.21's olora_init ignores fan_in_fan_out and fails on GPT-2's Conv1D with a shape error.
  return c.initLoraWeights === 'olora' && c.fanInFanOut
    ? `LoRA with initLoraWeights "olora" on a fan-in-fan-out model (GPT-2's Conv1D) fails in PEFT 0.21, whose OLoRA init ignores fan_in_fan_out: export with initLoraWeights "pissa" or true, or on a Llama-family model`
    : null;
}

/** Whether the init starts from the base weight (and so is saved converted to plain LoRA). */
export function startsFromWeight(c: { initLoraWeights: boolean | string }): boolean {
  return loraInit(c) !== true;
}
