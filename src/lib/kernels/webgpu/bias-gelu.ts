/**
 * GPT-2's MLP activation with its bias: y = gelu_new(x + b), x [N, D], b [D], in one dispatch
 * forward and two backward (dz = dy gelu'(x + b); db = column sums of dz), where stock tfjs takes
 * one dispatch per elementwise op (about 8 forward, 12 backward for ops.ts's geluNew plus the add).
 * gelu_new(z) = 0.5 z (1 + tanh(c (z + 0.044715 z^3))), c = sqrt(2/pi).
 */
import * as tf from '@tensorflow/tfjs';
import { flatProgram, onWebGpu, registerWebGpuKernel, runKernel, runProgram } from './program';

export const BIAS_GELU = 'PeftLabBiasGelu';
export const BIAS_GELU_GRAD = 'PeftLabBiasGeluGrad';
export const COLUMN_SUM = 'PeftLabColumnSum';

const GELU_WGSL = `
  const GELU_C = 0.7978845608028654;
  // tanh overflows to NaN for large |u| on some drivers (gpuweb issue 4458): clamp the argument.
  fn tanhSafe(u: f32) -> f32 { return tanh(clamp(u, -15.0, 15.0)); }
  fn geluGrad(z: f32) -> f32 {
    let t = tanhSafe(GELU_C * (z + 0.044715 * z * z * z));
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * z * z);
  }`;

let registered = false;
export function registerBiasGelu(): void {
  if (registered) return;
  registered = true;
  registerWebGpuKernel(BIAS_GELU, (inputs, backend) => {
    const { x, b } = inputs as { x: tf.TensorInfo; b: tf.TensorInfo };
    const size = x.shape.reduce((p, d) => p * d, 1);
    const D = b.shape[0]!;
    const program = flatProgram(
      'peftBiasGelu',
      ['x', 'b'],
      x.shape,
      size,
      'total: i32, D: i32,',
      `${GELU_WGSL}
        fn main(index: i32) {
          if (index >= uniforms.total) { return; }
          let z = x[index] + b[index % uniforms.D];
          result[index] = 0.5 * z * (1.0 + tanhSafe(GELU_C * (z + 0.044715 * z * z * z)));
        }`,
    );
    return runProgram(
      backend,
      program,
      [x, b],
      [
        { type: 'int32', data: [size] },
        { type: 'int32', data: [D] },
      ],
    );
  });
  registerWebGpuKernel(BIAS_GELU_GRAD, (inputs, backend) => {
    const { dy, x, b } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; b: tf.TensorInfo };
    const size = x.shape.reduce((p, d) => p * d, 1);
    const program = flatProgram(
      'peftBiasGeluGrad',
      ['dy', 'x', 'b'],
      x.shape,
      size,
      'total: i32, D: i32,',
      `${GELU_WGSL}
        fn main(index: i32) {
          if (index >= uniforms.total) { return; }
          result[index] = dy[index] * geluGrad(x[index] + b[index % uniforms.D]);
        }`,
    );
    return runProgram(
      backend,
      program,
      [dy, x, b],
      [
        { type: 'int32', data: [size] },
        { type: 'int32', data: [b.shape[0]!] },
      ],
    );
  });
  registerWebGpuKernel(COLUMN_SUM, (inputs, backend) => {
    // One thread per column walking the rows: rows are few next to columns in a training batch's
    // [B*T, D] activations only when D is large, and that is where this is used (bias gradients).
    const { x } = inputs as { x: tf.TensorInfo };
    const [rows, cols] = x.shape as [number, number];
    const program = flatProgram(
      'peftColumnSum',
      ['x'],
      [cols],
      cols,
      'rows: i32, cols: i32,',
      `fn main(index: i32) {
          if (index >= uniforms.cols) { return; }
          var s = 0.0;
          for (var r = 0; r < uniforms.rows; r++) { s = s + x[r * uniforms.cols + index]; }
          result[index] = s;
        }`,
    );
    return runProgram(
      backend,
      program,
      [x],
      [
        { type: 'int32', data: [rows] },
        { type: 'int32', data: [cols] },
      ],
    );
  });
}

/** Sums a [rows, cols] matrix over its rows: [cols]. One dispatch on webgpu. */
export function columnSum(x: tf.Tensor2D): tf.Tensor1D {
  if (!onWebGpu()) return tf.sum(x, 0);
  registerBiasGelu();
  return runKernel(COLUMN_SUM, { x }) as tf.Tensor1D;
}

/** The stock composition: ops.ts's gelu_new on x + b, elementwise tfjs ops. */
export function biasGeluStock(x: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  const z = tf.add(x, b);
  const t = tf.tanh(tf.mul(tf.add(z, tf.mul(tf.mul(tf.mul(z, z), z), 0.044715)), Math.sqrt(2 / Math.PI)));
  return tf.mul(tf.mul(z, 0.5), tf.add(t, 1));
}

/**
 * gelu_new(x + b) for x [N, D], b [D], with gradients for x and b. Pass `trainBias: false` for a
 * frozen bias (LoRA): its column sum is then skipped and only dx is returned.
 */
export function biasGelu(x: tf.Tensor2D, b: tf.Tensor1D, trainBias = true): tf.Tensor2D {
  if (!onWebGpu()) {
    return trainBias
      ? biasGeluStock(x, b)
      : (
          tf.customGrad((xi, save) => {
            (save as tf.GradSaveFunc)([xi as tf.Tensor]);
            return {
              value: biasGeluStock(xi as tf.Tensor2D, b),
              gradFunc: (dy, saved) =>
                tf.grad((z: tf.Tensor) => biasGeluStock(z as tf.Tensor2D, b))(saved[0]!, dy as tf.Tensor),
            };
          }) as (x: tf.Tensor) => tf.Tensor2D
        )(x);
  }
  registerBiasGelu();
  if (!trainBias) {
    const f = tf.customGrad((xi, save) => {
      (save as tf.GradSaveFunc)([xi as tf.Tensor]);
      return {
        value: runKernel(BIAS_GELU, { x: xi as tf.Tensor, b }) as tf.Tensor2D,
        gradFunc: (dy, saved) => runKernel(BIAS_GELU_GRAD, { dy: dy as tf.Tensor, x: saved[0]!, b }),
      };
    }) as (x: tf.Tensor) => tf.Tensor2D;
    return f(x);
  }
  const f = tf.customGrad((xi, bi, save) => {
    (save as tf.GradSaveFunc)([xi as tf.Tensor, bi as tf.Tensor]);
    return {
      value: runKernel(BIAS_GELU, { x: xi as tf.Tensor, b: bi as tf.Tensor }) as tf.Tensor2D,
      gradFunc: (dy, saved) => {
        const dz = runKernel(BIAS_GELU_GRAD, {
          dy: dy as tf.Tensor,
          x: saved[0]!,
          b: saved[1]!,
        }) as tf.Tensor2D;
        return [dz, columnSum(dz)];
      },
    };
  }) as (x: tf.Tensor, b: tf.Tensor) => tf.Tensor2D;
  return f(x, b);
}
