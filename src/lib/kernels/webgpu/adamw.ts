/**
 * AdamW over every trainable tensor in two dispatches per tensor, where the stock update in
 * train/adamw.ts takes one dispatch per elementwise op (about 15 per tensor, 16 with decay, plus one
 * more for the clipping scale). Same formula, same rounding points, same epsilon placement:
 *   g = g * clipScale                       (when a scale from clipByGlobalNorm is given)
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr * (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd * p)
 * A tfjs program writes one output, and a variable's value must stay a tensor of its own shape (the
 * model reads it), so the two moments live together in one state tensor [2, size] per variable:
 *   dispatch 1  s' = (m', v') from g and s          (the new moments, one tensor)
 *   dispatch 2  p' from p and s'                    (recomputing the update from m', v')
 * and both are swapped into their variables by assign, which costs no dispatch.
 * FusedAdamW is a drop-in AdamW (same apply, state, loadState, bytes, dispose); on a backend other
 * than webgpu it runs the same two steps as stock ops, so it gives the same numbers everywhere.
 */
import * as tf from '@tensorflow/tfjs';
import { CheckpointError } from '../../errors';
import { newVariable } from '../../model/ops';
import { AdamW, type AdamWOptions } from '../../train/adamw';
import { flatProgram, onWebGpu, registerWebGpuKernel, runKernel, runProgram } from './program';

export const ADAMW_MOMENTS = 'PeftLabAdamWMoments';
export const ADAMW_PARAM = 'PeftLabAdamWParam';

type Info = tf.TensorInfo;
const sizeOf = (t: Info): number => t.shape.reduce((a, b) => a * b, 1);

let registered = false;
/** Registers both kernels with tfjs (once); FusedAdamW calls it. */
export function registerAdamW(): void {
  if (registered) return;
  registered = true;
  registerWebGpuKernel(ADAMW_MOMENTS, (inputs, backend, attrs) => {
    const { g, s, scale } = inputs as { g: Info; s: Info; scale?: Info };
    const { beta1, beta2 } = attrs as { beta1: number; beta2: number };
    const n = sizeOf(g);
    const program = flatProgram(
      `peftAdamWMoments_${scale ? 's' : ''}`,
      scale ? ['g', 's', 'scale'] : ['g', 's'],
      [2, n],
      n,
      'n: i32, b1: f32, c1m: f32, b2: f32, c2m: f32,',
      `
        fn main(index: i32) {
          if (index >= uniforms.n) { return; }
          let gi = g[index]${scale ? ' * scale[0]' : ''};
          result[index] = s[index] * uniforms.b1 + gi * uniforms.c1m;
          result[uniforms.n + index] = s[uniforms.n + index] * uniforms.b2 + (gi * gi) * uniforms.c2m;
        }`,
    );
    return runProgram(backend, program, scale ? [g, s, scale] : [g, s], [
      { type: 'int32', data: [n] },
      { type: 'float32', data: [beta1] },
      { type: 'float32', data: [1 - beta1] },
      { type: 'float32', data: [beta2] },
      { type: 'float32', data: [1 - beta2] },
    ]);
  });
  registerWebGpuKernel(ADAMW_PARAM, (inputs, backend, attrs) => {
    const { p, s } = inputs as { p: Info; s: Info };
    const a = attrs as { c1: number; c2: number; eps: number; wd: number; lr: number };
    const n = sizeOf(p);
    const program = flatProgram(
      `peftAdamWParam_${a.wd > 0 ? 'wd' : ''}`,
      ['p', 's'],
      p.shape,
      n,
      'n: i32, c1: f32, c2: f32, eps: f32, wd: f32, lr: f32,',
      `
        fn main(index: i32) {
          if (index >= uniforms.n) { return; }
          let pi = p[index];
          var u = (s[index] / uniforms.c1) / (sqrt(s[uniforms.n + index] / uniforms.c2) + uniforms.eps);
          ${a.wd > 0 ? 'u = u + pi * uniforms.wd;' : ''}
          result[index] = pi - u * uniforms.lr;
        }`,
    );
    return runProgram(
      backend,
      program,
      [p, s],
      [
        { type: 'int32', data: [n] },
        { type: 'float32', data: [a.c1] },
        { type: 'float32', data: [a.c2] },
        { type: 'float32', data: [a.eps] },
        { type: 'float32', data: [a.wd] },
        { type: 'float32', data: [a.lr] },
      ],
    );
  });
}

/**
 * AdamW (train/adamw.ts) in two dispatches per variable on webgpu. `apply` also takes the scale
 * clipByGlobalNorm computes, so the clipped gradients need not be materialised (one dispatch per
 * variable fewer again): pass the raw gradients and `clip.scale` instead of `clip.grads`.
 */
export class FusedAdamW extends AdamW {
  /** Per variable: [2, size], m in row 0 and v in row 1. */
  private readonly moments = new Map<string, tf.Variable>();

  constructor(opts: AdamWOptions = {}) {
    super(opts);
  }

  override apply(
    vars: Map<string, tf.Variable>,
    grads: Map<string, tf.Tensor>,
    lr: number,
    decay?: (name: string) => boolean,
    clipScale?: tf.Tensor,
  ): void {
    this.t++;
    const c1 = 1 - Math.pow(this.beta1, this.t);
    const c2 = 1 - Math.pow(this.beta2, this.t);
    const gpu = onWebGpu();
    if (gpu) registerAdamW();
    for (const [name, p] of vars) {
      const g = grads.get(name);
      if (!g) continue;
      let s = this.moments.get(name);
      if (!s) {
        s = newVariable(tf.zeros([2, p.size]), false);
        this.moments.set(name, s);
      }
      const wd = decay === undefined || decay(name) ? this.weightDecay : 0;
      const st = s;
      tf.tidy(() => {
        const attrs = { beta1: this.beta1, beta2: this.beta2 };
        const sNew = gpu
          ? runKernel(ADAMW_MOMENTS, clipScale ? { g, s: st, scale: clipScale } : { g, s: st }, attrs)
          : this.momentsStock(g, st, clipScale);
        const pNew = gpu
          ? runKernel(ADAMW_PARAM, { p, s: sNew }, { c1, c2, eps: this.eps, wd, lr })
          : this.paramStock(p, sNew, c1, c2, wd, lr);
        st.assign(sNew as tf.Tensor2D);
        p.assign(pNew);
      });
    }
  }

  /** The moments kernel as stock ops (non-webgpu backends): the same products in the same order. */
  private momentsStock(g: tf.Tensor, s: tf.Tensor, clipScale?: tf.Tensor): tf.Tensor {
    const gi = tf.reshape(clipScale ? tf.mul(g, clipScale) : g, [1, -1]);
    const [m, v] = tf.split(s, 2, 0) as [tf.Tensor, tf.Tensor];
    const mNew = tf.add(tf.mul(m, this.beta1), tf.mul(gi, 1 - this.beta1));
    const vNew = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(gi), 1 - this.beta2));
    return tf.concat([mNew, vNew], 0);
  }

  private paramStock(p: tf.Tensor, s: tf.Tensor, c1: number, c2: number, wd: number, lr: number): tf.Tensor {
    const [m, v] = (tf.split(s, 2, 0) as [tf.Tensor, tf.Tensor]).map((x) => tf.reshape(x, p.shape));
    let update = tf.div(tf.div(m!, c1), tf.add(tf.sqrt(tf.div(v!, c2)), this.eps));
    if (wd > 0) update = tf.add(update, tf.mul(p, wd));
    return tf.sub(p, tf.mul(update, lr));
  }

  override async state(): Promise<{ t: number; m: Map<string, Float32Array>; v: Map<string, Float32Array> }> {
    const m = new Map<string, Float32Array>();
    const v = new Map<string, Float32Array>();
    for (const [k, s] of this.moments) {
      const data = (await s.data()) as Float32Array;
      const n = s.size / 2;
      m.set(k, data.slice(0, n));
      v.set(k, data.slice(n));
    }
    return { t: this.t, m, v };
  }

  override loadState(
    st: { t: number; m: Map<string, Float32Array>; v: Map<string, Float32Array> },
    shapes: Map<string, number[]>,
  ): void {
    this.dispose();
    this.t = st.t;
    for (const [k, m] of st.m) {
      const shape = shapes.get(k);
      const v = st.v.get(k);
      if (!shape || !v) {
        throw new CheckpointError(
          `optimizer state names ${k}, which is not a trainable variable or lacks its second moment: the checkpoint is of another method or configuration; start the run again`,
        );
      }
      const both = new Float32Array(m.length * 2);
      both.set(m);
      both.set(v, m.length);
      this.moments.set(k, newVariable(tf.tensor2d(both, [2, m.length]), false));
    }
  }

  override bytes(): number {
    let n = 0;
    for (const s of this.moments.values()) n += s.size * 4;
    return n;
  }

  override dispose(): void {
    super.dispose();
    for (const s of this.moments.values()) s.dispose();
    this.moments.clear();
  }
}
