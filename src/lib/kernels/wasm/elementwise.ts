/**
 * Elementwise and row-wise chains of a training step as single wasm kernels in JS over the heap
 * (heap.ts says why): GPT-2's GELU forward and backward, and softmax's backward.
 *
 *   gelu_new   s = sigmoid(z),  z = A x + B x^3 (A = 2 sqrt(2/pi), B = A 0.044715),  y = x s
 *              dx = dy (s + x s (1 - s) (A + 3 B x^2))
 *              Stock: 6 kernels forward (3 tensors saved), 7 backward.
 *   softmax'   ds = p (dp - sum_j(dp p)) per row: stock 4 kernels and a broadcast.
 */
import * as tf from '@tensorflow/tfjs';
import { f32, heapOf, onWasm, rowsCols } from './heap';

export const GELU_FORWARD = 'PeftLabGeluForward';
export const GELU_BACKWARD = 'PeftLabGeluBackward';
export const SOFTMAX_BACKWARD = 'PeftLabSoftmaxBackward';

const GELU_A = 2 * Math.sqrt(2 / Math.PI);
const GELU_B = GELU_A * 0.044715;

function registerGelu(): boolean {
  const fwd = onWasm(GELU_FORWARD, ({ inputs, backend }) => {
    const be = heapOf(backend);
    const xi = inputs.x as tf.TensorInfo;
    const yo = be.makeOutput(xi.shape, 'float32');
    const so = be.makeOutput(xi.shape, 'float32');
    const x = f32(be, xi);
    const y = f32(be, yo);
    const s = f32(be, so);
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      const si = 1 / (1 + Math.exp(-v * (GELU_A + GELU_B * v * v)));
      s[i] = si;
      y[i] = v * si;
    }
    return [yo, so];
  });
  const bwd = onWasm(GELU_BACKWARD, ({ inputs, backend }) => {
    const be = heapOf(backend);
    const xi = inputs.x as tf.TensorInfo;
    const dxo = be.makeOutput(xi.shape, 'float32');
    const x = f32(be, xi);
    const s = f32(be, inputs.s as tf.TensorInfo);
    const dy = f32(be, inputs.dy as tf.TensorInfo);
    const dx = f32(be, dxo);
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      const si = s[i]!;
      dx[i] = dy[i]! * (si + v * si * (1 - si) * (GELU_A + 3 * GELU_B * v * v));
    }
    return dxo;
  });
  return fwd !== null && bwd !== null;
}

/** gelu_new through our wasm kernels, or null when the backend is not wasm (take ops.ts's composition). */
export function fusedGelu(x: tf.Tensor): tf.Tensor | null {
  if (!registerGelu()) return null;
  const f = tf.customGrad((xi, save) => {
    const [y, s] = tf.engine().runKernel(GELU_FORWARD, { x: xi as tf.Tensor }, {}) as unknown as [
      tf.Tensor,
      tf.Tensor,
    ];
    (save as tf.GradSaveFunc)([xi as tf.Tensor, s]);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [xs, ss] = saved as [tf.Tensor, tf.Tensor];
        return tf.engine().runKernel(GELU_BACKWARD, { dy: dy as tf.Tensor, x: xs, s: ss }, {}) as tf.Tensor;
      },
    };
  }) as (x: tf.Tensor) => tf.Tensor;
  return f(x);
}

function registerSoftmaxBackward(): boolean {
  return (
    onWasm(SOFTMAX_BACKWARD, ({ inputs, backend }) => {
      const be = heapOf(backend);
      const pi = inputs.p as tf.TensorInfo;
      const [rows, S] = rowsCols(pi.shape);
      const dso = be.makeOutput(pi.shape, 'float32');
      const p = f32(be, pi);
      const dp = f32(be, inputs.dp as tf.TensorInfo);
      const ds = f32(be, dso);
      for (let r = 0, o = 0; r < rows; r++, o += S) {
        let dot = 0;
        for (let j = o; j < o + S; j++) dot += dp[j]! * p[j]!;
        for (let j = o; j < o + S; j++) ds[j] = p[j]! * (dp[j]! - dot);
      }
      return dso;
    }) !== null
  );
}

/**
 * The gradient of softmax over the last axis from its output p and the gradient dp of that output:
 * p (dp - sum(dp p)) row by row. One kernel on wasm; the stock composition elsewhere.
 */
export function softmaxBackward(dp: tf.Tensor, p: tf.Tensor): tf.Tensor {
  if (!registerSoftmaxBackward()) return tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true)));
  return tf.engine().runKernel(SOFTMAX_BACKWARD, { dp, p }, {}) as tf.Tensor;
}
