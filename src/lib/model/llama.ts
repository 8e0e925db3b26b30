/**
 * The Llama family in tfjs (LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM), read top to
 * bottom like HF's modeling_llama.py:
 *   x = embed_tokens[ids]
 *   for each layer: x = x + o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))),  n = input_layernorm(x)
 *                   x = x + down_proj(silu(gate_proj(m)) * up_proj(m)),                  m = post_attention_layernorm(x)
 *   h = norm(x);  logits = h @ lm_head^T  (lm_head is embed_tokens when tied)
 * Grouped-query attention: nHead / nKvHead query heads share each key/value head (HF's repeat_kv);
 * the KV cache keeps the nKvHead heads. Mistral (and Qwen2 with use_sliding_window) limits a query
 * to the last `sliding_window` keys. The adapters' doors are gpt2.ts's (see decoder.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderModel } from './decoder';
import { DecoderWeights } from './decoder-weights';
import type { ForwardContext, ForwardOptions, ForwardResult, LayerKV, LinearHook } from './gpt2';
import type { LlamaConfig, LlamaLinearModule } from './llama-config';
import { LLAMA_LINEAR_MODULES } from './llama-config';
import { dense, embed, isFrozen, matmulFrozen, multiHeadAttention } from './ops';
import { InternalError } from '../errors';
import { fusedKernelsOn } from '../kernels/webgpu/active';
import { frozenLinear } from '../kernels/webgpu/halves';
import { simdCausalAttentionGqa } from '../kernels/wasm/attention';
import { gqaCausalAttention } from '../kernels/webgpu/attention';

/** A large negative number instead of -inf: a fully masked row stays finite instead of NaN. */
const MASKED = -1e9;

/**
 * What every layer of one call shares: cos and sin of the positions ([1, T, 1, D]) and one attention
 * bias per distinct window (keyed by windowKey). Tensors only, so tf.tidy returns it and tf.dispose
 * frees it.
 */
// A type alias (not an interface) so tf.tidy accepts it as a TensorContainer.
export type LlamaShared = {
  cos: tf.Tensor4D;
  sin: tf.Tensor4D;
  masks: Record<string, tf.Tensor4D>;
};

const windowKey = (window: number | null): string => (window === null ? 'full' : `window${window}`);

/**
 * Inverse rotary frequencies [D/2] after the config's scaling, for a call whose last position is
 * seqLen - 1 (HF's ROPE_INIT_FUNCTIONS: _compute_default_rope_parameters, _compute_linear_scaling_,
 * _compute_llama3_, _compute_dynamic_ntk_, _compute_yarn_ and _compute_longrope_parameters, with
 * dynamic_rope_update's choice of length). Only dynamic and longrope read seqLen. Exported for tests.
 */
export function ropeInverseFrequencies(c: LlamaConfig, seqLen = c.nPositions): Float64Array {
  const D = c.headDim;
  const s = c.ropeScaling;
  let base = c.ropeTheta;
  if (s.type === 'dynamic') {
    // The base grows once the sequence passes max_position_embeddings (below it, the plain base).
    const L = Math.max(seqLen, c.nPositions);
    base *= Math.pow((s.factor * L) / c.nPositions - (s.factor - 1), D / (D - 2));
  }
  const inv = new Float64Array(D / 2);
  for (let i = 0; i < D / 2; i++) inv[i] = 1 / Math.pow(base, (2 * i) / D);
  if (s.type === 'linear') for (let i = 0; i < inv.length; i++) inv[i]! /= s.factor;
  if (s.type === 'llama3') {
    const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < inv.length; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) inv[i] = f / s.factor;
      else if (wavelen >= highWavelen) {
        // The band between: a blend of scaled and unscaled by where the wavelength falls.
        const smooth =
          (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = ((1 - smooth) * f) / s.factor + smooth * f;
      }
    }
  }
  if (s.type === 'yarn') {
    // The dimension at which a frequency turns `rotations` times over the original context.
    const correctionDim = (rotations: number): number =>
      (D * Math.log(s.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
    let low = correctionDim(s.betaFast);
    let high = correctionDim(s.betaSlow);
    if (s.truncate) [low, high] = [Math.floor(low), Math.ceil(high)];
    low = Math.max(low, 0);
    high = Math.min(high, D - 1);
    if (low === high) high += 0.001; // HF's guard against a zero-width ramp
    for (let i = 0; i < inv.length; i++) {
      // 1 where the frequency is kept (extrapolated), 0 where it is divided by factor, a ramp between.
      const keep = 1 - Math.min(1, Math.max(0, (i - low) / (high - low)));
      inv[i] = (inv[i]! / s.factor) * (1 - keep) + inv[i]! * keep;
    }
  }
  if (s.type === 'longrope') {
    const ext = seqLen > s.originalMaxPositionEmbeddings ? s.longFactor : s.shortFactor;
    for (let i = 0; i < inv.length; i++) inv[i]! /= ext[i]!;
  }
  return inv;
}

/** What HF multiplies cos and sin by (its attention_scaling): YaRN's and LongRoPE's attention factor, else 1. */
export function ropeAttentionScaling(c: LlamaConfig): number {
  const s = c.ropeScaling;
  return s.type === 'yarn' || s.type === 'longrope' ? s.attentionFactor : 1;
}

/** True when the frequencies depend on the sequence length (dynamic NTK, LongRoPE). */
const lengthDependent = (c: LlamaConfig): boolean =>
  c.ropeScaling.type === 'dynamic' || c.ropeScaling.type === 'longrope';

/**
 * HF's rotate_half as a [D, D] matrix R, so rotate_half(x) = x R: x = [x1, x2] -> [-x2, x1]. One
 * frozen matmul (gradient dy R^T) instead of two slices, a negation and a concat.
 */
function rotateHalfMatrix(D: number): tf.Tensor2D {
  const h = D / 2;
  const r = new Float32Array(D * D);
  for (let i = 0; i < h; i++) {
    r[(i + h) * D + i] = -1; // out[i] = -x[i + h]
    r[i * D + i + h] = 1; // out[i + h] = x[i]
  }
  return tf.tensor2d(r, [D, D]);
}

export class LlamaModel extends DecoderWeights implements DecoderModel {
  readonly config: LlamaConfig;
  readonly family: LlamaConfig['modelType'];
  readonly hooks = new Map<string, LinearHook>();
  readonly embeddingKey = 'embed_tokens.weight';
  readonly lmHeadKey: string;
  /** The frequencies when they do not depend on the sequence length (see ropeInverseFrequencies). */
  private readonly invFreq: Float64Array;
  private readonly ropeScale: number;
  private readonly rotate: tf.Tensor2D;

  constructor(config: LlamaConfig, weights: Map<string, tf.Variable>) {
    super(weights);
    this.config = config;
    this.family = config.modelType;
    this.lmHeadKey = config.tieWordEmbeddings ? 'embed_tokens.weight' : 'lm_head.weight';
    this.invFreq = ropeInverseFrequencies(config);
    this.ropeScale = ropeAttentionScaling(config);
    this.rotate = tf.keep(rotateHalfMatrix(config.headDim));
  }

  embedTokens(ids: tf.Tensor2D): tf.Tensor3D {
    return embed(this.w('embed_tokens.weight') as tf.Tensor2D, ids) as tf.Tensor3D;
  }

  /**
   * weightsF16 holds every layer's seven linear-layer matrices as halves (linear() reads them). The
   * rest stays f32: the embedding (gathered by id), the RMSNorm weights (vectors), the biases
   * (Qwen2's q/k/v) and the LM head, tied or not (read whole by heads.ts through lmHeadT).
   */
  protected override halfKeys(): string[] {
    return Array.from({ length: this.config.nLayer }, (_, i) =>
      LLAMA_LINEAR_MODULES.map((m) => `layers.${i}.${m}.weight`),
    ).flat();
  }

  /** One named linear layer on x [N, in], with its hook if any (the bias only where the family has one). */
  linear(layer: number, module: LlamaLinearModule, x: tf.Tensor2D, ctx: ForwardContext): tf.Tensor2D {
    const p = `layers.${layer}.${module}`;
    const hook = this.hooks.get(p);
    const xin = hook?.input ? hook.input(x, ctx) : x;
    const b = this.weights.get(`${p}.bias`) as tf.Tensor1D | undefined;
    const frozenBias = !b || isFrozen(b);
    const half = this.halves.get(`${p}.weight`);
    if (half) {
      // weightsF16: W is read as halves in place, by the hook's fused kernel or by frozenLinear.
      const fusedHalf = hook?.fused && fusedKernelsOn() ? hook.fused(xin, half, b, ctx) : null;
      if (fusedHalf) return fusedHalf;
      const base = frozenBias
        ? frozenLinear(xin, half, b)
        : (tf.add(frozenLinear(xin, half), b!) as tf.Tensor2D);
      return hook ? hook.apply(xin, base, ctx) : base;
    }
    const w = this.w(`${p}.weight`) as tf.Tensor2D;
    const fused = hook?.fused && fusedKernelsOn() ? hook.fused(xin, w, b, ctx) : null;
    if (fused) return fused;
    // A frozen layer on WebGPU: our tiled product, dx in one dispatch (as gpt2.ts's linear()).
    const ours = fusedKernelsOn() && isFrozen(w) && frozenBias;
    const base = ours ? frozenLinear(xin, w, b) : dense(xin, w, b);
    return hook ? hook.apply(xin, base, ctx) : base;
  }

  forward(opts: ForwardOptions): ForwardResult {
    const { x: x0, mask: shared, ctx } = this.prelude(opts);
    let x = x0;
    const presents: LayerKV[] = [];
    for (let i = 0; i < this.config.nLayer; i++) {
      const out = this.block(i, x, shared, opts.past?.[i], ctx);
      if (opts.returnPresents) presents.push(out.present);
      x = out.x;
    }
    return { hidden: this.finalNorm(x), presents: opts.returnPresents ? presents : undefined };
  }

  /**
   * What comes before the first layer: token (or given) embeddings, what every layer shares (the
   * rotary tables and one attention bias per distinct window), and the per-call context. `forward`
   * is prelude, blocks, finalNorm; the offload trainer (src/lib/offload) runs them a layer at a time.
   */
  prelude(opts: ForwardOptions): { x: tf.Tensor3D; mask: LlamaShared; ctx: ForwardContext } {
    const c = this.config;
    const ctx: ForwardContext = {
      training: opts.training ?? false,
      seed: opts.seed ?? 0,
      causal: !opts.past?.length && !opts.attentionMask,
      keyMask: opts.past?.length ? undefined : opts.attentionMask,
      pastKeyMask: opts.past?.length ? (opts.attentionMask ?? null) : undefined,
    };
    const x = opts.inputsEmbeds ?? (opts.ids ? this.embedTokens(opts.ids) : null);
    if (!x) throw new InternalError('forward needs ids or inputsEmbeds');
    const [B, T] = x.shape;
    const pastLen = opts.past?.[0]?.k.shape[2] ?? 0;
    const offset = opts.positionOffset ?? pastLen;
    const { cos, sin } = this.rope(offset, T);
    // One additive bias per distinct window (full causal, or Mistral's sliding window).
    const masks: Record<string, tf.Tensor4D> = {};
    for (const window of new Set(c.slidingWindow)) {
      masks[windowKey(window)] = llamaAttentionBias(T, pastLen, B, window, opts.attentionMask);
    }
    return { x, mask: { cos, sin, masks }, ctx };
  }

  /** One decoder layer: x + attn(input_layernorm(x)), then + mlp(post_attention_layernorm(.)). */
  block(
    i: number,
    x: tf.Tensor3D,
    shared: LlamaShared,
    past: LayerKV | undefined,
    ctx: ForwardContext,
  ): { x: tf.Tensor3D; present: LayerKV } {
    const c = this.config;
    const mask = shared.masks[windowKey(c.slidingWindow[i] ?? null)];
    if (!mask) throw new InternalError(`no attention bias for layer ${i}: build it with prelude()`);
    const n = rmsNorm(x, this.w(`layers.${i}.input_layernorm.weight`) as tf.Tensor1D, c.rmsNormEps);
    const window = c.slidingWindow[i] ?? null;
    // Our fused kernel is causal (with the padding mask, ctx.keyMask, where there is one): a window
    // that hides keys within these T positions needs the stock bias.
    // With past keys (prefix tuning, P-tuning v2: ctx.pastKeyMask set), the window must cover them too.
    const S = x.shape[1] + (past ? past.k.shape[2] : 0);
    const fusable =
      (past ? ctx.pastKeyMask !== undefined : ctx.causal === true || ctx.keyMask !== undefined) &&
      (window === null || window >= S);
    const { out, present } = this.attention(i, n, shared.cos, shared.sin, mask, past, ctx, fusable);
    const y = tf.add(x, out) as tf.Tensor3D;
    const m = rmsNorm(y, this.w(`layers.${i}.post_attention_layernorm.weight`) as tf.Tensor1D, c.rmsNormEps);
    return { x: tf.add(y, this.mlp(i, m, ctx)) as tf.Tensor3D, present };
  }

  /** The final RMSNorm: the hidden states the heads read. */
  finalNorm(x: tf.Tensor3D): tf.Tensor3D {
    return rmsNorm(x, this.w('norm.weight') as tf.Tensor1D, this.config.rmsNormEps);
  }

  /**
   * cos and sin of every (position, frequency) pair, [1, T, 1, D], in HF's cat(freqs, freqs) order,
   * times the attention scaling. Dynamic NTK and LongRoPE take the frequencies for this call's
   * length (offset + T), as HF's dynamic_rope_update does per forward: in generation each new token
   * gets its own position's, while the cached keys keep those they were rotated with.
   */
  private rope(offset: number, T: number): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
    const D = this.config.headDim;
    const h = D / 2;
    const inv = lengthDependent(this.config) ? ropeInverseFrequencies(this.config, offset + T) : this.invFreq;
    const cos = new Float32Array(T * D);
    const sin = new Float32Array(T * D);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < h; i++) {
        const a = (offset + t) * inv[i]!;
        cos[t * D + i] = cos[t * D + i + h] = this.ropeScale * Math.cos(a);
        sin[t * D + i] = sin[t * D + i + h] = this.ropeScale * Math.sin(a);
      }
    }
    return { cos: tf.tensor4d(cos, [1, T, 1, D]), sin: tf.tensor4d(sin, [1, T, 1, D]) };
  }

  /** x [B, T, nHeads * D] -> the same with rotary embeddings: x cos + rotate_half(x) sin, per head. */
  private applyRope(
    x: tf.Tensor2D,
    B: number,
    T: number,
    heads: number,
    cos: tf.Tensor4D,
    sin: tf.Tensor4D,
  ): tf.Tensor3D {
    const D = this.config.headDim;
    const flat = tf.reshape(x, [B * T * heads, D]) as tf.Tensor2D; // [B*T*heads, D]
    const rotated = tf.reshape(matmulFrozen(flat, this.rotate), [B, T, heads, D]);
    const y = tf.add(tf.mul(tf.reshape(x, [B, T, heads, D]), cos), tf.mul(rotated, sin)); // [B, T, heads, D]
    return tf.reshape(y, [B, T, heads * D]) as tf.Tensor3D;
  }

  private attention(
    layer: number,
    n: tf.Tensor3D,
    cos: tf.Tensor4D,
    sin: tf.Tensor4D,
    mask: tf.Tensor4D,
    past: LayerKV | undefined,
    ctx: ForwardContext,
    fusable: boolean,
  ): { out: tf.Tensor3D; present: LayerKV } {
    const { nHead: H, nKvHead: K, headDim: D, nEmbd: C } = this.config;
    const [B, T] = n.shape;
    const x = tf.reshape(n, [B * T, C]) as tf.Tensor2D;
    const q = this.applyRope(this.linear(layer, 'self_attn.q_proj', x, ctx), B, T, H, cos, sin); // [B, T, H*D]
    const k = this.applyRope(this.linear(layer, 'self_attn.k_proj', x, ctx), B, T, K, cos, sin); // [B, T, K*D]
    const v = tf.reshape(this.linear(layer, 'self_attn.v_proj', x, ctx), [B, T, K * D]) as tf.Tensor3D;
    if (!past && this.fusedOnWebGpu(layer, T, ctx)) {
      // Our WebGPU kernel: each key/value head read in place by its query heads, padded keys masked.
      const y = gqaCausalAttention(q, k, v, H, 1 / Math.sqrt(D), ctx.keyMask); // [B, T, H*D]
      const out = this.linear(layer, 'self_attn.o_proj', tf.reshape(y, [B * T, H * D]) as tf.Tensor2D, ctx);
      return { out: tf.reshape(out, [B, T, C]) as tf.Tensor3D, present: lazyKV(k, v, K, D) };
    }
    // Past [B, K, P, D] -> [B, P, K*D], heads side by side as the new keys are.
    const merge = (t: tf.Tensor4D): tf.Tensor3D =>
      tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [B, t.shape[2], K * D]) as tf.Tensor3D;
    const kAll = past ? (tf.concat([merge(past.k), k], 1) as tf.Tensor3D) : k; // [B, S, K*D]
    const vAll = past ? (tf.concat([merge(past.v), v], 1) as tf.Tensor3D) : v;
    // On wasm, causal attention (plain, or under ctx.keyMask's padding; or after past keys, under
    // ctx.pastKeyMask, where P <= 2T) runs fused (kernels/wasm/attention.ts), each key/value head
    // read in place by its query heads; elsewhere the stock composition.
    const flat = (t: tf.Tensor3D, w: number): tf.Tensor2D => tf.reshape(t, [B * T, w]) as tf.Tensor2D;
    const y =
      (fusable
        ? simdCausalAttentionGqa(
            flat(q, H * D),
            flat(k, K * D),
            flat(v, K * D),
            B,
            T,
            H,
            K,
            past ? (ctx.pastKeyMask ?? undefined) : ctx.keyMask,
            past,
          )
        : null) ?? multiHeadAttention(q, repeatKv(kAll, K, H / K, D), repeatKv(vAll, K, H / K, D), mask, H); // [B, T, H*D] or [B*T, H*D]
    const out = this.linear(layer, 'self_attn.o_proj', tf.reshape(y, [B * T, H * D]) as tf.Tensor2D, ctx);
    return { out: tf.reshape(out, [B, T, C]) as tf.Tensor3D, present: lazyKV(kAll, vAll, K, D) };
  }

  /**
   * True when this layer's attention (no past keys) can run through our WebGPU kernel: the call is
   * causal, or causal but for padded keys, and the layer's sliding window (Mistral) hides no key
   * within these T positions (the kernel knows no window).
   */
  private fusedOnWebGpu(layer: number, T: number, ctx: ForwardContext): boolean {
    const window = this.config.slidingWindow[layer] ?? null;
    return fusedKernelsOn() && (ctx.causal === true || !!ctx.keyMask) && (window === null || window >= T);
  }

  /** SwiGLU: down(silu(gate(m)) * up(m)). */
  private mlp(layer: number, m: tf.Tensor3D, ctx: ForwardContext): tf.Tensor3D {
    const [B, T, C] = m.shape;
    const x = tf.reshape(m, [B * T, C]) as tf.Tensor2D;
    const gate = this.linear(layer, 'mlp.gate_proj', x, ctx); // [B*T, I]
    const up = this.linear(layer, 'mlp.up_proj', x, ctx); // [B*T, I]
    const down = this.linear(layer, 'mlp.down_proj', tf.mul(silu(gate), up) as tf.Tensor2D, ctx); // [B*T, C]
    return tf.reshape(down, [B, T, C]) as tf.Tensor3D;
  }

  override dispose(): void {
    this.rotate.dispose();
    super.dispose();
  }
}

/**
 * HF's repeat_kv in the side-by-side layout: [B, S, K*D] -> [B, S, K*rep*D], query head h reading
 * key/value head floor(h / rep). Exported for tests.
 */
export function repeatKv(x: tf.Tensor3D, K: number, rep: number, D: number): tf.Tensor3D {
  if (rep === 1) return x;
  const [B, S] = x.shape;
  // Rank 4: tfjs has no tile gradient above it.
  const t = tf.tile(tf.reshape(x, [B * S, K, 1, D]), [1, 1, rep, 1]); // [B*S, K, rep, D]
  return tf.reshape(t, [B, S, K * rep * D]) as tf.Tensor3D;
}

/** Keys and values [B, S, K*D] as LayerKV ([B, K, S, D]), built on first read (generation reads them). */
function lazyKV(k: tf.Tensor3D, v: tf.Tensor3D, K: number, D: number): LayerKV {
  const split = (t: tf.Tensor3D): tf.Tensor4D => {
    const [B, S] = t.shape;
    return tf.transpose(tf.reshape(t, [B, S, K, D]), [0, 2, 1, 3]) as tf.Tensor4D;
  };
  let kt: tf.Tensor4D | null = null;
  let vt: tf.Tensor4D | null = null;
  return {
    get k() {
      return (kt ??= split(k));
    },
    get v() {
      return (vt ??= split(v));
    },
  };
}

/**
 * RMSNorm (HF's LlamaRMSNorm): x * rsqrt(mean(x^2) + eps) * weight over the last axis. With a
 * frozen weight the gradient is written out (dx only):
 *   xhat = x * rstd,  dx = rstd * (g - xhat * mean(g * xhat)),  g = dy * weight
 */
export function rmsNorm(x: tf.Tensor3D, weight: tf.Tensor1D, eps: number): tf.Tensor3D {
  const stats = (xi: tf.Tensor): { xhat: tf.Tensor; rstd: tf.Tensor } => {
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.mul(xi, xi), -1, true), eps));
    return { xhat: tf.mul(xi, rstd), rstd };
  };
  if (!isFrozen(weight)) {
    const { xhat } = stats(x);
    return tf.mul(xhat, weight) as tf.Tensor3D;
  }
  const f = tf.customGrad((xi, save) => {
    const { xhat, rstd } = stats(xi as tf.Tensor);
    (save as tf.GradSaveFunc)([xhat, rstd]);
    return {
      value: tf.mul(xhat, weight),
      gradFunc: (dy, saved) => {
        const [xh, rs] = saved as [tf.Tensor, tf.Tensor];
        const g = tf.mul(dy as tf.Tensor, weight);
        return tf.mul(rs, tf.sub(g, tf.mul(xh, tf.mean(tf.mul(g, xh), -1, true))));
      },
    };
  }) as (x: tf.Tensor) => tf.Tensor;
  return f(x) as tf.Tensor3D;
}

/** silu(x) = x sigmoid(x); derivative s (1 + x (1 - s)). */
export const silu = tf.customGrad((xi, save) => {
  const x = xi as tf.Tensor;
  const s = tf.sigmoid(x);
  (save as tf.GradSaveFunc)([x, s]);
  return {
    value: tf.mul(x, s),
    gradFunc: (dy, saved) => {
      const [xs, ss] = saved as [tf.Tensor, tf.Tensor];
      return tf.mul(dy as tf.Tensor, tf.mul(ss, tf.add(1, tf.mul(xs, tf.sub(1, ss)))));
    },
  };
}) as (x: tf.Tensor) => tf.Tensor;

/**
 * Additive attention bias [B or 1, 1, T, P+T]: query i (position P + i) sees keys j <= P + i and,
 * with a window w, j > P + i - w (HF's sliding_window_overlay); no padded key.
 */
export function llamaAttentionBias(
  T: number,
  P: number,
  B: number,
  window: number | null,
  keyMask?: tf.Tensor2D,
): tf.Tensor4D {
  const S = P + T;
  const bias = new Float32Array(T * S);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < S; j++) {
      const q = P + i;
      if (j > q || (window !== null && j <= q - window)) bias[i * S + j] = MASKED;
    }
  }
  const causal = tf.tensor4d(bias, [1, 1, T, S]);
  if (!keyMask) return causal;
  if (keyMask.shape[0] !== B || keyMask.shape[1] !== S) {
    throw new InternalError(`attentionMask has shape [${keyMask.shape}] but the keys are [${B}, ${S}]`);
  }
  const pad = tf.mul(tf.sub(1, tf.reshape(tf.cast(keyMask, 'float32'), [B, 1, 1, S])), MASKED);
  return tf.add(causal, pad) as tf.Tensor4D;
}
