/**
 * The tail of softmax cross-entropy on wasm, in JS over the heap (heap.ts says why), around the
 * backend's own XNNPACK softmax p of the logits x [N, V]:
 *   loss per row   -log p[label]: N reads instead of two row maxima over [N, V] (each a scalar pass
 *                  on wasm), a log, a gather and a subtraction. Where p[label] underflows (< 1e-30)
 *                  the row falls back to log-sum-exp from x in doubles, so the loss stays finite.
 *   gradient       (p - onehot(label)) dy / count in one pass over [N, V], instead of OneHot, Cast,
 *                  Sub and Mul passes; rows whose label is negative (ignored) are zero. That pass is
 *                  WebAssembly SIMD where it runs (about 4x fewer instructions than the JS loop).
 */
import * as tf from '@tensorflow/tfjs';
import { wasmBackendName } from '../../model/wasm-kernels';
import { f32, heapOf, offsetOf, onWasm, simdOn, wasmKernelOn } from './heap';

export const CE_ROW_LOSS = 'PeftLabCrossEntropyRows';
export const CE_GRAD = 'PeftLabCrossEntropyGrad';
/** The same gradient with its pass over [N, V] (p dy / count) in WebAssembly SIMD (simd.ts: scale). */
export const CE_GRAD_SIMD = 'PeftLabCrossEntropyGradSimd';

/** The gradient kernel to run: the SIMD one where our SIMD module runs and is switched on. */
function gradName(): string {
  const backend = wasmBackendName();
  return backend && wasmKernelOn(CE_GRAD_SIMD) && tf.getKernel(CE_GRAD_SIMD, backend)
    ? CE_GRAD_SIMD
    : CE_GRAD;
}

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
  const gradKernel =
    (simdPass: boolean): tf.KernelConfig['kernelFunc'] =>
    ({ inputs, backend }) => {
      const be = heapOf(backend);
      const pi = inputs.p as tf.TensorInfo;
      const [N, V] = pi.shape as [number, number];
      const out = be.makeOutput([N, V], 'float32');
      const scale = f32(be, inputs.scale as tf.TensorInfo)[0]!;
      const simd = simdPass ? simdOn(backend) : null;
      let from = 0; // elements before this were scaled by the SIMD pass
      if (simd) {
        const n4 = N * V - ((N * V) % 4);
        simd.k.scale(offsetOf(simd, pi), offsetOf(simd, out), 4 * n4, scale);
        from = n4;
      }
      const p = f32(be, pi);
      const labels = be.typedArrayFromHeap(inputs.labels as tf.TensorInfo) as Int32Array;
      const g = f32(be, out);
      for (let j = from; j < N * V; j++) g[j] = p[j]! * scale;
      for (let r = 0; r < N; r++) {
        const l = labels[r]!;
        const o = r * V;
        if (l < 0) g.fill(0, o, o + V);
        else g[o + l] = (p[o + l]! - 1) * scale;
      }
      return out;
    };
  const grad = onWasm(CE_GRAD, gradKernel(false));
  if (simdOn(tf.backend())) onWasm(CE_GRAD_SIMD, gradKernel(true)); // null when switched off
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
  return tf.engine().runKernel(gradName(), { p, labels, scale }, {}) as tf.Tensor2D;
}
