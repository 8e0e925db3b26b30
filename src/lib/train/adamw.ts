/**
 * AdamW (Loshchilov & Hutter 2019) with decoupled weight decay, written out so the epsilon is
 * explicit on every backend (tfjs's webgl Adam silently uses 1e-4) and the state can be saved:
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr * (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd * p)
 */
import * as tf from '@tensorflow/tfjs';
import { addMany, newVariable } from '../model/ops';
import { CheckpointError } from '../errors';
import { adamwOnWasm } from '../kernels/wasm/adamw';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of updates applied (t in the bias correction). */
  t = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.0;
  }

  /**
   * Applies one update to each named variable from its gradient, times `clipScale` when given (the
   * factor globalNormScale computes, so no clipped copy of each gradient need be made). Gradients
   * and the scale are not disposed. On wasm each variable's update is one SIMD pass of ours
   * (kernels/wasm/adamw.ts) with the same numbers, where it runs.
   */
  apply(
    vars: Map<string, tf.Variable>,
    grads: Map<string, tf.Tensor>,
    lr: number,
    decay?: (name: string) => boolean,
    clipScale?: tf.Tensor,
  ): void {
    this.t++;
    const c1 = 1 - Math.pow(this.beta1, this.t);
    const c2 = 1 - Math.pow(this.beta2, this.t);
    for (const [name, p] of vars) {
      const g = grads.get(name);
      if (!g) continue;
      let m = this.m.get(name);
      let v = this.v.get(name);
      if (!m || !v) {
        m = newVariable(tf.zerosLike(p), false);
        v = newVariable(tf.zerosLike(p), false);
        this.m.set(name, m);
        this.v.set(name, v);
      }
      const wd = decay === undefined || decay(name) ? this.weightDecay : 0;
      const step = { beta1: this.beta1, beta2: this.beta2, c1, c2, eps: this.eps, wd, lr };
      const fused = adamwOnWasm(p, m, v, g, clipScale ?? null, step);
      if (fused) {
        p.assign(fused);
        fused.dispose();
        continue;
      }
      tf.tidy(() => {
        const gi = clipScale ? tf.mul(g, clipScale) : g;
        const mNew = tf.add(tf.mul(m, this.beta1), tf.mul(gi, 1 - this.beta1));
        const vNew = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(gi), 1 - this.beta2));
        m.assign(mNew);
        v.assign(vNew);
        let update = tf.div(tf.div(mNew, c1), tf.add(tf.sqrt(tf.div(vNew, c2)), this.eps));
        if (wd > 0) update = tf.add(update, tf.mul(p, wd));
        p.assign(tf.sub(p, tf.mul(update, lr)));
      });
    }
  }

  /** Optimizer state for checkpoints: step count and the moments by variable name. */
  async state(): Promise<{ t: number; m: Map<string, Float32Array>; v: Map<string, Float32Array> }> {
    const read = async (src: Map<string, tf.Variable>): Promise<Map<string, Float32Array>> => {
      const out = new Map<string, Float32Array>();
      for (const [k, t] of src) out.set(k, (await t.data()) as Float32Array);
      return out;
    };
    return { t: this.t, m: await read(this.m), v: await read(this.v) };
  }

  /** Restores a state from `state()`: the step count and both moments by variable name. */
  loadState(
    st: { t: number; m: Map<string, Float32Array>; v: Map<string, Float32Array> },
    shapes: Map<string, number[]>,
  ): void {
    this.dispose();
    this.t = st.t;
    for (const [which, src] of [
      [this.m, st.m],
      [this.v, st.v],
    ] as const) {
      for (const [k, data] of src) {
        const shape = shapes.get(k);
        if (!shape) {
          throw new CheckpointError(
            `optimizer state names ${k}, which is not a trainable variable: the checkpoint is of another method or configuration; start the run again`,
          );
        }
        which.set(k, newVariable(tf.tensor(data, shape, 'float32'), false));
      }
    }
  }

  /** Bytes held by the moments (for the memory ledger). */
  bytes(): number {
    let n = 0;
    for (const t of this.m.values()) n += t.size * 4;
    for (const t of this.v.values()) n += t.size * 4;
    return n;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/**
 * Global L2 norm of the gradients, and the gradients scaled so that norm is at most maxNorm
 * (new tensors). Everything stays on the device: no readback here, which on WebGPU must be async.
 */
export function clipByGlobalNorm(
  grads: Map<string, tf.Tensor>,
  maxNorm: number,
): { norm: tf.Scalar; grads: Map<string, tf.Tensor> } {
  const { norm, scale } = globalNormScale(grads, maxNorm);
  const out = new Map<string, tf.Tensor>();
  for (const [k, g] of grads) out.set(k, tf.mul(g, scale));
  scale.dispose();
  return { norm, grads: out };
}

/**
 * The global L2 norm of the gradients and the factor clipping multiplies them by (min(1, maxNorm /
 * norm); 1 when maxNorm is 0), both on the device. An optimizer that applies the factor itself
 * (FusedAdamW on WebGPU) takes it instead of clipped copies of every gradient.
 */
export function globalNormScale(
  grads: Map<string, tf.Tensor>,
  maxNorm: number,
): { norm: tf.Scalar; scale: tf.Scalar } {
  return tf.tidy(() => {
    const sq = [...grads.values()].map((g) => tf.sum(tf.square(g)));
    const n = (sq.length ? tf.sqrt(addMany(sq)) : tf.scalar(0)) as tf.Scalar;
    return {
      norm: n,
      scale: (maxNorm > 0 ? tf.minimum(1, tf.div(maxNorm, tf.add(n, 1e-6))) : tf.scalar(1)) as tf.Scalar,
    };
  });
}
