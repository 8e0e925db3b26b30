/**
 * What every decoder family offers the rest of PEFT Lab (trainer, generation, heads, PEFT methods),
 * so they never ask which family they run on. gpt2.ts and llama.ts implement it; a next family is
 * one more implementation (plus its config reader, listed in family.ts).
 *
 * Adapters reach a model through the same three doors in every family: `LinearHook`s around named
 * linear layers, input embeddings given by the caller, and per-layer past keys/values.
 */
import type * as tf from '@tensorflow/tfjs';
import { ModelConfigError } from '../errors';
import type { ForwardContext, ForwardOptions, ForwardResult, LayerKV, LinearHook } from './gpt2';
import { Gpt2Model } from './gpt2';
import type { DecoderConfig, ModelFamily } from './family';
import { FAMILY_LABEL } from './family';
import type { LlamaShared } from './llama';

export type { ForwardContext, ForwardOptions, ForwardResult, LayerKV, LinearHook } from './gpt2';

/**
 * What `prelude` hands every block of one call: GPT-2's attention bias, or Llama's rotary tables and
 * biases per window. Only the model that made it reads it; tf.dispose frees it.
 */
export type BlockShared = tf.Tensor4D | LlamaShared;

export interface DecoderModel {
  readonly family: ModelFamily;
  readonly config: DecoderConfig;
  /** Canonical weight names -> weights (frozen ones have `trainable = false`). */
  readonly weights: Map<string, tf.Variable>;
  /** Hooks by linear layer key (e.g. `h.3.mlp.c_fc`, `layers.3.self_attn.q_proj`). */
  readonly hooks: Map<string, LinearHook>;
  /** The input embedding table [V, C] in `weights`. */
  readonly embeddingKey: string;
  /** The LM head table [V, C] in `weights` (the embedding itself when tied). */
  readonly lmHeadKey: string;
  w(name: string): tf.Variable;
  setTrainable(trainable: boolean): void;
  /** True while the frozen linear-layer matrices are held as f16 halves (decoder-weights.ts). */
  readonly weightsF16: boolean;
  /** Holds the frozen linear-layer matrices as f16 halves (WebGPU only); returns the bytes freed. */
  packWeightsF16(): Promise<number>;
  /** Back to f32 variables: the rounded values, or `exact`'s (decoder-weights.ts); a no-op when nothing is packed. */
  unpackWeightsF16(exact?: (name: string) => tf.Tensor | undefined): void;
  /** Call after changing base weights in place (merge, load), so derived tensors are rebuilt. */
  invalidateCaches(): void;
  /** The LM head transposed, [C, V]: cached while it is frozen. */
  lmHeadT(): tf.Tensor2D;
  /** Token embeddings: [B, T] -> [B, T, C]. */
  embedTokens(ids: tf.Tensor2D): tf.Tensor3D;
  /** Final hidden states (after the last norm), with presents when asked. */
  forward(opts: ForwardOptions): ForwardResult;
  /**
   * `forward` in pieces, for running a layer at a time (gradient checkpointing, paging layers):
   * forward = prelude, block 0..nLayer-1 (each reading the prelude's `mask`), finalNorm.
   */
  prelude(opts: ForwardOptions): { x: tf.Tensor3D; mask: BlockShared; ctx: ForwardContext };
  block(
    i: number,
    x: tf.Tensor3D,
    mask: BlockShared,
    past: LayerKV | undefined,
    ctx: ForwardContext,
  ): { x: tf.Tensor3D; present: LayerKV };
  finalNorm(x: tf.Tensor3D): tf.Tensor3D;
  dispose(): void;
}

/**
 * The model as a GPT-2 where a feature has not come to the other families yet (the swarm, merging
 * into a folder); any other family is a ModelConfigError that says so.
 */
export function requireGpt2(model: DecoderModel, feature: string): Gpt2Model {
  if (model instanceof Gpt2Model) return model;
  throw new ModelConfigError(
    `${feature} runs on GPT-2 models only for now; this model is ${FAMILY_LABEL[model.family]}. Use a GPT-2 folder, or the CLI's generate, train and eval, which take either family`,
  );
}
