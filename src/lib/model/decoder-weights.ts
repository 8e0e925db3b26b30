/**
 * The weight table every decoder family keeps (gpt2.ts, llama.ts): lookup by canonical name, the
 * switch between full fine-tuning and frozen weights, and the LM head transposed to [C, V], cached
 * while it is frozen so a step does not transpose the largest matrix again.
 */
import * as tf from '@tensorflow/tfjs';
import { InternalError } from '../errors';
import { isFrozen } from './ops';

export abstract class DecoderWeights {
  /** The LM head table [V, C] in `weights` (the embedding itself when tied). */
  abstract readonly lmHeadKey: string;
  private headTransposed: tf.Tensor2D | null = null;

  /** Canonical weight names -> weights (frozen ones have `trainable = false`). */
  constructor(readonly weights: Map<string, tf.Variable>) {}

  w(name: string): tf.Variable {
    const v = this.weights.get(name);
    // Internal: the loader checks every weight against the config (WeightsMismatchError).
    if (!v) throw new InternalError(`weight ${name} is missing`);
    return v;
  }

  /** Marks every base weight trainable or frozen (full fine-tuning vs adapters). */
  setTrainable(trainable: boolean): void {
    for (const v of this.weights.values()) v.trainable = trainable;
    this.invalidateCaches();
  }

  /** Call after changing base weights in place (merge, load), so derived tensors are rebuilt. */
  invalidateCaches(): void {
    this.headTransposed?.dispose();
    this.headTransposed = null;
  }

  /** The LM head transposed, [C, V]: cached while it is frozen, in-graph when it trains. */
  lmHeadT(): tf.Tensor2D {
    const head = this.w(this.lmHeadKey) as tf.Tensor2D;
    if (!isFrozen(head)) return tf.transpose(head);
    if (!this.headTransposed) this.headTransposed = tf.keep(tf.transpose(head));
    return this.headTransposed;
  }

  dispose(): void {
    this.invalidateCaches();
    for (const v of this.weights.values()) v.dispose();
    this.weights.clear();
  }
}
