/**
 * A GPT-2 decoder in tfjs, read top to bottom like HF's modeling_gpt2.py / nanoGPT:
 *   x = wte[ids] + wpe[pos]
 *   for each block: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))
 *   h = ln_f(x)
 * Heads (LM, sequence, token) live in heads.ts. Adapters reach in through three doors, so the model
 * knows no method by name: `LinearHook`s around named linear layers (LoRA, AdaLoRA, IA3), input
 * embeddings supplied by the caller (prompt tuning, P-tuning) and per-layer past keys/values
 * (prefix tuning, P-tuning v2). Weights are tf.Variables; a frozen one has `trainable = false`.
 */
import * as tf from '@tensorflow/tfjs';
import type { Gpt2Config, LinearModule } from './config';
import { expectedWeightShapes } from './config';
import {
  columnBlocks,
  dense,
  embed,
  geluNew,
  isFrozen,
  layerNorm,
  multiHeadAttention,
  newVariable,
  packedSelfAttention,
} from './ops';
import { fusedKernelsOn } from '../kernels/webgpu/active';
import { causalAttentionPacked, causalAttentionPackedPast } from '../kernels/webgpu/attention';
import { simdCausalAttention } from '../kernels/wasm/attention';
import { biasGelu } from '../kernels/webgpu/bias-gelu';
import { layerNorm as fusedLayerNorm } from '../kernels/webgpu/layer-norm';
import { frozenLinear, type HalfMatrix } from '../kernels/webgpu/halves';
import { InternalError, SettingsError } from '../errors';
import type { DecoderModel } from './decoder';
import { DecoderWeights } from './decoder-weights';

/** Keys and values of one layer: each [B, nHead, P, headDim]. */
// A type alias (not an interface) so tf.tidy accepts it as a TensorContainer.
export type LayerKV = {
  k: tf.Tensor4D;
  v: tf.Tensor4D;
};

/** Adds to (or rescales) the output, or rescales the input, of one named linear layer, e.g. `h.0.attn.c_attn`. */
export interface LinearHook {
  /** Maps the layer input x [N, in] before the frozen layer sees it (IA3 on feed-forward layers). */
  input?(x: tf.Tensor2D, ctx: ForwardContext): tf.Tensor2D;
  /** x [N, in] is the layer input (after `input`), base [N, out] the frozen layer's output; returns [N, out]. */
  apply(x: tf.Tensor2D, base: tf.Tensor2D, ctx: ForwardContext): tf.Tensor2D;
  /**
   * The whole layer, x W + b and the hook, as one fused kernel (WebGPU only: linear() asks only when
   * our kernels are on). Returns null where the kernel does not fit this call (merged weights,
   * active dropout, ...), and linear() then runs dense and `apply` as everywhere else. W is frozen
   * f32 or, under weightsF16, frozen halves; b is absent for a layer without a bias (the Llama family's).
   */
  fused?(
    x: tf.Tensor2D,
    w: tf.Tensor2D | HalfMatrix,
    b: tf.Tensor1D | undefined,
    ctx: ForwardContext,
  ): tf.Tensor2D | null;
}

/** Per-call state handed to hooks. */
export interface ForwardContext {
  training: boolean;
  /** Seed for dropout in this call; the trainer advances it every step. */
  seed: number;
  /**
   * True when attention is plain causal: no past keys and no padding mask (training on full
   * windows). Only then can the fused attention kernel (WebGPU) replace the masked composition.
   */
  causal?: boolean;
  /**
   * The padding mask [B, T] (1 a real key, 0 padding) when the call has one and no past keys
   * (classification batches): the fused kernels add MASKED to padded keys' scores, as the stock
   * bias (attentionBias) does, so they can run where `causal` is false only because of padding.
   */
  keyMask?: tf.Tensor2D;
  /**
   * With past keys: the padding mask [B, P + T] over past and new keys, or null for none. Our wasm
   * kernels take past keys (prefix tuning, P-tuning v2) only where this is set; undefined (a caller
   * that did not say, or no past) keeps the stock composition.
   */
  pastKeyMask?: tf.Tensor2D | null;
}

export interface ForwardOptions {
  /** Token ids [B, T]; or give inputsEmbeds instead. */
  ids?: tf.Tensor2D;
  /** Input embeddings [B, T, C] (prompt methods prepend virtual tokens to wte[ids]). */
  inputsEmbeds?: tf.Tensor3D;
  /** Past keys/values per layer (KV cache, or prefixes), each [B, nHead, P, headDim]. */
  past?: LayerKV[];
  /** Key mask [B, P + T]: 1 attends, 0 is padding. */
  attentionMask?: tf.Tensor2D;
  /** First position id (defaults to the past length, as HF does with a cache). */
  positionOffset?: number;
  /** Return the keys/values of this call appended to `past` (for generation). */
  returnPresents?: boolean;
  training?: boolean;
  seed?: number;
}

export interface ForwardResult {
  /** Final hidden states after ln_f: [B, T, C]. */
  hidden: tf.Tensor3D;
  presents?: LayerKV[];
}

/** A large negative number instead of -inf: a fully masked row stays finite instead of NaN. */
const MASKED = -1e9;

export class Gpt2Model extends DecoderWeights implements DecoderModel {
  readonly family = 'gpt2' as const;
  readonly embeddingKey = 'wte.weight';
  /** The LM head is tied to wte. */
  readonly lmHeadKey = 'wte.weight';
  readonly config: Gpt2Config;
  /** Hooks by linear layer name, e.g. `h.3.mlp.c_fc`; set by inject-kind methods. */
  readonly hooks = new Map<string, LinearHook>();

  /** `weights`: canonical HF names (no `transformer.` prefix) -> weights. */
  constructor(config: Gpt2Config, weights: Map<string, tf.Variable>) {
    super(weights);
    this.config = config;
  }

  /** Random GPT-2 initialisation (N(0, 0.02), residual projections scaled by 1/sqrt(2 nLayer)). */
  static random(config: Gpt2Config, seed = 0): Gpt2Model {
    const weights = new Map<string, tf.Variable>();
    let s = seed;
    for (const [name, shape] of expectedWeightShapes(config)) {
      const t = tf.tidy(() => {
        if (name.endsWith('ln_1.weight') || name.endsWith('ln_2.weight') || name === 'ln_f.weight')
          return tf.ones(shape);
        if (name.endsWith('.bias')) return tf.zeros(shape);
        const std = name.endsWith('c_proj.weight') ? 0.02 / Math.sqrt(2 * config.nLayer) : 0.02;
        // tfjs treats seed 0 as "no seed" (Math.random), so seeds start at 1.
        return tf.randomNormal(shape, 0, std, 'float32', ++s);
      });
      weights.set(name, newVariable(t, false));
    }
    return new Gpt2Model(config, weights);
  }

  /** wte[ids]: [B, T] -> [B, T, C]. */
  embedTokens(ids: tf.Tensor2D): tf.Tensor3D {
    return embed(this.w('wte.weight') as tf.Tensor2D, ids) as tf.Tensor3D;
  }

  /** weightsF16 holds every block's linear-layer matrices as halves (linear() and mlp() read them). */
  protected override halfKeys(): string[] {
    const modules: LinearModule[] = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'];
    return Array.from({ length: this.config.nLayer }, (_, i) =>
      modules.map((m) => `h.${i}.${m}.weight`),
    ).flat();
  }

  /** One named linear layer on x [N, in], with its hook if any. */
  linear(layer: number, module: LinearModule, x: tf.Tensor2D, ctx: ForwardContext): tf.Tensor2D {
    const p = `h.${layer}.${module}`;
    const hook = this.hooks.get(p);
    const xin = hook?.input ? hook.input(x, ctx) : x;
    const b = this.w(`${p}.bias`) as tf.Tensor1D;
    const half = this.halves.get(`${p}.weight`);
    if (half) {
      // weightsF16: W is read as halves in place, by the hook's fused kernel or by frozenLinear.
      const fusedHalf = hook?.fused && fusedKernelsOn() ? hook.fused(xin, half, b, ctx) : null;
      if (fusedHalf) return fusedHalf;
      const base = isFrozen(b) ? frozenLinear(xin, half, b) : tf.add(frozenLinear(xin, half), b);
      return hook ? hook.apply(xin, base as tf.Tensor2D, ctx) : (base as tf.Tensor2D);
    }
    const w = this.w(`${p}.weight`) as tf.Tensor2D;
    const fused = hook?.fused && fusedKernelsOn() ? hook.fused(xin, w, b, ctx) : null;
    if (fused) return fused;
    // A frozen layer on WebGPU: our tiled product, dx in one dispatch (stock: a transpose and a matMul).
    const ours = fusedKernelsOn() && isFrozen(w) && isFrozen(b);
    const base = ours ? frozenLinear(xin, w, b) : dense(xin, w, b);
    return hook ? hook.apply(xin, base, ctx) : base;
  }

  forward(opts: ForwardOptions): ForwardResult {
    const { x: x0, mask, ctx } = this.prelude(opts);
    let x = x0;
    const presents: LayerKV[] = [];
    for (let i = 0; i < this.config.nLayer; i++) {
      const out = this.block(i, x, mask, opts.past?.[i], ctx);
      // Read now: a present is built on first read, and only while its keys and values exist.
      if (opts.returnPresents) presents.push({ k: out.present.k, v: out.present.v });
      x = out.x;
    }
    return { hidden: this.finalNorm(x), presents: opts.returnPresents ? presents : undefined };
  }

  /**
   * What comes before the first layer: token (or given) embeddings plus positions, the attention
   * bias every layer shares, and the per-call context. `forward` is prelude, blocks, finalNorm;
   * the offload trainer (src/lib/offload) runs the same three pieces one layer at a time.
   */
  prelude(opts: ForwardOptions): { x: tf.Tensor3D; mask: tf.Tensor4D; ctx: ForwardContext } {
    const c = this.config;
    const ctx: ForwardContext = {
      training: opts.training ?? false,
      seed: opts.seed ?? 0,
      causal: !opts.past?.length && !opts.attentionMask,
      keyMask: opts.past?.length ? undefined : opts.attentionMask,
      pastKeyMask: opts.past?.length ? (opts.attentionMask ?? null) : undefined,
    };
    const tokens = opts.inputsEmbeds ?? (opts.ids ? this.embedTokens(opts.ids) : null);
    if (!tokens) throw new InternalError('forward needs ids or inputsEmbeds');
    const [B, T, C] = tokens.shape;
    const pastLen = opts.past?.[0]?.k.shape[2] ?? 0;
    const offset = opts.positionOffset ?? pastLen;
    if (offset + T > c.nPositions) {
      throw new SettingsError(
        `sequence of ${offset + T} positions exceeds the model's n_positions ${c.nPositions}: shorten the sequence or the prompt`,
      );
    }
    const pos = tf.slice(this.w('wpe.weight'), [offset, 0], [T, C]); // [T, C]
    const x = tf.add(tokens, pos) as tf.Tensor3D; // [B, T, C]
    const mask = attentionBias(T, pastLen, B, opts.attentionMask); // [B or 1, 1, T, P + T]
    return { x, mask, ctx };
  }

  /** One transformer block: x + attn(ln_1(x)), then + mlp(ln_2(.)); [B, T, C] -> [B, T, C]. */
  block(
    i: number,
    x: tf.Tensor3D,
    mask: tf.Tensor4D,
    past: LayerKV | undefined,
    ctx: ForwardContext,
  ): { x: tf.Tensor3D; present: LayerKV } {
    const h = `h.${i}.`;
    const a = this.norm(x, h + 'ln_1');
    const { out, present } = this.attention(i, a, mask, past, ctx);
    const y = tf.add(x, out) as tf.Tensor3D;
    const m = this.norm(y, h + 'ln_2');
    return { x: tf.add(y, this.mlp(i, m, ctx)) as tf.Tensor3D, present };
  }

  /** ln_f: the final hidden states the heads read. */
  finalNorm(x: tf.Tensor3D): tf.Tensor3D {
    return this.norm(x, 'ln_f');
  }

  /** The LayerNorm named `prefix` (e.g. `h.0.ln_1`) on x [B, T, C]: our kernel on WebGPU. */
  private norm(x: tf.Tensor3D, prefix: string): tf.Tensor3D {
    const g = this.w(prefix + '.weight') as tf.Tensor1D;
    const b = this.w(prefix + '.bias') as tf.Tensor1D;
    const eps = this.config.layerNormEpsilon;
    if (fusedKernelsOn()) {
      // A frozen norm (adapters) gets dx only; a trained one (full fine-tuning) its dgamma, dbeta too.
      return fusedLayerNorm(x, g, b, eps, !(isFrozen(g) && isFrozen(b))) as tf.Tensor3D;
    }
    return layerNorm(x, g, b, eps) as tf.Tensor3D;
  }

  private attention(
    layer: number,
    a: tf.Tensor3D,
    mask: tf.Tensor4D,
    past: LayerKV | undefined,
    ctx: ForwardContext,
  ): { out: tf.Tensor3D; present: LayerKV } {
    const [B, T, C] = a.shape;
    const H = this.config.nHead;
    const D = C / H;
    const qkv = this.linear(layer, 'attn.c_attn', tf.reshape(a, [B * T, C]) as tf.Tensor2D, ctx); // [B*T, 3C]
    // Causal, or causal but for padded keys (the kernel takes the key mask as the stock bias does).
    if (!past && (ctx.causal || ctx.keyMask) && fusedKernelsOn())
      return this.fusedAttention(layer, qkv, B, T, ctx);
    if (!past) {
      // No past keys: attention reads qkv whole (one transpose to the heads' layout, see ops.ts).
      // Causal attention on wasm, plain or under a padding mask (ctx.keyMask: classification):
      // our SIMD kernels (kernels/wasm/attention.ts), lower triangle only.
      const y =
        (ctx.causal || ctx.keyMask ? simdCausalAttention(qkv, B, T, H, ctx.keyMask) : null) ??
        packedSelfAttention(qkv, mask, B, T, H);
      const out = this.linear(layer, 'attn.c_proj', tf.reshape(y, [B * T, C]) as tf.Tensor2D, ctx);
      const block = (i: 1 | 2): tf.Tensor3D => tf.reshape(tf.slice(qkv, [0, i * C], [B * T, C]), [B, T, C]);
      return { out: tf.reshape(out, [B, T, C]) as tf.Tensor3D, present: lazyKV(block, H, D) };
    }
    const merge = (t: tf.Tensor4D): tf.Tensor3D =>
      tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [B, t.shape[2], C]) as tf.Tensor3D; // [B, H, P, D] -> [B, P, C]
    const fused = ctx.pastKeyMask !== undefined ? pastAttention(qkv, past, B, T, H, ctx.pastKeyMask) : null;
    if (fused) {
      const out = this.linear(layer, 'attn.c_proj', fused, ctx);
      // The presents (generation only) concatenated when read, as the no-past path cuts them.
      const block = (i: 1 | 2): tf.Tensor3D =>
        tf.concat(
          [merge(i === 1 ? past.k : past.v), tf.reshape(tf.slice(qkv, [0, i * C], [B * T, C]), [B, T, C])],
          1,
        );
      return { out: tf.reshape(out, [B, T, C]) as tf.Tensor3D, present: lazyKV(block, H, D) };
    }
    // Heads stay side by side in the channel axis ([B, T, C]): multiHeadAttention works in that
    // layout with 2-D products only, and its output is already what c_proj reads.
    const [q, k, v] = columnBlocks(qkv, 3).map((t) => tf.reshape(t, [B, T, C]) as tf.Tensor3D) as [
      tf.Tensor3D,
      tf.Tensor3D,
      tf.Tensor3D,
    ];
    const kAll = past ? (tf.concat([merge(past.k), k], 1) as tf.Tensor3D) : k; // [B, P+T, C]
    const vAll = past ? (tf.concat([merge(past.v), v], 1) as tf.Tensor3D) : v;
    const y = multiHeadAttention(q, kAll, vAll, mask, H); // [B, T, C]
    const out = this.linear(layer, 'attn.c_proj', tf.reshape(y, [B * T, C]) as tf.Tensor2D, ctx);
    return {
      out: tf.reshape(out, [B, T, C]) as tf.Tensor3D,
      present: lazyKV((i) => [kAll, vAll][i - 1]!, H, D),
    };
  }

  /**
   * Attention through the fused causal kernel (WebGPU, no past; padded keys masked when the call
   * has a padding mask), reading c_attn's [B*T, 3C] in place and writing [B*T, C] for c_proj: no
   * transposes, no unstack, and the gradient for qkv in one dispatch. The presents ([B, H, T, D])
   * are cut from qkv only when read (generation); training never reads them, so it never pays.
   */
  private fusedAttention(
    layer: number,
    qkv: tf.Tensor2D,
    B: number,
    T: number,
    ctx: ForwardContext,
  ): { out: tf.Tensor3D; present: LayerKV } {
    const H = this.config.nHead;
    const C = qkv.shape[1] / 3;
    const D = C / H;
    const y = causalAttentionPacked(
      tf.reshape(qkv, [B, T, 3 * C]) as tf.Tensor3D,
      H,
      1 / Math.sqrt(D),
      ctx.keyMask,
    );
    const out = this.linear(layer, 'attn.c_proj', tf.reshape(y, [B * T, C]) as tf.Tensor2D, ctx);
    const block = (i: 1 | 2): tf.Tensor3D => tf.reshape(tf.slice(qkv, [0, i * C], [B * T, C]), [B, T, C]);
    return { out: tf.reshape(out, [B, T, C]) as tf.Tensor3D, present: lazyKV(block, H, D) };
  }

  private mlp(layer: number, m: tf.Tensor3D, ctx: ForwardContext): tf.Tensor3D {
    const [B, T, C] = m.shape;
    const x = tf.reshape(m, [B * T, C]) as tf.Tensor2D;
    const fc = `h.${layer}.mlp.c_fc`;
    if (fusedKernelsOn() && !this.hooks.has(fc)) {
      // No hook on c_fc: its bias rides in the GELU kernel (x W, then gelu_new(. + b) in one pass).
      const b = this.w(`${fc}.bias`) as tf.Tensor1D;
      const half = this.halves.get(`${fc}.weight`);
      const wfc = half ?? (this.w(`${fc}.weight`) as tf.Tensor2D);
      const xw: tf.Tensor2D =
        half || isFrozen(wfc as tf.Tensor2D) ? frozenLinear(x, wfc) : tf.matMul(x, wfc as tf.Tensor2D);
      const up = biasGelu(xw, b, !isFrozen(b)); // [B*T, inner]
      const down = this.linear(layer, 'mlp.c_proj', up, ctx); // [B*T, C]
      return tf.reshape(down, [B, T, C]) as tf.Tensor3D;
    }
    const up = this.linear(layer, 'mlp.c_fc', x, ctx); // [B*T, inner]
    const down = this.linear(layer, 'mlp.c_proj', geluNew(up) as tf.Tensor2D, ctx); // [B*T, C]
    return tf.reshape(down, [B, T, C]) as tf.Tensor3D;
  }

  /** Frees every weight (and cached derived tensors). */
}

/**
 * Attention after past keys (prefix tuning, P-tuning v2; a prompt after them) through our kernels,
 * which read qkv [B*T, 3C] and the past [B, H, P, D] in place and give the past its gradients (the
 * prefix encoder trains): on webgpu 2 dispatches forward and 3 backward
 * (kernels/webgpu/attention.ts); on wasm our SIMD kernels (kernels/wasm/attention.ts). Null where
 * they do not run (another backend, P > 2T on wasm such as a decoding step, a past of another batch
 * size or an empty cache): the caller takes the stock composition. `keyMask` [B, P + T] or null.
 */
function pastAttention(
  qkv: tf.Tensor2D,
  past: LayerKV,
  B: number,
  T: number,
  H: number,
  keyMask: tf.Tensor2D | null,
): tf.Tensor2D | null {
  const C = qkv.shape[1] / 3;
  if (!fusedKernelsOn()) return simdCausalAttention(qkv, B, T, H, keyMask ?? undefined, past);
  if (past.k.shape[0] !== B || past.v.shape[0] !== B || past.k.shape[2] === 0) return null;
  const qkv3 = tf.reshape(qkv, [B, T, 3 * C]) as tf.Tensor3D;
  const y = causalAttentionPackedPast(qkv3, past.k, past.v, H, 1 / Math.sqrt(C / H), keyMask ?? undefined);
  return tf.reshape(y, [B * T, C]) as tf.Tensor2D;
}

/**
 * Keys and values [B, S, C] as LayerKV ([B, nHead, S, headDim]), each built and transposed on first
 * read from `block(1)` (keys) and `block(2)` (values): training never reads them, generation and
 * the layer-by-layer trainer's callers do.
 */
function lazyKV(block: (i: 1 | 2) => tf.Tensor3D, H: number, D: number): LayerKV {
  const split = (t: tf.Tensor3D): tf.Tensor4D => {
    const [B, S] = t.shape;
    return tf.transpose(tf.reshape(t, [B, S, H, D]), [0, 2, 1, 3]) as tf.Tensor4D;
  };
  let kt: tf.Tensor4D | null = null;
  let vt: tf.Tensor4D | null = null;
  return {
    get k() {
      return (kt ??= split(block(1)));
    },
    get v() {
      return (vt ??= split(block(2)));
    },
  };
}

/**
 * Additive attention bias [B or 1, 1, T, P+T]: query i (absolute position P + i) sees keys j <= P + i,
 * and no padded key. Built on the CPU: it is a constant of the shapes, not a function of weights.
 */
export function attentionBias(T: number, P: number, B: number, keyMask?: tf.Tensor2D): tf.Tensor4D {
  const S = P + T;
  const causal = new Float32Array(T * S);
  for (let i = 0; i < T; i++) for (let j = P + i + 1; j < S; j++) causal[i * S + j] = MASKED;
  const bias = tf.tensor4d(causal, [1, 1, T, S]);
  if (!keyMask) return bias;
  if (keyMask.shape[0] !== B || keyMask.shape[1] !== S) {
    throw new InternalError(`attentionMask has shape [${keyMask.shape}] but the keys are [${B}, ${S}]`);
  }
  const pad = tf.mul(tf.sub(1, tf.reshape(tf.cast(keyMask, 'float32'), [B, 1, 1, S])), MASKED);
  return tf.add(bias, pad) as tf.Tensor4D;
}
