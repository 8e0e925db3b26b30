/**
 * AdamW's update of one trainable tensor as ONE WebAssembly SIMD pass (simd.ts: adamw), where the
 * stock update in train/adamw.ts runs about 15 tfjs kernels per tensor (16 with weight decay, one
 * more for the clipping factor), each a pass over the tensor and most a fresh allocation. The same
 * f32 operations in the same order, so it gives the stock path's numbers.
 *
 * The moments m and v are updated in place: only the optimizer holds them, and in place is checked
 * (the backend's reference count of their data is 1, so no other tensor shares it; otherwise the
 * caller takes the stock ops). The parameter is NOT written in place but into a new tensor that the
 * caller assigns: tfjs-backend-wasm's MatMul packs its right operand into an XNNPACK operator it
 * caches by that tensor's id (batch_mat_mul_impl.cc, xnn_matmul), so a weight changed under the
 * same id would be multiplied as it was before; a new tensor gets a new id (and the old one's cache
 * entry goes with its disposal).
 */
import * as tf from '@tensorflow/tfjs';
import { f32, heapOf, offsetOf, onWasm, simdOn } from './heap';

export const ADAMW_SIMD = 'PeftLabAdamWSimd';

/** AdamW's constants for one step (train/adamw.ts): c1 = 1 - b1^t, c2 = 1 - b2^t. */
export interface AdamWStep {
  beta1: number;
  beta2: number;
  c1: number;
  c2: number;
  eps: number;
  wd: number;
  lr: number;
}

function register(): boolean {
  if (!simdOn(tf.backend())) return false;
  const name = onWasm(ADAMW_SIMD, ({ inputs, backend, attrs }) => {
    const be = heapOf(backend);
    const { p, m, v, g, scale } = inputs as Record<'p' | 'm' | 'v' | 'g', tf.TensorInfo> & {
      scale?: tf.TensorInfo;
    };
    const a = attrs as unknown as AdamWStep;
    const out = be.makeOutput(p.shape, 'float32');
    const r = simdOn(backend)!;
    // The clipping factor is a scalar in the heap: read where it lies, no readback.
    const sc = scale ? f32(be, scale)[0]! : 1;
    const n = tf.util.sizeFromShape(p.shape);
    const n4 = n - (n % 4);
    const [b1m, b2m] = [1 - a.beta1, 1 - a.beta2];
    r.k.adamw(
      offsetOf(r, p),
      offsetOf(r, m),
      offsetOf(r, v),
      offsetOf(r, g),
      offsetOf(r, out),
      4 * n4,
      sc,
      a.beta1,
      b1m,
      a.beta2,
      b2m,
      a.c1,
      a.c2,
      a.eps,
      a.wd,
      a.lr,
    );
    if (n4 < n) {
      // The last n % 4 elements in JS, rounded to f32 after each operation as the kernel rounds.
      const F = Math.fround;
      const [P, M, V, G, O] = [f32(be, p), f32(be, m), f32(be, v), f32(be, g), f32(be, out)];
      const [fb1, fb1m, fb2, fb2m, fc1, fc2, feps, fwd, flr] = [
        a.beta1,
        b1m,
        a.beta2,
        b2m,
        a.c1,
        a.c2,
        a.eps,
        a.wd,
        a.lr,
      ].map(F) as number[] as [number, number, number, number, number, number, number, number, number];
      const fsc = F(sc);
      for (let i = n4; i < n; i++) {
        const gi = F(G[i]! * fsc);
        const mi = F(F(M[i]! * fb1) + F(gi * fb1m));
        const vi = F(F(V[i]! * fb2) + F(F(gi * gi) * fb2m));
        M[i] = mi;
        V[i] = vi;
        const pi = P[i]!;
        const u = F(F(F(mi / fc1) / F(F(Math.sqrt(F(vi / fc2))) + feps)) + F(pi * fwd));
        O[i] = F(pi - F(u * flr));
      }
    }
    return out;
  });
  return name !== null;
}

/** The data's reference count on the backend (every tensor sharing it counts). */
function refCount(t: tf.Tensor): number {
  return (tf.backend() as unknown as { refCount(id: tf.DataId): number }).refCount(t.dataId);
}

/**
 * True when AdamW runs through our SIMD kernel here: the wasm backend with our SIMD module, and the
 * kernel not switched off (setWasmKernels).
 */
export function wasmAdamWOn(): boolean {
  return register();
}

/**
 * One AdamW step of p from g (times `scale`, a scalar tensor, when given): m and v updated in place,
 * the new value of p returned (a new tensor, for the caller to assign and dispose). Null where the
 * kernel does not run (not wasm, switched off, not float32, or m or v shared with another tensor):
 * the caller then takes the stock ops. Nothing given is disposed.
 */
export function adamwOnWasm(
  p: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  g: tf.Tensor,
  scale: tf.Tensor | null,
  step: AdamWStep,
): tf.Tensor | null {
  const all = scale ? [p, m, v, g, scale] : [p, m, v, g];
  if (all.some((t) => t.dtype !== 'float32')) return null;
  if (g.size !== p.size || m.size !== p.size || v.size !== p.size) return null;
  if (!register() || refCount(m) !== 1 || refCount(v) !== 1) return null;
  const inputs: tf.NamedTensorMap = scale ? { p, m, v, g, scale } : { p, m, v, g };
  return tf.engine().runKernel(ADAMW_SIMD, inputs, { ...step }) as tf.Tensor;
}
