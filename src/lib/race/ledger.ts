/**
 * The memory ledger of one training run, in bytes, by kind: parameters (the frozen base, the
 * adapter, a full fine-tune's copy of the original weights), gradients (one per trainable
 * value), optimizer state (AdamW's two moments per trainable value) and activations (what a
 * training step holds beyond that: the forward's tensors kept for the backward, and the
 * backward's own). Predicted from shapes before anything runs; measured from tfjs on one step.
 */
import type { Gpt2Model } from '../model/gpt2';
import type { Gpt2Config } from '../model/config';
import { countParameters, linearShape } from '../model/config';
import { targetedSites } from '../peft/inject';
import type { TaskType } from '../peft/types';
import type { Adapter, MethodKind } from '../peft/types';
import type { Trainer } from '../train/trainer';

export interface MemoryLedger {
  parameters: number;
  gradients: number;
  optimizer: number;
  activations: number;
  total: number;
}

export interface StepShape {
  batchSize: number;
  seqLen: number;
  taskType: TaskType;
}

const F32 = 4;

function ledger(parameters: number, gradients: number, optimizer: number, activations: number): MemoryLedger {
  return {
    parameters,
    gradients,
    optimizer,
    activations,
    total: parameters + gradients + optimizer + activations,
  };
}

/** Trainable values of an adapter (head included), and those of them that are not base weights. */
function trainableValues(adapter: Adapter, kind: MethodKind): { trainable: number; extra: number } {
  let trainable = 0;
  for (const v of adapter.trainable().values()) trainable += v.size;
  let head = 0;
  for (const p of adapter.head?.params().values() ?? []) head += p.variable.size;
  return { trainable, extra: kind === 'full' ? head : trainable };
}

/**
 * The sizes (in float32 elements) of the tensors one training step holds at its peak, grouped by
 * shape. tfjs's tape keeps every forward intermediate and every intermediate gradient until the
 * gradient scope ends (tape.ts backpropagateGradients disposes nothing), and tf.memory() counts
 * reshape views too, so the step's peak is the sum of all of them at the end of the backward: a
 * sum of shape products, each times a tensor count (ACTIVATION_COUNTS).
 * Symbols: L layers, C width, I MLP width, H heads, V vocabulary, P positions, B batch, T tokens,
 * n virtual tokens, Tm = T (+ n for prompt kinds: the model sees the virtual tokens), S = Tm (+ n
 * for prefix kinds: keys include the prefix), K classes, r adapter rank, h encoder hidden size.
 * Terms prefixed lm:, cls:, seq:, tok: count only for that task (cls: both classification tasks).
 */
export const ACTIVATION_TERMS = [
  // Per layer: the residual stream and attention, the MLP, scores, row statistics, weight transposes.
  'L*B*Tm*C',
  'L*B*Tm*I',
  'L*B*H*Tm*S',
  'L*B*Tm',
  'L*B*H*Tm',
  'L*C*C',
  'L*C*I',
  'L*C',
  'L*I',
  // Outside the layers: embeddings, ln_f, positions, the causal mask.
  'B*Tm*C',
  'B*T*C',
  'B*Tm',
  'Tm*C',
  'Tm*S',
  'P*C',
  'C',
  'I',
  'const',
  // Full fine-tuning's trainable embedding: one-hot [V, B*T] and the table's gradient.
  'B*T*V',
  'V*C',
  // Causal LM: logits [B, T, V] and their softmax/one-hot/gradient, the tied head's transpose.
  'lm:B*T*V',
  'lm:V*C',
  'lm:B*T',
  // Classification: the padding mask, the head, the loss.
  'cls:B*Tm*S',
  'cls:B*S',
  'cls:C*K',
  'cls:K',
  'seq:B*T*K',
  'seq:B*K',
  'seq:B*T',
  'seq:B',
  'tok:B*T*K',
  'tok:B*T',
  // Inject adapters: per targeted layer, the rank-r activations and weight-shaped transposes.
  'sites*B*Tm*r',
  'r*sites(in+out)',
  'sites*r*r',
  'sites*r',
  // Prefix kinds: per-layer keys/values of the prefix, tiled over the batch and concatenated.
  'L*B*n*C',
  'L*n*C',
  // Prompt encoders: virtual-token activations, the encoder's weight transposes.
  'n*C',
  'n*h',
  'h*C',
  'h*h',
  'n*h*h',
  'n*h*C',
  'h*L*C',
  'h',
  'n',
] as const;
export type ActivationTerm = (typeof ACTIVATION_TERMS)[number];

/** Which tensor counts apply: the method's structure (its encoder, where its gradient enters). */
export type LedgerProfile =
  | 'lora'
  | 'adalora'
  | 'ia3'
  | 'prompt-table'
  | 'prompt-mlp'
  | 'prompt-lstm'
  | 'prefix-table'
  | 'prefix-mlp'
  | 'full';

interface ShapeFields {
  numVirtualTokens?: number;
  encoderHiddenSize?: number | null;
  encoderReparameterizationType?: string;
  prefixProjection?: boolean;
  peftType?: string;
  r?: number;
  initR?: number;
  targetModules?: string[] | string;
  layersToTransform?: number[] | null;
}

export function ledgerProfile(adapter: Adapter): LedgerProfile {
  const f = adapter.config as ShapeFields;
  switch (adapter.kind) {
    case 'full':
      return 'full';
    case 'inject':
      return f.peftType === 'ADALORA' ? 'adalora' : f.peftType === 'IA3' ? 'ia3' : 'lora';
    case 'prompt':
      if (f.peftType !== 'P_TUNING') return 'prompt-table';
      return f.encoderReparameterizationType === 'LSTM' ? 'prompt-lstm' : 'prompt-mlp';
    case 'prefix':
      return f.prefixProjection ? 'prefix-mlp' : 'prefix-table';
  }
}

/** The shape products of ACTIVATION_TERMS for a model, adapter and step. */
export function activationTerms(c: Gpt2Config, adapter: Adapter, s: StepShape): Record<ActivationTerm, number> {
  const f = adapter.config as ShapeFields;
  const kind = adapter.kind;
  const n = kind === 'prompt' || kind === 'prefix' ? (f.numVirtualTokens ?? 0) : 0;
  const h = f.encoderHiddenSize ?? c.nEmbd;
  const { batchSize: B, seqLen: T } = s;
  const { nLayer: L, nEmbd: C, nInner: I, nHead: H, vocabSize: V, nPositions: P } = c;
  const Tm = T + (kind === 'prompt' ? n : 0);
  const S = Tm + (kind === 'prefix' ? n : 0);
  const K = adapter.head?.numLabels ?? 0;
  const lm = s.taskType === 'CAUSAL_LM' ? 1 : 0;
  const seq = s.taskType === 'SEQ_CLS' ? 1 : 0;
  const tok = s.taskType === 'TOKEN_CLS' ? 1 : 0;
  const cls = seq + tok;
  let sites = 0;
  let siteDims = 0;
  const r = f.peftType === 'ADALORA' ? (f.initR ?? 0) : f.peftType === 'LORA' ? (f.r ?? 0) : 0;
  if (kind === 'inject' && r > 0) {
    for (const site of targetedSites(c, f.targetModules ?? [], f.layersToTransform)) {
      const [i, o] = linearShape(c, site.module);
      sites++;
      siteDims += i + o;
    }
  }
  const enc = kind === 'prompt' || kind === 'prefix' ? 1 : 0;
  return {
    'L*B*Tm*C': L * B * Tm * C,
    'L*B*Tm*I': L * B * Tm * I,
    'L*B*H*Tm*S': L * B * H * Tm * S,
    'L*B*Tm': L * B * Tm,
    'L*B*H*Tm': L * B * H * Tm,
    'L*C*C': L * C * C,
    'L*C*I': L * C * I,
    'L*C': L * C,
    'L*I': L * I,
    'B*Tm*C': B * Tm * C,
    'B*T*C': B * T * C,
    'B*Tm': B * Tm,
    'Tm*C': Tm * C,
    'Tm*S': Tm * S,
    'P*C': P * C,
    C,
    I,
    const: 1,
    'B*T*V': B * T * V,
    'V*C': V * C,
    'lm:B*T*V': lm * B * T * V,
    'lm:V*C': lm * V * C,
    'lm:B*T': lm * B * T,
    'cls:B*Tm*S': cls * B * Tm * S,
    'cls:B*S': cls * B * S,
    'cls:C*K': cls * C * K,
    'cls:K': cls * K,
    'seq:B*T*K': seq * B * T * K,
    'seq:B*K': seq * B * K,
    'seq:B*T': seq * B * T,
    'seq:B': seq * B,
    'tok:B*T*K': tok * B * T * K,
    'tok:B*T': tok * B * T,
    'sites*B*Tm*r': sites * B * Tm * r,
    'r*sites(in+out)': r * siteDims,
    'sites*r*r': sites * r * r,
    'sites*r': sites * r,
    'L*B*n*C': (kind === 'prefix' ? 1 : 0) * L * B * n * C,
    'L*n*C': (kind === 'prefix' ? 1 : 0) * L * n * C,
    'n*C': enc * n * C,
    'n*h': enc * n * h,
    'h*C': enc * h * C,
    'h*h': enc * h * h,
    'n*h*h': enc * n * h * h,
    'n*h*C': enc * n * h * C,
    'h*L*C': enc * h * L * C,
    h: enc * h,
    n: enc * n,
  };
}

/**
 * Tensors of each ACTIVATION_TERMS size a step holds at its peak, by profile (absent: none).
 * Fitted by least squares on measured steps and rounded; see FIT below.
 */
export const ACTIVATION_COUNTS: Record<LedgerProfile, Partial<Record<ActivationTerm, number>>> = {
  lora: {},
  adalora: {},
  ia3: {},
  'prompt-table': {},
  'prompt-mlp': {},
  'prompt-lstm': {},
  'prefix-table': {},
  'prefix-mlp': {},
  full: {},
};

/** Activation bytes of one step, from the shapes: Σ count × size over ACTIVATION_TERMS. */
export function predictActivations(c: Gpt2Config, adapter: Adapter, s: StepShape): number {
  const counts = ACTIVATION_COUNTS[ledgerProfile(adapter)];
  const terms = activationTerms(c, adapter, s);
  let elements = 0;
  for (const t of ACTIVATION_TERMS) elements += (counts[t] ?? 0) * terms[t];
  return F32 * elements;
}

export function predictLedger(c: Gpt2Config, adapter: Adapter, kind: MethodKind, s: StepShape): MemoryLedger {
  const base = countParameters(c);
  const { trainable, extra } = trainableValues(adapter, kind);
  // A full fine-tune keeps a copy of the original weights (to compare against and to restore).
  const parameters = F32 * (base + extra + (kind === 'full' ? base : 0));
  return ledger(parameters, F32 * trainable, 2 * F32 * trainable, predictActivations(c, adapter, s));
}

/**
 * What tfjs holds: parameters and optimizer state are the live variables' sizes; activations are
 * tf.profile's peak during one step above the bytes resident before it, less the gradients.
 */
export function measureLedger(
  model: Gpt2Model,
  adapter: Adapter,
  trainer: Trainer,
  kind: MethodKind,
  prof: { peakBytes: number; bytesBefore: number },
): MemoryLedger {
  let baseBytes = 0;
  for (const v of model.weights.values()) baseBytes += v.size * F32;
  const { trainable, extra } = trainableValues(adapter, kind);
  const parameters = baseBytes + F32 * extra + (kind === 'full' ? baseBytes : 0);
  const gradients = F32 * trainable;
  const activations = Math.max(0, prof.peakBytes - prof.bytesBefore - gradients);
  return ledger(parameters, gradients, trainer.optimizer.bytes(), activations);
}
