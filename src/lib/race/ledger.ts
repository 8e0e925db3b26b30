/**
 * The memory ledger of one training run, in bytes, by kind: parameters (the frozen base, the
 * adapter, a full fine-tune's copy of the original weights), gradients (one per trainable
 * value), optimizer state (AdamW's two moments per trainable value) and activations (what a
 * training step holds beyond that: the forward's tensors kept for the backward, and the
 * backward's own). Predicted from shapes before anything runs; measured from tfjs on one step.
 */
import type { DecoderModel } from '../model/decoder';
import type { DecoderConfig } from '../model/family';
import { countParameters, linearShape } from '../model/family';
import { isLlamaConfig } from '../model/llama-config';
import { methodInfoByPeftType } from '../peft/catalog';
import { targetedSites } from '../peft/inject';
import type { LedgerProfile } from '../peft/method-info';
import type { TaskType } from '../data/tasks/registry';
import type { Adapter, MethodKind } from '../peft/types';

export type { LedgerProfile } from '../peft/method-info';
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
 * shape. In tf.variableGrads the forward's scope keeps what each kernel saved for its gradient
 * (as clones, which tf.memory() counts again, as it counts reshape views), and the backward's
 * scope keeps every gradient it computes until it ends (tape.ts backpropagateGradients disposes
 * none; a customGrad's gradFunc, as in model/ops.ts, runs untidied too). So the peak is the sum
 * at the end of the backward: shape products, each times a tensor count (ACTIVATION_COUNTS).
 * Symbols: L layers, C width, I MLP width, H heads, V vocabulary, P positions, B batch, T tokens,
 * n virtual tokens, Tm = T (+ n for prompt kinds: the model sees the virtual tokens), S = Tm (+ n
 * for prefix kinds: keys include the prefix), K classes, r adapter rank, h encoder hidden size.
 * Terms prefixed lm:, cls:, seq:, tok: count only for that task (cls: both classification tasks).
 * The backward stops where the first trainable value enters, so a layer term counts a whole
 * layer and the matching once-only term (often negative) takes off what the first layer skips.
 * Inject kinds were fitted with their default targetModules (LoRA/AdaLoRA c_attn, IA3 c_attn and
 * mlp.c_proj); other targets are predicted by the same counts, which is an extrapolation.
 * The counts were fitted on GPT-2; on the Llama family the same terms take its sizes (I is
 * intermediate_size, H the query heads) and the counts stay GPT-2's: an extrapolation too (its
 * SwiGLU holds more I-sized tensors, rotary embeddings more [B, T, C]-sized ones, and its grouped
 * keys are repeated to H heads), which the race shows beside the measured ledger.
 */
export const ACTIVATION_TERMS = [
  // Per layer: the residual stream and attention, the MLP, scores, row statistics, the causal
  // mask's broadcast, weight transposes of the frozen linear layers, bias-sized and scalar tensors.
  'L*B*Tm*C',
  'L*B*Tm*I',
  'L*B*H*Tm*S',
  'L*B*Tm',
  'L*B*H*Tm',
  'L*Tm*S',
  'L*C*C',
  'L*C*I',
  'L*C',
  'L*I',
  'L',
  // Once: the embeddings, ln_f and positions, and the same sizes again, since the backward stops
  // inside the first layer where the first trainable value is (the layer terms count a full layer).
  'B*Tm*C',
  'B*T*C',
  'B*Tm*I',
  'B*H*Tm*S',
  'B*Tm',
  'B*H*Tm',
  'Tm*C',
  'Tm*S',
  'C*C',
  'C*I',
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
  'lm:B*T*C',
  'lm:B*T',
  // Classification: the padding mask (built once, broadcast into every layer's scores), the head,
  // the loss.
  'cls:L*B*Tm*S',
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
  // OFT's exact Cayley transform and BOFT's (Gauss-Jordan): r steps of [in / r, r, 2r] per layer.
  'r*r*sites(in)',
  // Prefix kinds: per-layer keys/values of the prefix, tiled over the batch and concatenated.
  'L*B*n*C',
  'L*n*C',
  // Prompt encoders: virtual-token activations, the encoder's weight transposes.
  'n*C',
  'n*h',
  'h*C',
  'h*h',
  'n*h*h',
  'n*n*h',
  'n*h*C',
  'h*L*C',
  'h',
  'n',
] as const;
export type ActivationTerm = (typeof ACTIVATION_TERMS)[number];

/** The config fields the shape products read, where the method has them. */
interface ShapeFields {
  numVirtualTokens?: number;
  encoderHiddenSize?: number | null;
  targetModules?: string[] | string;
  layersToTransform?: number[] | null;
}

/**
 * Which tensor counts apply (the method's structure: its encoder, where its gradient enters), as
 * the method's description says (its info.ts `ledger`); a peft_type the catalog does not know is
 * refused rather than given another method's counts.
 */
export function ledgerProfile(adapter: Adapter): LedgerProfile {
  return methodInfoByPeftType(adapter.config.peftType).ledger.profile(adapter.config);
}

/** The shape products of ACTIVATION_TERMS for a model, adapter and step. */
export function activationTerms(
  c: DecoderConfig,
  adapter: Adapter,
  s: StepShape,
): Record<ActivationTerm, number> {
  const f = adapter.config as ShapeFields;
  const kind = adapter.kind;
  const n = kind === 'prompt' || kind === 'prefix' ? (f.numVirtualTokens ?? 0) : 0;
  const h = f.encoderHiddenSize ?? c.nEmbd;
  const { batchSize: B, seqLen: T } = s;
  const { nLayer: L, nEmbd: C, nHead: H, vocabSize: V, nPositions: P } = c;
  const I = isLlamaConfig(c) ? c.intermediateSize : c.nInner;
  const Tm = T + (kind === 'prompt' ? n : 0);
  const S = Tm + (kind === 'prefix' ? n : 0);
  const K = adapter.head?.numLabels ?? 0;
  const lm = s.taskType === 'CAUSAL_LM' ? 1 : 0;
  const seq = s.taskType === 'SEQ_CLS' ? 1 : 0;
  const tok = s.taskType === 'TOKEN_CLS' ? 1 : 0;
  const cls = seq + tok;
  let sites = 0;
  let siteDims = 0;
  let siteIn = 0;
  const r = methodInfoByPeftType(adapter.config.peftType).ledger.rank?.(adapter.config) ?? 0;
  if (kind === 'inject' && r > 0) {
    for (const site of targetedSites(c, f.targetModules ?? [], f.layersToTransform)) {
      const [i, o] = linearShape(c, site.module);
      sites++;
      siteDims += i + o;
      siteIn += i;
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
    L,
    'L*Tm*S': L * Tm * S,
    'B*Tm*I': B * Tm * I,
    'B*H*Tm*S': B * H * Tm * S,
    'B*H*Tm': B * H * Tm,
    'C*C': C * C,
    'C*I': C * I,
    'lm:B*T*C': lm * B * T * C,
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
    'cls:L*B*Tm*S': cls * L * B * Tm * S,
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
    'r*r*sites(in)': r * r * siteIn,
    'L*B*n*C': (kind === 'prefix' ? 1 : 0) * L * B * n * C,
    'L*n*C': (kind === 'prefix' ? 1 : 0) * L * n * C,
    'n*C': enc * n * C,
    'n*h': enc * n * h,
    'h*C': enc * h * C,
    'h*h': enc * h * h,
    'n*h*h': enc * n * h * h,
    'n*n*h': enc * n * n * h,
    'n*h*C': enc * n * h * C,
    'h*L*C': enc * h * L * C,
    h: enc * h,
    n: enc * n,
  };
}

/**
 * Tensors of each ACTIVATION_TERMS size a step holds at the end of its backward, by profile
 * (absent: none). Fitted by least squares on 1200 measured steps of random shapes (120 per
 * method variant: L 1..3, H 1..4, head width 2..8, C..5C MLP, V 16..600, B 1..4, T 2..12, n 1..6,
 * r 1..6, h 2..24, 2..5 classes; every task type a method supports), then rounded one count at a
 * time with the rest refitted, on wasm:
 *   npx tsx scripts/reference/ledger/probe.ts wasm 120 2 > runs.jsonl
 *   python3 scripts/reference/ledger/fit.py runs.jsonl
 * The counts are those of the wasm path of model/ops.ts with our wasm kernels
 * (kernels/wasm/: LayerNorm and gelu_new saving their input and row statistics or sigmoid, the
 * cross-entropy's loss and gradient each one kernel, a saved tensor shared rather than copied by
 * Identity): attention reading c_attn's qkv whole (packedSelfAttention), its products one kernel
 * call over every batch item and head (itemMatMul), its backward transposing the score-sized P
 * and dS once each, built the same way for every shape; the frozen linear layers' bias fused in
 * the matmul; LoRA's scaling on the rank-r side; the frozen tied head's backward multiplying by
 * wte itself (no [V, C] transpose). The large counts come out within 0.03 of an integer (e.g.
 * LoRA: 77.02 [B,T,C]-sized per layer at the backward's end, 3.99 [B,T,I], 6.97 score-sized; the
 * logit-sized ones within 0.001); the counts of row-sized, bias-sized and scalar tensors are less
 * certain (task-dependent small tensors the terms do not separate). With the rounded counts, the
 * forward's (FORWARD_COUNTS) and the optimizer phase, the prediction is within 1.8% of the
 * measured peak on every one of the 1200 steps.
 */
export const ACTIVATION_COUNTS: Record<LedgerProfile, Partial<Record<ActivationTerm, number>>> = {
  // OFT with the exact Cayley transform: fitted the same way (probe.ts variant "oft-exact"; worst
  // 3.90e-02): its Gauss-Jordan keeps r steps of [in / r, r, 2r] per layer (r*r*sites(in)).
  'oft-exact': {
    'L*B*Tm*C': 70,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 4,
    'L*B*H*Tm': 1,
    'L*C*C': 4,
    'L*C*I': 2,
    'L*C': 3,
    L: -14,
    'B*H*Tm': 1,
    'lm:B*T*C': -2,
    'B*Tm*C': 2,
    'B*Tm': 2,
    'Tm*C': 1,
    'P*C': 1,
    const: 27,
    'lm:B*T*V': 6,
    'lm:B*T': -2,
    'cls:B*Tm*S': 1,
    'cls:C*K': 2,
    'cls:K': 10,
    'seq:B*T*K': 7,
    'seq:B*K': 1,
    'seq:B*T': -1,
    'seq:B': 12,
    'tok:B*T*K': 8,
    'r*sites(in+out)': 9,
    'sites*r*r': 5,
    'sites*r': 13,
    'r*r*sites(in)': 21,
  },
  // BOFT: fitted on 300 steps (probe.ts variant "boft", block sizes 2..8 dividing the width, one
  // butterfly factor; worst 1.5%): the exact Cayley transform's Gauss-Jordan keeps r steps of
  // [in / r, r, 2r] per layer for its backward (r*r*sites(in)).
  boft: {
    'L*B*Tm*C': 88,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 4,
    'L*B*H*Tm': 1,
    'L*C*C': 4,
    'L*C*I': 2,
    'L*C': 17,
    L: -3,
    'B*H*Tm': 1,
    'lm:B*T*C': -2,
    'B*Tm*C': 2,
    'B*Tm': 4,
    'Tm*C': 1,
    'P*C': 1,
    C: -1,
    const: -5,
    'lm:B*T*V': 6,
    'lm:B*T': -3,
    'cls:C*K': 2,
    'cls:K': 8,
    'seq:B*T*K': 8,
    'seq:B*T': -2,
    'seq:B': 14,
    'tok:B*T*K': 8,
    'r*sites(in+out)': 11,
    'sites*r*r': 5,
    'sites*r': 6,
    'r*r*sites(in)': 20,
  },
  // OFT: fitted on 300 steps (probe.ts variant "oft", block sizes 2..8 dividing the width, the
  // default Cayley-Neumann series; worst 5.2%). The exact Cayley transform has its own (oft-exact).
  oft: {
    'L*B*Tm*C': 70,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 6,
    'L*B*H*Tm': 1,
    'L*C*C': 4,
    'L*C*I': 2,
    'L*C': -20,
    L: 238,
    'lm:B*T*C': -2,
    'B*Tm*C': 2,
    'B*Tm': 11,
    'Tm*C': 1,
    'P*C': 1,
    C: 2,
    const: 35,
    'lm:B*T*V': 6,
    'lm:B*T': -10,
    'cls:C*K': 2,
    'cls:K': 1,
    'seq:B*T*K': 8,
    'seq:B*K': -2,
    'seq:B*T': -6,
    'seq:B': 24,
    'tok:B*T*K': 7,
    'r*sites(in+out)': 13,
    'sites*r*r': 16,
    'sites*r': -131,
  },
  // LoHa and LoKr: fitted on 300 steps each (probe.ts variants "loha" r 1..8, "lokr" r 1..8 with
  // and without decomposeBoth; worst 3.7% and 5.9%): the delta weight built per layer adds L*C*C.
  loha: {
    'L*B*Tm*C': 77,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 4,
    'L*B*H*Tm': 1,
    'L*C*C': 34,
    'L*C*I': 2,
    L: 6,
    'B*H*Tm': 1,
    'C*C': -3,
    'lm:B*T*C': -2,
    'B*Tm*C': 1,
    'B*Tm': 4,
    'Tm*C': 1,
    'Tm*S': 1,
    'P*C': 1,
    C: -1,
    'lm:B*T*V': 6,
    'lm:B*T': -5,
    'cls:C*K': 2,
    'cls:K': 10,
    'seq:B*T*K': 7,
    'seq:B*K': 1,
    'seq:B*T': -2,
    'seq:B': 13,
    'tok:B*T*K': 8,
    'r*sites(in+out)': 2,
  },
  lokr: {
    'L*B*Tm*C': 77,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 4,
    'L*B*H*Tm': 1,
    'L*C*C': 28,
    'L*C*I': 2,
    'L*C': 10,
    'L*I': 1,
    L: 35,
    'C*C': -3,
    'lm:B*T*C': -2,
    'B*Tm*C': 1,
    'B*Tm': 11,
    'Tm*C': 1,
    'P*C': 1,
    C: 10,
    I: -2,
    const: -42,
    'lm:B*T*V': 6,
    'lm:B*T': -8,
    'cls:C*K': 2,
    'cls:K': 6,
    'seq:B*T*K': 7,
    'seq:B*K': 4,
    'seq:B': -6,
    'tok:B*T*K': 8,
    'sites*r*r': -2,
    'sites*r': 4,
  },
  // VeRA: fitted the same way on 300 steps of its own (probe.ts variant "vera", r 1..12; refitted on 200 after the wasm kernels landed, worst 5.3%).
  vera: {
    'L*B*Tm*C': 81,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 4,
    'L*B*H*Tm': 1,
    'L*C*C': 4,
    'L*C*I': 2,
    'L*C': 8,
    'L*I': -1,
    L: -17,
    'B*H*Tm': 1,
    'C*C': -3,
    'lm:B*T*C': -2,
    'B*Tm': 8,
    'Tm*C': 1,
    'Tm*S': 1,
    'P*C': 1,
    C: -12,
    I: 1,
    const: 29,
    'lm:B*T*V': 6,
    'lm:B*T': -3,
    'cls:C*K': 2,
    'cls:K': 9,
    'seq:B*T*K': 7,
    'seq:B*K': 2,
    'seq:B*T': -1,
    'seq:B': 10,
    'tok:B*T*K': 8,
    'sites*B*Tm*r': 3,
    'r*sites(in+out)': 1,
    'sites*r': 2,
  },
  // LN tuning: trained copies of the LayerNorms' gains and biases, fitted the same way on 300
  // steps of its own (probe.ts variant "ln-tuning"; refitted on 200 after the wasm kernels landed, worst 1.1%).
  'ln-tuning': {
    'L*B*Tm*C': 62,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 4,
    'L*B*H*Tm': 1,
    'L*C*C': 4,
    'L*C*I': 2,
    'L*C': 2,
    'lm:B*T*C': -2,
    'B*Tm*C': 7,
    'B*Tm': 5,
    'Tm*C': 1,
    'Tm*S': 1,
    'P*C': 1,
    const: 8,
    'lm:B*T*V': 6,
    'lm:B*T': -3,
    'cls:C*K': 2,
    'cls:K': 10,
    'seq:B*T*K': 7,
    'seq:B*K': 1,
    'seq:B*T': -1,
    'seq:B': 15,
    'tok:B*T*K': 8,
  },
  // DoRA (LoRA with useDora), fitted the same way on 300 steps of its own (probe.ts variant
  // "dora"; refitted on 200 after the wasm kernels landed, worst 2.0%): LoRA's counts plus the [B*T, out]-sized terms of its rescaling and the
  // weight-sized ones of the norm ||W + s B A||.
  dora: {
    'L*B*Tm*C': 107,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 4,
    'L*B*H*Tm': 2,
    'L*C*C': 4,
    'L*C*I': 2,
    'L*C': 30,
    'L*I': -1,
    L: -22,
    'B*H*Tm': -3,
    'C*C': -3,
    'lm:B*T*C': -2,
    'B*Tm*C': -5,
    'B*Tm': 13,
    'Tm*C': 1,
    'P*C': 1,
    C: -2,
    I: 1,
    const: 86,
    'lm:B*T*V': 6,
    'lm:B*T': -4,
    'cls:B*Tm*S': 1,
    'cls:C*K': 4,
    'cls:K': 6,
    'seq:B*T*K': 7,
    'seq:B*T': -2,
    'seq:B': -6,
    'tok:B*T*K': 6,
    'sites*B*Tm*r': 5,
    'r*sites(in+out)': 3,
  },
  lora: {
    'L*B*Tm*C': 77,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 4,
    'L*B*H*Tm': 1,
    'L*C*C': 4,
    'L*C*I': 2,
    'C*C': -3,
    'lm:B*T*C': -2,
    'B*Tm*C': 1,
    'B*Tm': 3,
    'Tm*C': 1,
    'P*C': 1,
    C: -1,
    const: 20,
    'lm:B*T*V': 6,
    'lm:B*T': -2,
    'cls:B*Tm*S': 1,
    'cls:C*K': 2,
    'cls:K': 8,
    'seq:B*T*K': 7,
    'seq:B*K': 1,
    'seq:B*T': -1,
    'seq:B': 12,
    'tok:B*T*K': 8,
    'sites*B*Tm*r': 5,
    'r*sites(in+out)': 2,
  },
  adalora: {
    'L*B*Tm*C': 83,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 3,
    'L*B*H*Tm': 1,
    'L*C*C': 4,
    'L*C*I': 2,
    'L*C': -3,
    L: 34,
    'C*C': -3,
    'lm:B*T*C': -2,
    'B*Tm*C': 1,
    'B*Tm': 8,
    'Tm*C': 1,
    'P*C': 1,
    C: 9,
    I: -1,
    const: -37,
    'lm:B*T*V': 6,
    'lm:B*T': -3,
    'cls:B*Tm*S': 1,
    'cls:C*K': 2,
    'cls:K': 11,
    'seq:B*T*K': 7,
    'seq:B*K': -1,
    'seq:B*T': -2,
    'seq:B': 21,
    'tok:B*T*K': 7,
    'sites*B*Tm*r': 5,
    'r*sites(in+out)': 9,
    'sites*r*r': 30,
    'sites*r': 2,
  },
  ia3: {
    'L*B*Tm*C': 68,
    'L*B*Tm*I': 6,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 4,
    'L*B*H*Tm': 1,
    'L*C*C': 4,
    'L*C*I': 2,
    'L*C': 3,
    'L*I': 1,
    L: 4,
    'C*C': -3,
    'lm:B*T*C': -2,
    'B*Tm*C': 7,
    'B*Tm': 5,
    'Tm*C': 1,
    'Tm*S': 1,
    'P*C': 1,
    C: 3,
    const: -17,
    'lm:B*T*V': 6,
    'lm:B*T': -4,
    'cls:C*K': 2,
    'cls:K': 11,
    'seq:B*T*K': 7,
    'seq:B*K': 7,
    'seq:B*T': 1,
    'seq:B': -1,
    'tok:B*T*K': 8,
  },
  'prompt-table': {
    'L*B*Tm*C': 62,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 4,
    'L*B*H*Tm': 1,
    'L*C*C': 4,
    'L*C*I': 2,
    'L*C': 3,
    L: -44,
    'B*H*Tm': 1,
    'lm:B*T*C': -2,
    'B*Tm*C': 8,
    'B*T*C': 5,
    'Tm*C': 1,
    'Tm*S': 1,
    'P*C': 1,
    C: -3,
    const: 29,
    'lm:B*T*V': 6,
    'lm:B*T': 2,
    'cls:B*S': 2,
    'cls:C*K': 2,
    'cls:K': 24,
    'seq:B*T*K': 7,
    'seq:B*K': -4,
    'seq:B*T': 2,
    'seq:B': 39,
    'tok:B*T*K': 7,
    'tok:B*T': 5,
    'n*C': 2,
    n: 4,
  },
  'prompt-mlp': {
    'L*B*Tm*C': 62,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 4,
    'L*B*H*Tm': 1,
    'L*C*C': 4,
    'L*C*I': 2,
    'L*C': -1,
    L: 12,
    'B*H*Tm': 1,
    'lm:B*T*C': -2,
    'B*Tm*C': 8,
    'B*T*C': 5,
    'B*Tm': 1,
    'Tm*C': 1,
    'Tm*S': 1,
    'P*C': 1,
    const: 6,
    'lm:B*T*V': 6,
    'lm:B*T': -4,
    'cls:B*S': 2,
    'cls:C*K': 2,
    'cls:K': 16,
    'seq:B*T*K': 7,
    'seq:B*K': -2,
    'seq:B*T': 3,
    'seq:B': 24,
    'tok:B*T*K': 8,
    'tok:B*T': 2,
    'n*C': 8,
    'n*h': 15,
    'h*C': 4,
    'h*h': 2,
    n: -13,
  },
  'prompt-lstm': {
    'L*B*Tm*C': 62,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 3,
    'L*B*H*Tm': 1,
    'L*C*C': 4,
    'L*C*I': 2,
    'L*C': 3,
    'L*I': -1,
    L: 1,
    'lm:B*T*C': -2,
    'B*Tm*C': 8,
    'B*T*C': 5,
    'B*Tm': 2,
    'Tm*C': 1,
    'P*C': 1,
    C: -4,
    I: 2,
    const: -3,
    'lm:B*T*V': 6,
    'lm:B*T': 2,
    'cls:B*S': 1,
    'cls:C*K': 2,
    'cls:K': 27,
    'seq:B*T*K': 6,
    'seq:B*K': 7,
    'seq:B*T': 11,
    'seq:B': -27,
    'tok:B*T*K': 7,
    'tok:B*T': 9,
    'n*C': 11,
    'n*h': 278,
    'h*C': 20,
    'h*h': 24,
    'n*h*h': 48,
    'n*n*h': 32,
    h: 56,
    n: -3,
  },
  'prefix-table': {
    'L*B*Tm*C': 90,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 5,
    'L*B*H*Tm': 1,
    'L*C*C': 4,
    'L*C*I': 2,
    L: -7,
    'B*H*Tm': 1,
    'C*C': -3,
    'lm:B*T*C': -2,
    'B*Tm*C': -29,
    'Tm*C': 1,
    'Tm*S': 1,
    'P*C': 1,
    const: 20,
    'lm:B*T*V': 6,
    'lm:B*T': -3,
    'cls:B*S': 5,
    'cls:C*K': 2,
    'cls:K': 5,
    'seq:B*T*K': 7,
    'seq:B*K': 2,
    'seq:B*T': 1,
    'seq:B': 6,
    'tok:B*T*K': 8,
    'L*B*n*C': 25,
    'L*n*C': 10,
    n: -2,
  },
  'prefix-mlp': {
    'L*B*Tm*C': 90,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 4,
    'L*B*H*Tm': 1,
    'L*C*C': 4,
    'L*C*I': 2,
    'L*C': 4,
    'L*I': -1,
    L: -8,
    'C*C': -3,
    'lm:B*T*C': -2,
    'B*Tm*C': -29,
    'B*Tm': 1,
    'Tm*C': 1,
    'Tm*S': 1,
    'P*C': 1,
    C: -4,
    I: 1,
    const: 60,
    'lm:B*T*V': 6,
    'lm:B*T': -1,
    'cls:B*S': 5,
    'cls:C*K': 2,
    'cls:K': 4,
    'seq:B*T*K': 7,
    'seq:B*K': 3,
    'seq:B': 7,
    'tok:B*T*K': 8,
    'L*B*n*C': 25,
    'L*n*C': 16,
    'n*C': 2,
    'n*h': 7,
    'h*C': 2,
    'h*L*C': 4,
    n: -6,
  },
  full: {
    'L*B*Tm*C': 78,
    'L*B*Tm*I': 8,
    'L*B*H*Tm*S': 7,
    'L*B*Tm': 5,
    'L*B*H*Tm': 1,
    'L*C*C': 8,
    'L*C*I': 4,
    'L*C': 7,
    'L*I': 1,
    L: -6,
    'B*Tm*C': 12,
    'B*Tm': 7,
    'Tm*C': 2,
    'Tm*S': 1,
    'P*C': 1,
    C: 1,
    const: 18,
    'B*T*V': 3,
    'lm:B*T*V': 6,
    'lm:V*C': 5,
    'lm:B*T': -5,
    'cls:C*K': 2,
    'cls:K': 6,
    'seq:B*T*K': 8,
    'seq:B*T': -3,
    'seq:B': 15,
    'tok:B*T*K': 8,
  },
};

/**
 * Tensors of each ACTIVATION_TERMS size alive at the end of the cross-entropy's forward (its
 * customGrad runs in a scope of its own, so its last kernel, the mean, is the moment the
 * forward's tensors and the loss's logit-sized ones are all alive), by profile. The forward's
 * peak when the logits dominate and the layers hold little. Here 7 logit-sized tensors are alive
 * (the logits and their reshaped views, which tf.memory() counts again, the softmax and the copy
 * its customGrad keeps, shared on wasm) against the backward's 6 (its gradient is one kernel's
 * output, and the tied head's backward needs no [V, C] transpose), while the layers hold fewer of
 * their tensors than the backward does (LoRA: 65.02 [B,T,C]-sized per layer, 3.99 [B,T,I], 7.00
 * logit-sized). Fitted from the same 1200 steps as ACTIVATION_COUNTS, the same way. So a causal
 * LM whose logits outweigh its layers now peaks here (ledger.test.ts has one).
 */
export const FORWARD_COUNTS: Record<LedgerProfile, Partial<Record<ActivationTerm, number>>> = {
  'oft-exact': {
    'L*B*Tm*C': 56,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 4,
    'L*B*H*Tm': -1,
    'L*C': 1,
    L: 19,
    'B*H*Tm': 1,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*Tm': 11,
    'Tm*C': 2,
    'Tm*S': 1,
    'P*C': 1,
    C: -1,
    const: -2,
    'lm:B*T*V': 7,
    'lm:B*T': -7,
    'cls:B*Tm*S': 2,
    'cls:C*K': 1,
    'cls:K': 9,
    'seq:B*T*K': 6,
    'seq:B*K': 1,
    'seq:B*T': -2,
    'seq:B': 15,
    'tok:B*T*K': 8,
    'r*sites(in+out)': 5,
    'sites*r*r': 5,
    'sites*r': -4,
    'r*r*sites(in)': 10,
  },
  boft: {
    'L*B*Tm*C': 74,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 4,
    'L*C': 16,
    L: 9,
    'B*H*Tm': 1,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*Tm': 11,
    'Tm*C': 2,
    'Tm*S': 1,
    'P*C': 1,
    C: -1,
    const: -10,
    'lm:B*T*V': 7,
    'lm:B*T': -8,
    'cls:B*Tm*S': 2,
    'cls:C*K': 1,
    'cls:K': 10,
    'seq:B*T*K': 6,
    'seq:B*K': 2,
    'seq:B*T': -2,
    'seq:B': 15,
    'tok:B*T*K': 8,
    'r*sites(in+out)': 5,
    'sites*r*r': 5,
    'sites*r': 1,
    'r*r*sites(in)': 10,
  },
  oft: {
    'L*B*Tm*C': 56,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 6,
    'L*B*H*Tm': -1,
    'L*C': -9,
    L: 120,
    'B*H*Tm': 1,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*Tm': 12,
    'Tm*C': 2,
    'P*C': 1,
    'lm:B*T*V': 7,
    'lm:B*T': -11,
    'cls:B*Tm*S': 1,
    'cls:C*K': 1,
    'cls:K': 7,
    'seq:B*T*K': 6,
    'seq:B*K': 2,
    'seq:B*T': -3,
    'seq:B': 14,
    'tok:B*T*K': 8,
    'r*sites(in+out)': 7,
    'sites*r*r': 9,
    'sites*r': -64,
  },
  loha: {
    'L*B*Tm*C': 65,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 4,
    'L*C*C': 15,
    L: 6,
    'B*H*Tm': 1,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*Tm': 11,
    'Tm*C': 2,
    'Tm*S': 2,
    'P*C': 1,
    C: -1,
    'lm:B*T*V': 7,
    'lm:B*T': -10,
    'cls:B*Tm*S': 1,
    'cls:C*K': 1,
    'cls:K': 10,
    'seq:B*T*K': 6,
    'seq:B*K': 1,
    'seq:B*T': -2,
    'seq:B': 14,
    'tok:B*T*K': 9,
    'r*sites(in+out)': 2,
  },
  lokr: {
    'L*B*Tm*C': 65,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 3,
    'L*C*C': 12,
    'L*C': 5,
    'L*I': 1,
    L: 22,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*Tm': 16,
    'Tm*C': 2,
    'Tm*S': 1,
    'P*C': 1,
    C: 7,
    I: -2,
    const: 2,
    'lm:B*T*V': 7,
    'lm:B*T': -10,
    'cls:B*Tm*S': 1,
    'cls:C*K': 1,
    'cls:K': 6,
    'seq:B*T*K': 6,
    'seq:B*K': 7,
    'seq:B': 1,
    'tok:B*T*K': 10,
    'sites*r*r': -1,
    'sites*r': 5,
  },
  vera: {
    'L*B*Tm*C': 70,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 4,
    'L*C': 3,
    L: -11,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*Tm': 13,
    'Tm*C': 2,
    'Tm*S': 2,
    'P*C': 1,
    const: 13,
    'lm:B*T*V': 7,
    'lm:B*T': -10,
    'cls:B*Tm*S': 1,
    'cls:C*K': 1,
    'cls:K': 9,
    'seq:B*T*K': 6,
    'seq:B*K': 2,
    'seq:B*T': -1,
    'seq:B': 9,
    'tok:B*T*K': 9,
    'sites*B*Tm*r': 3,
    'sites*r': 1,
  },
  'ln-tuning': {
    'L*B*Tm*C': 52,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 4,
    'L*C': 2,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*Tm': 12,
    'Tm*C': 2,
    'Tm*S': 2,
    'P*C': 1,
    const: 8,
    'lm:B*T*V': 7,
    'lm:B*T': -8,
    'cls:B*Tm*S': 1,
    'cls:C*K': 1,
    'cls:K': 10,
    'seq:B*T*K': 6,
    'seq:B*K': 1,
    'seq:B*T': -1,
    'seq:B': 16,
    'tok:B*T*K': 9,
  },
  dora: {
    'L*B*Tm*C': 92,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 4,
    'L*C': 26,
    L: -2,
    'B*H*Tm': 1,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*Tm': 11,
    'Tm*C': 2,
    'Tm*S': 2,
    'P*C': 1,
    C: -1,
    const: -3,
    'lm:B*T*V': 7,
    'lm:B*T': -10,
    'cls:B*Tm*S': 1,
    'cls:C*K': 1,
    'cls:K': 10,
    'seq:B*T*K': 6,
    'seq:B*K': 1,
    'seq:B*T': -1,
    'seq:B': 9,
    'tok:B*T*K': 9,
    'sites*B*Tm*r': 4,
    'r*sites(in+out)': 1,
    'sites*r*r': -1,
    'sites*r': 8,
  },
  lora: {
    'L*B*Tm*C': 65,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 4,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*Tm': 10,
    'Tm*C': 2,
    'Tm*S': 1,
    'P*C': 1,
    C: -1,
    const: 20,
    'lm:B*T*V': 7,
    'lm:B*T': -7,
    'cls:B*Tm*S': 2,
    'cls:C*K': 1,
    'cls:K': 8,
    'seq:B*T*K': 6,
    'seq:B*K': 1,
    'seq:B*T': -1,
    'seq:B': 13,
    'tok:B*T*K': 9,
    'sites*B*Tm*r': 4,
    'r*sites(in+out)': 1,
  },
  adalora: {
    'L*B*Tm*C': 71,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 4,
    L: -2,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*Tm': 12,
    'Tm*C': 2,
    'Tm*S': 1,
    'P*C': 1,
    const: 5,
    'lm:B*T*V': 7,
    'lm:B*T': -8,
    'cls:B*Tm*S': 1,
    'cls:C*K': 1,
    'cls:K': 6,
    'seq:B*T*K': 6,
    'seq:B*K': 3,
    'seq:B*T': 1,
    'seq:B': 4,
    'tok:B*T*K': 9,
    'sites*B*Tm*r': 4,
    'r*sites(in+out)': 1,
    'sites*r': 3,
  },
  ia3: {
    'L*B*Tm*C': 58,
    'L*B*Tm*I': 6,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 4,
    'L*C': 3,
    'L*I': 1,
    L: 4,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*Tm': 12,
    'Tm*C': 2,
    'Tm*S': 2,
    'P*C': 1,
    const: -17,
    'lm:B*T*V': 7,
    'lm:B*T': -9,
    'cls:B*Tm*S': 1,
    'cls:C*K': 1,
    'cls:K': 11,
    'seq:B*T*K': 6,
    'seq:B*K': 7,
    'seq:B*T': 1,
    'tok:B*T*K': 9,
  },
  'prompt-table': {
    'L*B*Tm*C': 52,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 4,
    'L*C': 3,
    L: -44,
    'B*H*Tm': 1,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*T*C': 4,
    'Tm*C': 2,
    'Tm*S': 2,
    'P*C': 1,
    C: -3,
    const: 29,
    'lm:B*T*V': 7,
    'lm:B*T': 4,
    'cls:B*Tm*S': 1,
    'cls:B*S': 8,
    'cls:C*K': 1,
    'cls:K': 24,
    'seq:B*T*K': 6,
    'seq:B*K': -4,
    'seq:B*T': 5,
    'seq:B': 40,
    'tok:B*T*K': 8,
    'tok:B*T': 8,
    'n*C': 2,
    n: 4,
  },
  'prompt-mlp': {
    'L*B*Tm*C': 52,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 4,
    'L*C': -1,
    L: 12,
    'B*H*Tm': 1,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*T*C': 4,
    'B*Tm': 1,
    'Tm*C': 2,
    'Tm*S': 2,
    'P*C': 1,
    const: 6,
    'lm:B*T*V': 7,
    'lm:B*T': -2,
    'cls:B*Tm*S': 1,
    'cls:B*S': 8,
    'cls:C*K': 1,
    'cls:K': 16,
    'seq:B*T*K': 6,
    'seq:B*K': -2,
    'seq:B*T': 6,
    'seq:B': 25,
    'tok:B*T*K': 9,
    'tok:B*T': 5,
    'n*C': 7,
    'n*h': 13,
    'h*C': 2,
    'h*h': 1,
    n: -13,
  },
  'prompt-lstm': {
    'L*B*Tm*C': 52,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 3,
    'L*C': 3,
    'L*I': -1,
    L: 1,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*T*C': 4,
    'B*Tm': 2,
    'Tm*C': 2,
    'Tm*S': 1,
    'P*C': 1,
    C: -4,
    I: 2,
    const: -3,
    'lm:B*T*V': 7,
    'lm:B*T': 4,
    'cls:B*Tm*S': 1,
    'cls:B*S': 7,
    'cls:C*K': 1,
    'cls:K': 27,
    'seq:B*T*K': 5,
    'seq:B*K': 7,
    'seq:B*T': 14,
    'seq:B': -26,
    'tok:B*T*K': 8,
    'tok:B*T': 12,
    'n*C': 8,
    'n*h': 272,
    'h*C': 10,
    'h*h': 20,
    'n*h*h': 16,
    'n*n*h': 16,
    h: 68,
    n: -3,
  },
  'prefix-table': {
    'L*B*Tm*C': 62,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 5,
    L: -7,
    'B*H*Tm': 1,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*Tm': 3,
    'Tm*C': 2,
    'Tm*S': 2,
    'P*C': 1,
    const: 20,
    'lm:B*T*V': 7,
    'lm:B*T': -4,
    'cls:B*Tm*S': 1,
    'cls:B*S': 11,
    'cls:C*K': 1,
    'cls:K': 5,
    'seq:B*T*K': 6,
    'seq:B*K': 2,
    'seq:B*T': 1,
    'seq:B': 7,
    'tok:B*T*K': 9,
    'L*B*n*C': 24,
    'L*n*C': 10,
    n: -2,
  },
  'prefix-mlp': {
    'L*B*Tm*C': 62,
    'L*B*Tm*I': 4,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 4,
    'L*C': 4,
    'L*I': -1,
    L: -8,
    'lm:B*T*C': -1,
    'B*Tm*C': 8,
    'B*Tm': 4,
    'Tm*C': 2,
    'Tm*S': 2,
    'P*C': 1,
    C: -4,
    I: 1,
    const: 60,
    'lm:B*T*V': 7,
    'lm:B*T': -2,
    'cls:B*Tm*S': 1,
    'cls:B*S': 11,
    'cls:C*K': 1,
    'cls:K': 4,
    'seq:B*T*K': 6,
    'seq:B*K': 3,
    'seq:B': 8,
    'tok:B*T*K': 9,
    'L*B*n*C': 24,
    'L*n*C': 16,
    'n*C': 1,
    'n*h': 6,
    'h*C': 1,
    'h*L*C': 2,
    n: -6,
  },
  full: {
    'L*B*Tm*C': 65,
    'L*B*Tm*I': 7,
    'L*B*H*Tm*S': 1,
    'L*B*Tm': 5,
    'L*C*C': 4,
    'L*C*I': 2,
    'L*C': 7,
    'L*I': 1,
    L: -6,
    'B*Tm*C': 10,
    'B*Tm': 15,
    'Tm*C': 2,
    'Tm*S': 2,
    'P*C': 1,
    C: 1,
    const: 18,
    'lm:B*T*V': 7,
    'lm:V*C': 2,
    'lm:B*T': -10,
    'cls:B*Tm*S': 1,
    'cls:C*K': 1,
    'cls:K': 6,
    'seq:B*T*K': 7,
    'seq:B*T': -3,
    'seq:B': 16,
    'tok:B*T*K': 9,
  },
};

/**
 * Tensors of one variable's size that an AdamW update holds at once (train/adamw.ts apply: three
 * for the first moment, four for the second, five for the update, two for the step), counted
 * from the code and matched exactly by the probe: after the backward, the step's peak is the
 * update of the largest trainable variable, or clipping's squares of every gradient.
 */
const ADAMW_TEMPORARIES = 14;

/** Elements the step holds after the backward, beyond the gradients: clipping and AdamW. */
function optimizerPhase(adapter: Adapter): number {
  let all = 0;
  let largest = 0;
  for (const v of adapter.trainable().values()) {
    all += v.size;
    largest = Math.max(largest, v.size);
  }
  return Math.max(all, ADAMW_TEMPORARIES * largest);
}

/**
 * Activation bytes of one step's three candidate peaks, from the shapes: the end of the
 * cross-entropy's forward (Σ FORWARD_COUNTS × size, less the gradients: they do not exist yet
 * then, and the ledger counts them in their own row), the backward's end (Σ ACTIVATION_COUNTS ×
 * size) and the optimizer's (clipping and AdamW after it).
 */
export function activationPhases(
  c: DecoderConfig,
  adapter: Adapter,
  s: StepShape,
): { forward: number; backward: number; optimizer: number } {
  const profile = ledgerProfile(adapter);
  const terms = activationTerms(c, adapter, s);
  const sum = (counts: Partial<Record<ActivationTerm, number>>): number => {
    let total = 0;
    for (const t of ACTIVATION_TERMS) total += (counts[t] ?? 0) * terms[t];
    return total;
  };
  const { trainable } = trainableValues(adapter, adapter.kind);
  return {
    forward: F32 * (sum(FORWARD_COUNTS[profile]) - trainable),
    backward: F32 * sum(ACTIVATION_COUNTS[profile]),
    optimizer: F32 * optimizerPhase(adapter),
  };
}

/**
 * Activation bytes of one step: the largest phase. The backward's end is the peak but for a
 * causal LM whose logits outweigh the layers' activations (a large vocabulary: the forward holds
 * more logit-sized tensors than the backward, which computes no gradient for the frozen tied
 * head), and for full fine-tuning of small batches, where one weight matrix's AdamW update
 * outweighs the activations.
 */
export function predictActivations(c: DecoderConfig, adapter: Adapter, s: StepShape): number {
  const { forward, backward, optimizer } = activationPhases(c, adapter, s);
  return Math.max(forward, backward, optimizer);
}

export function predictLedger(
  c: DecoderConfig,
  adapter: Adapter,
  kind: MethodKind,
  s: StepShape,
): MemoryLedger {
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
  model: DecoderModel,
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
