/**
 * The tail of softmax cross-entropy on wasm, in JS over the heap (heap.ts says why), around the
 * backend's own XNNPACK softmax p of the logits x [N, V]:
 *   loss per row   -log p[label]: N reads instead of two row maxima over [N, V] (each a scalar pass
 *                  on wasm), a log, a gather and a subtraction. Where p[label] underflows (< 1e-30)
 *                  the row falls back to log-sum-exp from x in doubles, so the loss stays finite.
 *   gradient       (p - onehot(label)) dy / count in one pass over [N, V], instead of OneHot, Cast,
 *                  Sub and Mul passes; rows whose label is negative (ignored) are zero.
 */
import * as tf from '@tensorflow/tfjs';
import { f32, heapOf, onWasm } from './heap';

export const CE_ROW_LOSS = 'PeftLabCrossEntropyRows';
export const CE_GRAD = 'PeftLabCrossEntropyGrad';

function register(): boolean {
  const rows = onWasm(CE_ROW_LOSS, ({ inputs, backend }) => {
    const be = heapOf(backend);
    const xi = inputs.x as tf.TensorInfo;
    const [N, V] = xi.shape as [number, number];
    const out = be.makeOutput([N], 'float32');
    const x = f32(be, xi);
    const p = f32(be, inputs.p as tf.TensorInfo);
    const labels = be.typedArrayFromHeap(inputs.labels as tf.TensorInfo) as Int32Array;
    const nll = f32(be, out);
    for (let r = 0; r < N; r++) {
      const l = labels[r]!;
      if (l < 0) {
        nll[r] = 0;
        continue;
      }
      const o = r * V;
      const pl = p[o + l]!;
      if (pl > 1e-30) {
        nll[r] = -Math.log(pl);
        continue;
      }
      let m = -Infinity;
      for (let j = o; j < o + V; j++) m = Math.max(m, x[j]!);
      let sum = 0;
      for (let j = o; j < o + V; j++) sum += Math.exp(x[j]! - m);
      nll[r] = m + Math.log(sum) - x[o + l]!;
    }
    return out;
  });
  const grad = onWasm(CE_GRAD, ({ inputs, backend }) => {
    const be = heapOf(backend);
    const pi = inputs.p as tf.TensorInfo;
    const [N, V] = pi.shape as [number, number];
    const out = be.makeOutput([N, V], 'float32');
    const p = f32(be, pi);
    const labels = be.typedArrayFromHeap(inputs.labels as tf.TensorInfo) as Int32Array;
    const scale = f32(be, inputs.scale as tf.TensorInfo)[0]!;
    const g = f32(be, out);
    for (let r = 0; r < N; r++) {
      const l = labels[r]!;
      const o = r * V;
      if (l < 0) {
        g.fill(0, o, o + V);
        continue;
      }
      for (let j = o; j < o + V; j++) g[j] = p[j]! * scale;
      g[o + l] = (p[o + l]! - 1) * scale;
    }
    return out;
  });
  return rows !== null && grad !== null;
}

/** True (and the kernels registered) when the running backend is wasm. */
export function fusedCrossEntropyOn(): boolean {
  return register();
}

/** -log softmax(x)[label] per row [N] (0 where label < 0), from x and p = softmax(x). Wasm only. */
export function crossEntropyRows(x: tf.Tensor2D, p: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.engine().runKernel(CE_ROW_LOSS, { x, p, labels }, {}) as tf.Tensor1D;
}

/** (p - onehot(labels)) * scale, zero rows where label < 0; scale a scalar tensor. Wasm only. */
export function crossEntropyGrad(p: tf.Tensor2D, labels: tf.Tensor1D, scale: tf.Scalar): tf.Tensor2D {
  return tf.engine().runKernel(CE_GRAD, { p, labels, scale }, {}) as tf.Tensor2D;
}
