/**
 * OFT (Qiu et al. 2023, "Controlling Text-to-Image Diffusion by Orthogonal Finetuning"; Liu et al.
 * 2024 for the Cayley-Neumann form): each adapted layer's input is rotated by a block-diagonal
 * orthogonal matrix before the frozen layer sees it, y = (x R) W + b, R = diag(R_1 ... R_r), each
 * block R_i = Cayley(Q_i) of a skew-symmetric Q_i whose upper triangle is trained
 * (peft/tuners/oft: OFTConfig in config.py, OFTRotationModule and OFTLayer in layer.py). The
 * rotation keeps the angles between the layer's input directions (its "hyperspherical energy").
 * Its settings with PEFT's names and defaults, and its facts (tfjs-free), as every method's info.ts.
 */
import { PeftConfigError } from '../../errors';
import type { DecoderModel } from '../../model/decoder';
import type { TaskType } from '../../data/tasks/registry';
import { linearShape, mlpWidth } from '../../model/family';
import { targetedSites } from '../inject';
import type { MethodInfo } from '../method-info';
import { TARGETS, conv1dRefusal } from '../method-info';
import type { PeftConfigBase } from '../types';

export interface OFTConfig extends PeftConfigBase {
  peftType: 'OFT';
  /** Number of blocks per layer (0: from oftBlockSize); exactly one of r and oftBlockSize is non-zero. */
  r: number;
  /** Size of each rotation block (0: from r); one that does not divide a layer's input is adjusted as PEFT does. */
  oftBlockSize: number;
  /**
   * PEFT's multiplicative dropout (blocks set to the identity while training). PEFT 0.21 builds the
   * layer but its forward never calls it (layer.py, Linear.forward), so it changes nothing there or
   * here; kept so files round-trip.
   */
  moduleDropout: number;
  /** Module names (list: exact or suffix match) or one regex over full names. */
  targetModules: string[] | string;
  /** How the base layer stores its weight; PEFT sets it false for nn.Linear. The rotation acts on the input, so it does not enter the math. */
  fanInFanOut: boolean;
  /** Which biases train: only "none" here. */
  bias: 'none' | 'all' | 'oft_only';
  /** PEFT's init (every Q zero: the identity rotation, the model starts unchanged); false: N(0, 0.1²). */
  initWeights: boolean;
  /** Only these layer indices get adapters (null: all). */
  layersToTransform: number[] | null;
  /** Extra modules trained in full and saved (the classification head). */
  modulesToSave: string[] | null;
  /** Constrained OFT: each forward first projects every block's Q onto the ball of radius eps. */
  coft: boolean;
  /** COFT's radius (divided by the square root of the number of blocks, as PEFT). */
  eps: number;
  /** One block shared by every block position of a layer. */
  blockShare: boolean;
  /** R = I + 2Q + 2Q² + ... (a truncated Neumann series) instead of the exact (I - Q)(I + Q)⁻¹. */
  useCayleyNeumann: boolean;
  /** Terms of that series. */
  numCayleyNeumannTerms: number;
}

export function oftDefaults(taskType: TaskType): OFTConfig {
  return {
    peftType: 'OFT',
    taskType,
    baseModelNameOrPath: null,
    inferenceMode: false,
    r: 0,
    oftBlockSize: 32,
    moduleDropout: 0,
    // TRANSFORMERS_MODELS_TO_OFT_TARGET_MODULES_MAPPING copies LoRA's: c_attn for gpt2.
    targetModules: ['c_attn'],
    fanInFanOut: false,
    bias: 'none',
    initWeights: true,
    layersToTransform: null,
    modulesToSave: taskType === 'CAUSAL_LM' ? null : ['classifier', 'score'],
    coft: false,
    eps: 6e-5,
    blockShare: false,
    useCayleyNeumann: true,
    numCayleyNeumannTerms: 5,
  };
}

/**
 * PEFT's `adjust_oft_parameters(in_features, params)` (layer.py): the divisor of inFeatures nearest
 * to params (the lower one on a tie), or inFeatures itself when params is not below it.
 */
export function adjustOftParameter(inFeatures: number, params: number): number {
  if (params >= inFeatures) return inFeatures;
  let higher = params;
  while (higher <= inFeatures && inFeatures % higher !== 0) higher++;
  let lower = params;
  while (lower > 1 && inFeatures % lower !== 0) lower--;
  return params - lower <= higher - params ? lower : higher;
}

/** A layer's blocks as PEFT's update_layer sizes them: r blocks of blockSize, r · blockSize = inDim. */
export function oftBlocks(c: OFTConfig, inDim: number): { r: number; blockSize: number } {
  if (c.r === 0) {
    const b = inDim % c.oftBlockSize !== 0 ? adjustOftParameter(inDim, c.oftBlockSize) : c.oftBlockSize;
    return { r: inDim / b, blockSize: b };
  }
  const r = inDim % c.r !== 0 ? adjustOftParameter(inDim, c.r) : c.r;
  return { r, blockSize: inDim / r };
}

/** oft_R.weight [r or 1 (block share), b (b - 1) / 2] of one layer. */
export function oftLayerParams(c: OFTConfig, inDim: number): number {
  const { r, blockSize: b } = oftBlocks(c, inDim);
  return (c.blockShare ? 1 : r) * ((b * (b - 1)) / 2);
}

export function validateOft(c: OFTConfig, model?: DecoderModel): void {
  for (const f of ['r', 'oftBlockSize'] as const) {
    if (!Number.isInteger(c[f]) || c[f] < 0)
      throw new PeftConfigError(`${f} must be a non-negative integer, got ${c[f]}`);
  }
  // OFTConfig.__post_init__: r x oft_block_size = in_features, so one of them is given.
  if ((c.r === 0) === (c.oftBlockSize === 0)) {
    throw new PeftConfigError(
      `set exactly one of r (${c.r}) and oftBlockSize (${c.oftBlockSize}) and the other to 0: r x oftBlockSize is the layer's input width`,
    );
  }
  if (!(c.moduleDropout >= 0 && c.moduleDropout < 1))
    throw new PeftConfigError(`moduleDropout must be in [0, 1), got ${c.moduleDropout}`);
  if (!(typeof c.eps === 'number' && c.eps > 0))
    throw new PeftConfigError(`eps must be positive, got ${c.eps}`);
  if (!Number.isInteger(c.numCayleyNeumannTerms) || c.numCayleyNeumannTerms < 1) {
    throw new PeftConfigError(
      `numCayleyNeumannTerms must be a positive integer, got ${c.numCayleyNeumannTerms}`,
    );
  }
  if (c.bias !== 'none')
    throw new PeftConfigError(`bias ${JSON.stringify(c.bias)} is not supported for OFT yet: use "none"`);
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
    targetedSites(model.config, c.targetModules, c.layersToTransform);
  }
}

/** Trainable parameters: oft_R over the targeted layers. */
export function oftParamCount(model: DecoderModel, c: OFTConfig): number {
  let n = 0;
  for (const s of targetedSites(model.config, c.targetModules, c.layersToTransform))
    n += oftLayerParams(c, linearShape(model.config, s.module)[0]);
  return n;
}

export const oftInfo: MethodInfo<OFTConfig> = {
  cliName: 'oft',
  label: 'OFT',
  peftType: 'OFT',
  kind: 'inject',
  taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
  summary: "Rotates each layer's input by a trained block-diagonal orthogonal matrix (Cayley transform).",
  defaultLr: 3e-3,
  defaults: oftDefaults,
  fields: [
    {
      field: 'oftBlockSize',
      doc: 'Size of each rotation block (0: from r)',
      type: 'int',
      min: 0,
      max: 256,
    },
    { field: 'r', doc: 'Number of blocks per layer (0: from the block size)', type: 'int', min: 0 },
    { field: 'blockShare', doc: 'One rotation block shared across each layer', type: 'bool' },
    { field: 'useCayleyNeumann', doc: 'Approximate the Cayley transform by a Neumann series', type: 'bool' },
    {
      field: 'numCayleyNeumannTerms',
      doc: 'Terms of the Neumann series',
      type: 'int',
      min: 1,
      max: 12,
      when: { field: 'useCayleyNeumann', equals: true },
    },
    { field: 'coft', doc: 'Constrained OFT: keep each rotation within eps of the identity', type: 'bool' },
    {
      field: 'eps',
      doc: "COFT's radius",
      type: 'number',
      min: 1e-6,
      when: { field: 'coft', equals: true },
    },
    TARGETS,
  ],
  peftRefusal: conv1dRefusal('OFT'),
  // The count per layer is in (b - 1) / 2: it grows with the block size (r is then 0, as PEFT
  // wants exactly one of the two). Past a layer's input width the block is that width.
  sizeKnob: () => ({
    field: 'oftBlockSize',
    max: (m) => Math.max(m.nEmbd, mlpWidth(m)),
    with: () => ({ r: 0 }),
  }),
  // The ledger's rank is the block size (its fit: race/ledger.ts); blocks sized by r have a size
  // per layer (width / r), which a config alone does not give: 1 stands in, and underestimates.
  // The exact Cayley transform's Gauss-Jordan holds tensors the series does not: its own counts.
  ledger: {
    profile: (c) => (c.useCayleyNeumann ? 'oft' : 'oft-exact'),
    rank: (c) => c.oftBlockSize || 1,
  },
  capabilities: {},
};
