/**
 * BOFT (Liu et al. 2024, "Parameter-Efficient Orthogonal Finetuning via Butterfly Factorization"):
 * OFT whose orthogonal matrix is a product of butterfly factors, each a block-diagonal rotation
 * between two fixed permutations, M = B_m ... B_0, B_i = P_i diag(R_i) P_i^T, so few small blocks
 * still mix every input dimension; the layer's input is rotated by M and its output (less the bias)
 * scaled per channel by a trained s (peft/tuners/boft: BOFTConfig in config.py, BOFTLayer and
 * Linear in layer.py). Its settings with PEFT's names and defaults, and its facts (tfjs-free).
 */
import { PeftConfigError } from '../../errors';
import type { DecoderModel } from '../../model/decoder';
import type { TaskType } from '../../data/tasks/registry';
import { linearShape, mlpWidth } from '../../model/family';
import { targetedSites } from '../inject';
import type { MethodInfo } from '../method-info';
import { TARGETS, conv1dRefusal } from '../method-info';
import type { PeftConfigBase } from '../types';

export interface BOFTConfig extends PeftConfigBase {
  peftType: 'BOFT';
  /** Size of each block (0: from boftBlockNum); exactly one of the two is non-zero. */
  boftBlockSize: number;
  /** Blocks per factor (0: from boftBlockSize). */
  boftBlockNum: number;
  /** Butterfly factors (1: OFT with a scale). */
  boftNButterflyFactor: number;
  /** Module names (list: exact or suffix match) or one regex over full names. */
  targetModules: string[] | string;
  /** While training, the share of one random factor's blocks set to the identity. */
  boftDropout: number;
  /** How the base layer stores its weight; PEFT sets it false for nn.Linear. */
  fanInFanOut: boolean;
  /** Which biases train: only "none" here. */
  bias: 'none' | 'all' | 'boft_only';
  /** Extra modules trained in full and saved (the classification head). */
  modulesToSave: string[] | null;
  /** PEFT's init (R zero, s one: the model starts unchanged); false: R ~ N(0, 0.1²), s ~ N(1, 0.1²). */
  initWeights: boolean;
  /** Only these layer indices get adapters (null: all). */
  layersToTransform: number[] | null;
}

export function boftDefaults(taskType: TaskType): BOFTConfig {
  return {
    peftType: 'BOFT',
    taskType,
    baseModelNameOrPath: null,
    inferenceMode: false,
    boftBlockSize: 4,
    boftBlockNum: 0,
    boftNButterflyFactor: 1,
    // TRANSFORMERS_MODELS_TO_BOFT_TARGET_MODULES_MAPPING copies LoRA's: c_attn for gpt2.
    targetModules: ['c_attn'],
    boftDropout: 0,
    fanInFanOut: false,
    bias: 'none',
    modulesToSave: taskType === 'CAUSAL_LM' ? null : ['classifier', 'score'],
    initWeights: true,
    layersToTransform: null,
  };
}

/** One layer's butterfly: factors (m + 1), blocks per factor and block size. */
export interface BoftShape {
  factors: number;
  blockNum: number;
  blockSize: number;
}

/**
 * A layer's shape as PEFT's update_layer computes it, or why PEFT refuses the layer (its checks,
 * in its order: no adjustment as OFT's, a size that does not fit is an error).
 */
export function boftShape(c: BOFTConfig, inDim: number): BoftShape | string {
  const m = c.boftNButterflyFactor - 1;
  let num = c.boftBlockNum;
  let size = c.boftBlockSize;
  if (size === 0) {
    if (inDim % num !== 0) return `the input width ${inDim} is not divisible by boftBlockNum ${num}`;
    if (m > 0 && (m > Math.floor(Math.log2(num)) || num % 2 ** m !== 0)) {
      return `boftNButterflyFactor ${m + 1} does not fit boftBlockNum ${num} (it needs a multiple of ${2 ** m})`;
    }
    size = inDim / num;
  } else {
    if (inDim % size !== 0) return `the input width ${inDim} is not divisible by boftBlockSize ${size}`;
    if (m > 0 && inDim % (size * 2 ** m) !== 0) {
      return `boftNButterflyFactor ${m + 1} with boftBlockSize ${size} needs the input width ${inDim} to be a multiple of ${size * 2 ** m}`;
    }
    num = inDim / size;
  }
  if (m > 0 && (num % 2 !== 0 || size % 2 !== 0)) {
    return `with boftNButterflyFactor ${m + 1} the blocks per factor (${num}) and their size (${size}) must be even`;
  }
  return { factors: m + 1, blockNum: num, blockSize: size };
}

/** boft_R [factors, num, size, size] and boft_s [out, 1] of one layer. */
export function boftLayerParams(s: BoftShape, outDim: number): number {
  return s.factors * s.blockNum * s.blockSize * s.blockSize + outDim;
}

export function validateBoft(c: BOFTConfig, model?: DecoderModel): void {
  for (const f of ['boftBlockSize', 'boftBlockNum'] as const) {
    if (!Number.isInteger(c[f]) || c[f] < 0)
      throw new PeftConfigError(`${f} must be a non-negative integer, got ${c[f]}`);
  }
  // BOFTConfig.__post_init__: block size x block number = in_features, so one of them is given.
  if ((c.boftBlockSize === 0) === (c.boftBlockNum === 0)) {
    throw new PeftConfigError(
      `set exactly one of boftBlockSize (${c.boftBlockSize}) and boftBlockNum (${c.boftBlockNum}) and the other to 0: their product is the layer's input width`,
    );
  }
  if (!Number.isInteger(c.boftNButterflyFactor) || c.boftNButterflyFactor < 1) {
    throw new PeftConfigError(
      `boftNButterflyFactor must be a positive integer, got ${c.boftNButterflyFactor}`,
    );
  }
  if (!(c.boftDropout >= 0 && c.boftDropout < 1))
    throw new PeftConfigError(`boftDropout must be in [0, 1), got ${c.boftDropout}`);
  if (c.bias !== 'none')
    throw new PeftConfigError(`bias ${JSON.stringify(c.bias)} is not supported for BOFT yet: use "none"`);
  if (c.modulesToSave !== null && c.modulesToSave.length > 0 && c.taskType === 'CAUSAL_LM') {
    throw new PeftConfigError(
      `modulesToSave ${JSON.stringify(c.modulesToSave)} needs task_type SEQ_CLS or TOKEN_CLS; got ${c.taskType}`,
    );
  }
  if (model) {
    if (c.fanInFanOut && model.family !== 'gpt2') {
      throw new PeftConfigError(
        `fanInFanOut must be false for ${model.family}: its nn.Linear layers store weights as [out, in]`,
      );
    }
    for (const l of c.layersToTransform ?? []) {
      if (!Number.isInteger(l) || l < 0 || l >= model.config.nLayer) {
        throw new PeftConfigError(
          `layersToTransform: layer ${l} does not exist (the model has ${model.config.nLayer})`,
        );
      }
    }
    for (const s of targetedSites(model.config, c.targetModules, c.layersToTransform)) {
      const shape = boftShape(c, linearShape(model.config, s.module)[0]);
      if (typeof shape === 'string') throw new PeftConfigError(`boftBlockSize: ${s.hfName}: ${shape}`);
    }
  }
}

/**
 * Trainable parameters over the targeted layers; NaN where PEFT refuses a layer's sizes, so an
 * equal-budget scan passes over block sizes that do not divide the layers (validate names why).
 */
export function boftParamCount(model: DecoderModel, c: BOFTConfig): number {
  let n = 0;
  for (const s of targetedSites(model.config, c.targetModules, c.layersToTransform)) {
    const [inDim, outDim] = linearShape(model.config, s.module);
    const shape = boftShape(c, inDim);
    if (typeof shape === 'string') return NaN;
    n += boftLayerParams(shape, outDim);
  }
  return n;
}

export const boftInfo: MethodInfo<BOFTConfig> = {
  cliName: 'boft',
  label: 'BOFT',
  peftType: 'BOFT',
  kind: 'inject',
  taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
  summary: 'OFT whose rotation is a product of butterfly factors, plus a per-channel output scale.',
  defaultLr: 3e-3,
  defaults: boftDefaults,
  fields: [
    { field: 'boftBlockSize', doc: 'Size of each block (0: from the number)', type: 'int', min: 0, max: 256 },
    { field: 'boftBlockNum', doc: 'Blocks per factor (0: from the size)', type: 'int', min: 0 },
    { field: 'boftNButterflyFactor', doc: 'Butterfly factors (1: OFT)', type: 'int', min: 1, max: 8 },
    {
      field: 'boftDropout',
      doc: "Share of one factor's blocks set to the identity while training",
      type: 'number',
      min: 0,
      max: 0.9,
      step: 0.05,
    },
    TARGETS,
  ],
  peftRefusal: conv1dRefusal('BOFT'),
  // Per layer factors x in x size + out: the count grows with the block size (boftBlockNum then 0).
  sizeKnob: () => ({
    field: 'boftBlockSize',
    max: (m) => Math.max(m.nEmbd, mlpWidth(m)),
    with: () => ({ boftBlockNum: 0 }),
  }),
  // The ledger's rank is the block size (blocks sized by their number: 1 stands in, as OFT's).
  ledger: { profile: () => 'boft', rank: (c) => c.boftBlockSize || 1 },
  capabilities: {},
};
