/**
 * Elementwise and row-wise chains of a training step as single wasm kernels in JS over the heap
 * (heap.ts says why): GPT-2's GELU forward and backward. (Softmax's backward, p (dp - sum(dp p)),
 * was one too; measured in a whole LoRA step it lost to the stock 4 kernels, which are XNNPACK's
 * vectorised loops, by about 3 ms: a JS loop pays off only where it removes passes, not kernels.)
 *
 *   gelu_new   s = sigmoid(z),  z = A x + B x^3 (A = 2 sqrt(2/pi), B = A 0.044715),  y = x s
 *              dx = dy (s + x s (1 - s) (A + 3 B x^2))
 *              Stock: 6 kernels forward (3 tensors saved), 7 backward; here 3 forward (our z, XNNPACK's
 *              sigmoid, a multiply) and 1 backward.
 */
import * as tf from '@tensorflow/tfjs';
import { f32, heapOf, onWasm } from './heap';

export const GELU_ARG = 'PeftLabGeluArg';
export const GELU_BACKWARD = 'PeftLabGeluBackward';

const GELU_A = 2 * Math.sqrt(2 / Math.PI);
const GELU_B = GELU_A * 0.044715;

function registerGelu(): boolean {
  // The argument of the sigmoid only: the sigmoid itself is XNNPACK's (vectorised, about 1 ns an
  // element), while Math.exp in JS costs about 20 ns, more than the whole stock chain.
  const fwd = onWasm(GELU_ARG, ({ inputs, backend }) => {
    const be = heapOf(backend);
    const xi = inputs.x as tf.TensorInfo;
    const zo = be.makeOutput(xi.shape, 'float32');
    const x = f32(be, xi);
    const z = f32(be, zo);
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      z[i] = v * (GELU_A + GELU_B * v * v);
    }
    return zo;
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
    const x = xi as tf.Tensor;
    const s = tf.sigmoid(tf.engine().runKernel(GELU_ARG, { x }, {}) as tf.Tensor);
    const y = tf.mul(x, s);
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
