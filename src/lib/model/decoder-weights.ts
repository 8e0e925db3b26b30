/**
 * The weight table every decoder family keeps (gpt2.ts, llama.ts): lookup by canonical name, the
 * switch between full fine-tuning and frozen weights, and the LM head transposed to [C, V], cached
 * while it is frozen so a step does not transpose the largest matrix again.
 *
 * weightsF16 (packWeightsF16): on WebGPU, the family's frozen linear-layer matrices may be held as
 * f16 halves instead (kernels/webgpu/halves.ts), half the GPU memory of those weights; the forward
 * reads them through kernels that unpack in place and accumulate in f32. While packed they are not
 * in `weights`, and `w()` of one throws SettingsError: merging, saving, offloading or full
 * fine-tuning needs unpackWeightsF16() first (setTrainable(true) does it itself).
 */
import * as tf from '@tensorflow/tfjs';
import { BackendError, InternalError, SettingsError } from '../errors';
import { HalfMatrix, packHalves, unpackHalves } from '../kernels/webgpu/halves';
import { onWebGpu } from '../kernels/webgpu/program';
import { isFrozen, newVariable } from './ops';

export abstract class DecoderWeights {
  /** The LM head table [V, C] in `weights` (the embedding itself when tied). */
  abstract readonly lmHeadKey: string;
  private headTransposed: tf.Tensor2D | null = null;
  /** Frozen matrices held as f16 halves (packWeightsF16), by name; absent from `weights` meanwhile. */
  readonly halves = new Map<string, HalfMatrix>();
  /** The names of `weights` in load order, kept while packed so unpacking restores the order. */
  private order: string[] = [];

  /** Canonical weight names -> weights (frozen ones have `trainable = false`). */
  constructor(readonly weights: Map<string, tf.Variable>) {}

  w(name: string): tf.Variable {
    const v = this.weights.get(name);
    if (!v && this.halves.has(name)) {
      throw new SettingsError(
        `weight ${name} is held as f16 halves (weightsF16), which only the WebGPU linear layers read: unpack the weights (unpackWeightsF16) before merging, saving, offloading or full fine-tuning, or use a method whose layers read them (LoRA, IA3, ...)`,
      );
    }
    // Internal: the loader checks every weight against the config (WeightsMismatchError).
    if (!v) throw new InternalError(`weight ${name} is missing`);
    return v;
  }

  /** Marks every base weight trainable or frozen (full fine-tuning vs adapters). */
  setTrainable(trainable: boolean): void {
    // Weights that train are f32: halves are for frozen weights only.
    if (trainable) this.unpackWeightsF16();
    for (const v of this.weights.values()) v.trainable = trainable;
    this.invalidateCaches();
  }

  /** The matrices packWeightsF16 may hold as halves: those the family's forward reads as halves. */
  protected halfKeys(): string[] {
    return [];
  }

  /** True while some weights are held as f16 halves. */
  get weightsF16(): boolean {
    return this.halves.size > 0;
  }

  /**
   * Holds the family's frozen linear-layer matrices as f16 halves (each rounded to the nearest f16,
   * once) and frees their f32 copies: half those weights' GPU memory and bandwidth. WebGPU only;
   * weights that train are left f32. Returns the bytes freed.
   */
  async packWeightsF16(): Promise<number> {
    if (!onWebGpu()) {
      throw new BackendError(
        `weightsF16 holds frozen weights for the WebGPU kernels, and the backend is ${tf.getBackend()}: switch to webgpu or leave weightsF16 off`,
      );
    }
    const keys = this.halfKeys().filter((k) => {
      const v = this.weights.get(k);
      return v && isFrozen(v) && v.rank === 2;
    });
    if (!this.halfKeys().length) {
      throw new SettingsError(`weightsF16 is not available for this model family yet: leave weightsF16 off`);
    }
    if (!this.halves.size) this.order = [...this.weights.keys()];
    let freed = 0;
    for (const k of keys) {
      const v = this.weights.get(k)!;
      const h = packHalves((await v.data()) as Float32Array, v.shape as [number, number], k);
      freed += v.size * 4 - h.bytes;
      this.halves.set(k, h);
      this.weights.delete(k);
      v.dispose();
    }
    this.invalidateCaches();
    return freed;
  }

  /**
   * Back to f32 variables (frozen); a no-op when none are held as halves. They hold the rounded
   * values the halves held, or, given `exact` (the same weights as loaded, e.g. a fresh model's
   * `weights.get`), the values as loaded: what a run without f16 weights after one with them needs.
   */
  unpackWeightsF16(exact?: (name: string) => tf.Tensor | undefined): void {
    if (!this.halves.size) return;
    for (const [k, h] of this.halves) {
      const original = exact?.(k);
      if (original && original.shape.join() !== h.shape.join()) {
        throw new InternalError(`weight ${k} was [${h.shape}] but the exact copy is [${original.shape}]`);
      }
      this.weights.set(
        k,
        newVariable(
          tf.tidy(() => (original ? tf.clone(original) : unpackHalves(h))),
          false,
        ),
      );
      h.dispose();
    }
    this.halves.clear();
    const entries = this.order.map((k) => [k, this.weights.get(k)!] as const);
    this.weights.clear();
    for (const [k, v] of entries) this.weights.set(k, v);
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
    for (const h of this.halves.values()) h.dispose();
    this.halves.clear();
    for (const v of this.weights.values()) v.dispose();
    this.weights.clear();
  }
}
