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
import { f32, heapOf, offsetOf, onWasm, simdOn } from './heap';

/**
 * x [N, C] summed over its rows -> [C]: a trainable bias's gradient. tfjs-backend-wasm's Sum over
 * axis 0 transposes x first (its reductions run over the last axis) and then reduces row by row;
 * here each row of x is added into the result in place (simd.ts addTo), one pass over x.
 */
export const SUM_ROWS = 'PeftLabSumRows';

export const GELU_ARG = 'PeftLabGeluArg';
export const GELU_BACKWARD = 'PeftLabGeluBackward';
export const GELU_SIMD = 'PeftLabGeluSimd';
export const GELU_SIMD_BACKWARD = 'PeftLabGeluSimdBackward';

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

/**
 * gelu_new as ONE kernel each way in WebAssembly SIMD (simd.ts: gelu, geluGrad, with Cephes' expf
 * for the sigmoid), where the JS kernels above take 3 forward (a JS pass, XNNPACK's Sigmoid, a
 * Multiply) and a scalar JS pass backward. The last size % 4 elements run in JS.
 */
function registerGeluSimd(): boolean {
  if (!simdOn(tf.backend())) return false;
  const fwd = onWasm(GELU_SIMD, ({ inputs, backend }) => {
    const be = heapOf(backend);
    const xi = inputs.x as tf.TensorInfo;
    const yo = be.makeOutput(xi.shape, 'float32');
    const so = be.makeOutput(xi.shape, 'float32');
    const r = simdOn(backend)!;
    const n = tf.util.sizeFromShape(xi.shape);
    const n4 = n - (n % 4);
    r.k.gelu(offsetOf(r, xi), offsetOf(r, yo), offsetOf(r, so), 4 * n4);
    const [x, y, s] = [f32(be, xi), f32(be, yo), f32(be, so)];
    for (let i = n4; i < n; i++) {
      const v = x[i]!;
      s[i] = 1 / (1 + Math.exp(-v * (GELU_A + GELU_B * v * v)));
      y[i] = v * s[i]!;
    }
    return [yo, so];
  });
  const bwd = onWasm(GELU_SIMD_BACKWARD, ({ inputs, backend }) => {
    const be = heapOf(backend);
    const xi = inputs.x as tf.TensorInfo;
    const si = inputs.s as tf.TensorInfo;
    const dyi = inputs.dy as tf.TensorInfo;
    const dxo = be.makeOutput(xi.shape, 'float32');
    const r = simdOn(backend)!;
    const n = tf.util.sizeFromShape(xi.shape);
    const n4 = n - (n % 4);
    r.k.geluGrad(offsetOf(r, xi), offsetOf(r, si), offsetOf(r, dyi), offsetOf(r, dxo), 4 * n4);
    const [x, s, dy, dx] = [f32(be, xi), f32(be, si), f32(be, dyi), f32(be, dxo)];
    for (let i = n4; i < n; i++) {
      const v = x[i]!;
      const sv = s[i]!;
      dx[i] = dy[i]! * (sv + v * sv * (1 - sv) * (GELU_A + 3 * GELU_B * v * v));
    }
    return dxo;
  });
  return fwd !== null && bwd !== null;
}

/** gelu_new through our wasm kernels, or null when the backend is not wasm (take ops.ts's composition). */
export function fusedGelu(x: tf.Tensor): tf.Tensor | null {
  if (x.dtype === 'float32' && registerGeluSimd()) {
    const f = tf.customGrad((xi, save) => {
      const [y, s] = tf.engine().runKernel(GELU_SIMD, { x: xi as tf.Tensor }, {}) as [tf.Tensor, tf.Tensor];
      (save as tf.GradSaveFunc)([xi as tf.Tensor, s]);
      return {
        value: y,
        gradFunc: (dy, saved) => {
          const [xs, ss] = saved as [tf.Tensor, tf.Tensor];
          return tf
            .engine()
            .runKernel(GELU_SIMD_BACKWARD, { dy: dy as tf.Tensor, x: xs, s: ss }, {}) as tf.Tensor;
        },
      };
    }) as (x: tf.Tensor) => tf.Tensor;
    return f(x);
  }
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

function registerSumRows(): boolean {
  if (!simdOn(tf.backend())) return false;
  return (
    onWasm(SUM_ROWS, ({ inputs, backend }) => {
      const be = heapOf(backend);
      const xi = inputs.x as tf.TensorInfo;
      const [N, C] = xi.shape as [number, number];
      const out = be.makeOutput([C], 'float32');
      const r = simdOn(backend)!;
      const [x, o] = [offsetOf(r, xi), offsetOf(r, out)];
      r.k.zero(o, 4 * C);
      for (let i = 0; i < N; i++) r.k.addTo(x + 4 * C * i, o, 4 * C);
      return out;
    }) !== null
  );
}

/** x [N, C] summed over rows through our kernel, or null where it does not run (not wasm, off, C % 4). */
export function sumRows(x: tf.Tensor2D): tf.Tensor1D | null {
  if (x.dtype !== 'float32' || x.shape[1] % 4 !== 0 || !registerSumRows()) return null;
  return tf.engine().runKernel(SUM_ROWS, { x }, {}) as tf.Tensor1D;
}
