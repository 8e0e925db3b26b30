/**
 * LoKr (Yeh et al. 2024, "Navigating Text-To-Image Customization: From LyCORIS Fine-Tuning to Model
 * Evaluation"; LyCORIS): the delta weight is a Kronecker product ΔW = W1 ⊗ W2 · alpha / r, with
 * out = a·b and in = c·d split by PEFT's `factorization`, W1 [a, c] and W2 [b, d]; each factor is
 * a full matrix or, where r is small against it, a rank-r product (peft/tuners/lokr: LoKrConfig,
 * LoKrLayer). Its settings with PEFT's names and defaults, and its facts (tfjs-free).
 */
import { PeftConfigError } from '../../errors';
import type { DecoderModel } from '../../model/decoder';
import type { TaskType } from '../../data/tasks/registry';
import type { MethodInfo } from '../method-info';
import { conv1dRefusal } from '../method-info';
import type { LycorisConfig } from '../lycoris-info';
import { LYCORIS_FIELDS, lycorisDefaults, validateLycoris } from '../lycoris-info';

export interface LoKrConfig extends LycorisConfig {
  peftType: 'LOKR';
  /** Factor W1 as a rank-r product too, where r < max(a, c) / 2 (W2 always is, where r < max(b, d) / 2). */
  decomposeBoth: boolean;
  /** The size a dimension's first factor aims at (-1: near its square root). */
  decomposeFactor: number;
  /** Divide rank dropout's kept rows by their mean. */
  rankDropoutScale: boolean;
  /**
   * true: PEFT's init (W1 or W1a zero, the rest Kaiming-uniform: the model starts unchanged);
   * "lycoris": W2 or W2b zero instead; false: everything random (the model starts changed).
   */
  initWeights: boolean | 'lycoris';
}

export function lokrDefaults(taskType: TaskType): LoKrConfig {
  return {
    peftType: 'LOKR',
    ...lycorisDefaults(taskType),
    decomposeBoth: false,
    decomposeFactor: -1,
    rankDropoutScale: false,
    initWeights: true,
  };
}

/**
 * PEFT's `factorization(dimension, factor)`: two numbers m <= n with m n = dimension, m the
 * divisor at most `factor` (-1: any) that makes m + n smallest, or exactly `factor` if it divides.
 */
export function factorization(dimension: number, factor = -1): [number, number] {
  if (factor > 0 && dimension % factor === 0) return [factor, dimension / factor];
  const limit = factor === -1 ? dimension : factor;
  let m = 1;
  let n = dimension;
  let length = m + n;
  while (m < n) {
    let next = m + 1;
    while (dimension % next !== 0) next++;
    const nextN = dimension / next;
    if (next + nextN > length || next > limit) break;
    m = next;
    n = nextN;
    length = m + n;
  }
  return m > n ? [n, m] : [m, n];
}

/** One layer's factor shapes and forms: W1 [a, c], W2 [b, d]; full or a rank-r product each. */
export interface KronShape {
  a: number;
  b: number;
  c: number;
  d: number;
  fullW1: boolean;
  fullW2: boolean;
}

/** What PEFT's LoKr Linear.update_layer chooses for a layer of [in, out]. */
export function kronShape(c: LoKrConfig, inDim: number, outDim: number): KronShape {
  const [a, b] = factorization(outDim, c.decomposeFactor);
  const [cc, d] = factorization(inDim, c.decomposeFactor);
  return {
    a,
    b,
    c: cc,
    d,
    fullW1: !(c.decomposeBoth && c.r < Math.max(a, cc) / 2),
    fullW2: !(c.r < Math.max(b, d) / 2),
  };
}

export function lokrLayerParams(c: LoKrConfig, inDim: number, outDim: number): number {
  const k = kronShape(c, inDim, outDim);
  const w1 = k.fullW1 ? k.a * k.c : c.r * (k.a + k.c);
  const w2 = k.fullW2 ? k.b * k.d : c.r * (k.b + k.d);
  return w1 + w2;
}

export function validateLokr(c: LoKrConfig, model?: DecoderModel): void {
  validateLycoris(c, model);
  if (!Number.isInteger(c.decomposeFactor) || (c.decomposeFactor < 1 && c.decomposeFactor !== -1)) {
    throw new PeftConfigError(`decomposeFactor must be -1 or a positive integer, got ${c.decomposeFactor}`);
  }
  if (![true, false, 'lycoris'].includes(c.initWeights)) {
    throw new PeftConfigError(
      `initWeights must be true, false or "lycoris", got ${JSON.stringify(c.initWeights)}`,
    );
  }
}

export const lokrInfo: MethodInfo<LoKrConfig> = {
  cliName: 'lokr',
  label: 'LoKr',
  peftType: 'LOKR',
  kind: 'inject',
  taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
  summary: 'Delta weight = Kronecker product of two small factors: a full-rank update from few parameters.',
  defaultLr: 3e-3,
  defaults: lokrDefaults,
  fields: [
    {
      field: 'r',
      doc: 'Rank of a factor that is split into two (small r splits more)',
      type: 'int',
      min: 1,
      max: 256,
    },
    { field: 'alpha', doc: 'Scale of the update (alpha / r)', type: 'number', min: 0.01 },
    { field: 'decomposeBoth', doc: 'Split the first Kronecker factor too', type: 'bool' },
    {
      field: 'decomposeFactor',
      doc: 'Size the first factor of each dimension aims at (-1: square root)',
      type: 'int',
      min: -1,
    },
    ...LYCORIS_FIELDS,
  ],
  peftRefusal: conv1dRefusal('LoKr'),
  // r changes the size only where a factor is split: no knob that grows the count steadily.
  sizeKnob: () => null,
  ledger: { profile: () => 'lokr', rank: (c) => c.r },
  capabilities: {},
};
