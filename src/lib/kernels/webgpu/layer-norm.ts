/**
 * LayerNorm over the last axis of x [N, D]: y = (x - mean) rstd gamma + beta, rstd = 1/sqrt(var + eps).
 *   forward   stats [N, 2] = (mean, rstd) per row        1 dispatch (one thread per row)
 *             y = (x - mean) rstd gamma + beta            1 dispatch (one thread per element)
 *   backward  dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma   1 dispatch (per row)
 *             [dgamma; dbeta] [2, D] = column sums of (dy xhat; dy)         1 dispatch, only when
 *             gamma and beta train (a LoRA step freezes them and skips it)
 * Stock tfjs (ops.ts's layerNorm) takes about 9 dispatches forward and 15 or more backward.
 * The stats are saved from the forward pass, so backward never recomputes the mean.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { flatProgram, onWebGpu, registerWebGpuKernel, runKernel, runProgram, type Uniform } from './program';

export const LN_STATS = 'PeftLabLayerNormStats';
export const LN_APPLY = 'PeftLabLayerNormApply';
export const LN_DX = 'PeftLabLayerNormDx';
export const LN_DPARAMS = 'PeftLabLayerNormDParams';

type Info = tf.TensorInfo;

function reg(name: string, f: (i: Record<string, Info>, be: WebGPUBackend, eps: number) => Info): void {
  registerWebGpuKernel<{ eps?: number }>(name, (i, be, a) => f(i, be, a.eps ?? 0));
}

const rowsCols = (x: Info): [number, number] => {
  const D = x.shape[x.shape.length - 1]!;
  return [x.shape.reduce((p, d) => p * d, 1) / D, D];
};
const ints = (...v: number[]): Uniform[] => v.map((x) => ({ type: 'int32', data: [x] }));

let registered = false;
export function registerLayerNorm(): void {
  if (registered) return;
  registered = true;
  reg(LN_STATS, (i, be, eps) => {
    const [N, D] = rowsCols(i.x!);
    // Two passes over the row (mean, then centred squares): as accurate as the stock composition.
    const p = flatProgram(
      'peftLnStats',
      ['x'],
      [N, 2],
      N,
      'rows: i32, D: i32, eps: f32,',
      `fn main(index: i32) {
        if (index >= uniforms.rows) { return; }
        let o = index * uniforms.D;
        var s = 0.0;
        for (var j = 0; j < uniforms.D; j++) { s = s + x[o + j]; }
        let mean = s / f32(uniforms.D);
        var v = 0.0;
        for (var j = 0; j < uniforms.D; j++) { let c = x[o + j] - mean; v = fma(c, c, v); }
        result[index * 2] = mean;
        result[index * 2 + 1] = inverseSqrt(v / f32(uniforms.D) + uniforms.eps);
      }`,
    );
    return runProgram(be, p, [i.x!], [...ints(N, D), { type: 'float32', data: [eps] }]);
  });
  reg(LN_APPLY, (i, be) => {
    const [N, D] = rowsCols(i.x!);
    const p = flatProgram(
      'peftLnApply',
      ['x', 'stats', 'gamma', 'beta'],
      i.x!.shape,
      N * D,
      'total: i32, D: i32,',
      `fn main(index: i32) {
        if (index >= uniforms.total) { return; }
        let r = index / uniforms.D;
        let c = index - r * uniforms.D;
        result[index] = (x[index] - stats[r * 2]) * stats[r * 2 + 1] * gamma[c] + beta[c];
      }`,
    );
    return runProgram(be, p, [i.x!, i.stats!, i.gamma!, i.beta!], ints(N * D, D));
  });
  reg(LN_DX, (i, be) => {
    const [N, D] = rowsCols(i.x!);
    const p = flatProgram(
      'peftLnDx',
      ['dy', 'x', 'stats', 'gamma'],
      i.x!.shape,
      N,
      'rows: i32, D: i32,',
      `fn main(index: i32) {
        if (index >= uniforms.rows) { return; }
        let o = index * uniforms.D;
        let mean = stats[index * 2];
        let rstd = stats[index * 2 + 1];
        var sg = 0.0;
        var sgx = 0.0;
        for (var j = 0; j < uniforms.D; j++) {
          let g = dy[o + j] * gamma[j];
          sg = sg + g;
          sgx = fma(g, (x[o + j] - mean) * rstd, sgx);
        }
        let mg = sg / f32(uniforms.D);
        let mgx = sgx / f32(uniforms.D);
        for (var j = 0; j < uniforms.D; j++) {
          let xhat = (x[o + j] - mean) * rstd;
          result[o + j] = rstd * (dy[o + j] * gamma[j] - mg - xhat * mgx);
        }
      }`,
    );
    return runProgram(be, p, [i.dy!, i.x!, i.stats!, i.gamma!], ints(N, D));
  });
  reg(LN_DPARAMS, (i, be) => {
    const [N, D] = rowsCols(i.x!);
    const p = flatProgram(
      'peftLnDParams',
      ['dy', 'x', 'stats'],
      [2, D],
      2 * D,
      'rows: i32, D: i32,',
      `fn main(index: i32) {
        if (index >= 2 * uniforms.D) { return; }
        let c = index % uniforms.D;
        let isGamma = index < uniforms.D;
        var s = 0.0;
        for (var r = 0; r < uniforms.rows; r++) {
          let o = r * uniforms.D + c;
          let w = select(1.0, (x[o] - stats[r * 2]) * stats[r * 2 + 1], isGamma);
          s = fma(dy[o], w, s);
        }
        result[index] = s;
      }`,
    );
    return runProgram(be, p, [i.dy!, i.x!, i.stats!], ints(N, D));
  });
}

/** The stock composition (as ops.ts's forward): mean, centred variance, rsqrt, scale and shift. */
export function layerNormStock(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const rstd = tf.rsqrt(tf.add(tf.mean(tf.mul(xc, xc), -1, true), eps));
  return tf.add(tf.mul(tf.mul(xc, rstd), gamma), beta);
}

/**
 * LayerNorm of x [..., D] with gamma, beta [D]. With `trainAffine` false (a frozen base model's
 * norms) only dx is computed; otherwise dgamma and dbeta too.
 */
export function layerNorm(
  x: tf.Tensor,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
  trainAffine = true,
): tf.Tensor {
  if (!onWebGpu()) {
    if (trainAffine) return layerNormStock(x, gamma, beta, eps);
    const f = tf.customGrad((xi, save) => {
      (save as tf.GradSaveFunc)([xi as tf.Tensor]);
      return {
        value: layerNormStock(xi as tf.Tensor, gamma, beta, eps),
        gradFunc: (dy, saved) =>
          tf.grad((z: tf.Tensor) => layerNormStock(z, gamma, beta, eps))(saved[0]!, dy as tf.Tensor),
      };
    }) as (x: tf.Tensor) => tf.Tensor;
    return f(x);
  }
  registerLayerNorm();
  const forward = (xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
    const stats = runKernel(LN_STATS, { x: xi }, { eps });
    return { stats, y: runKernel(LN_APPLY, { x: xi, stats, gamma: g, beta: b }) };
  };
  if (!trainAffine) {
    const f = tf.customGrad((xi, save) => {
      const { stats, y } = forward(xi as tf.Tensor, gamma, beta);
      (save as tf.GradSaveFunc)([xi as tf.Tensor, stats]);
      return {
        value: y,
        gradFunc: (dy, saved) =>
          runKernel(LN_DX, { dy: dy as tf.Tensor, x: saved[0]!, stats: saved[1]!, gamma }),
      };
    }) as (x: tf.Tensor) => tf.Tensor;
    return f(x);
  }
  const f = tf.customGrad((xi, gi, bi, save) => {
    const { stats, y } = forward(xi as tf.Tensor, gi as tf.Tensor, bi as tf.Tensor);
    (save as tf.GradSaveFunc)([xi as tf.Tensor, stats, gi as tf.Tensor]);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [xs, st, gs] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const d = dy as tf.Tensor;
        const dParams = runKernel(LN_DPARAMS, { dy: d, x: xs, stats: st }); // [2, D]
        const D = gs.shape[0]!;
        // Reshapes and a split of a [2, D] result: the split is one small slice dispatch each.
        const [dg, db] = tf.split(dParams, 2, 0);
        return [
          runKernel(LN_DX, { dy: d, x: xs, stats: st, gamma: gs }),
          tf.reshape(dg!, [D]),
          tf.reshape(db!, [D]),
        ];
      },
    };
  }) as (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor;
  return f(x, gamma, beta);
}
