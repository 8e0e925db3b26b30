/**
 * The adapter-augmented linear layer, y = x W + b + s (x A) B, as two WebGPU dispatches forward and
 * four backward, with no gradient for the frozen W and b (LoRA's base layer):
 *   forward   h = x A                                   [N, r]
 *             y = x W + s h B + b                       [N, out]   (one fused product)
 *   backward  u = dy B^T                                [N, r]
 *             dx = dy W^T + s u A^T                     [N, in]    (one fused product)
 *             dA = s x^T u                              [in, r]
 *             dB = s h^T dy                             [r, out]
 * Transposes are read in place, never materialised. Shapes follow the model's Conv1D layout:
 * W [in, out], A = lora_A^T [in, r], B = lora_B^T [r, out].
 * On any backend other than webgpu the same function runs the stock composition, so callers need
 * not know which backend is active.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { HalfMatrix, unpackHalves } from './halves';
import { fusedMatMul, onWebGpu, registerWebGpuKernel, runKernel, type MatOperand } from './program';

export const LORA_H = 'PeftLabLoraH';
export const LORA_Y = 'PeftLabLoraY';
export const LORA_U = 'PeftLabLoraU';
export const LORA_DX = 'PeftLabLoraDx';
export const LORA_DA = 'PeftLabLoraDa';
export const LORA_DB = 'PeftLabLoraDb';

type Info = tf.TensorInfo;
/** wRows, wCols: W's shape when it is stored as halves (halves.ts); absent or 0 for f32. */
type Attrs = { scale: number; wRows?: number; wCols?: number };

function kernel(
  name: string,
  f: (inputs: Record<string, Info>, backend: WebGPUBackend, scale: number, attrs: Attrs) => Info,
): void {
  registerWebGpuKernel<Attrs>(name, (i, be, a) => f(i, be, a.scale, a));
}

/** The frozen W as an operand: plain f32, or halves unpacked as the product stages them. */
function weight(t: Info, a: Attrs, transpose: boolean): MatOperand {
  return a.wRows && a.wCols ? { t, transpose, halves: [a.wRows, a.wCols] } : { t, transpose };
}

const N = (t: Info) => ({ t, transpose: false });
const T = (t: Info) => ({ t, transpose: true });

let registered = false;
/** Registers the kernels with tfjs (once); loraLinear calls it, tests and benches may too. */
export function registerLoraLinear(): void {
  if (registered) return;
  registered = true;
  kernel(LORA_H, (i, be) => fusedMatMul(be, { a1: N(i.x!), b1: N(i.a!), alpha1: 1 }));
  kernel(LORA_Y, (i, be, s, a) =>
    fusedMatMul(be, {
      a1: N(i.x!),
      b1: weight(i.w!, a, false),
      alpha1: 1,
      second: { a2: N(i.h!), b2: N(i.b!), alpha2: s },
      bias: i.bias,
    }),
  );
  kernel(LORA_U, (i, be) => fusedMatMul(be, { a1: N(i.dy!), b1: T(i.b!), alpha1: 1 }));
  kernel(LORA_DX, (i, be, s, a) =>
    fusedMatMul(be, {
      a1: N(i.dy!),
      b1: weight(i.w!, a, true),
      alpha1: 1,
      second: { a2: N(i.u!), b2: T(i.a!), alpha2: s },
    }),
  );
  kernel(LORA_DA, (i, be, s) => fusedMatMul(be, { a1: T(i.x!), b1: N(i.u!), alpha1: s }));
  kernel(LORA_DB, (i, be, s) => fusedMatMul(be, { a1: T(i.h!), b1: N(i.dy!), alpha1: s }));
}

/** The stock composition, as the model computes it today (ops.ts dense + lora.ts hook). */
export function loraLinearStock(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  bias: tf.Tensor1D | undefined,
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  scale: number,
): tf.Tensor2D {
  const xw = tf.matMul(x, w);
  return tf.add(bias ? tf.add(xw, bias) : xw, tf.mul(tf.matMul(tf.matMul(x, a), b), scale));
}

/**
 * y = x W + bias + scale (x A) B, with gradients for x, A and B only (W and bias are frozen: their
 * gradients are not computed, not even as zeros). x [N, in], W [in, out], bias [out] or none (the
 * Llama family's layers), A [in, r], B [r, out]. W may be held as f16 halves (weightsF16): on webgpu the two products that read it
 * unpack it in place, accumulating in f32; elsewhere it is unpacked first.
 */
export function loraLinear(
  x: tf.Tensor2D,
  wIn: tf.Tensor2D | HalfMatrix,
  bias: tf.Tensor1D | undefined,
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  scale: number,
): tf.Tensor2D {
  if (!onWebGpu()) {
    // The unpacked W belongs to the caller's scope (the backward reads it after this returns).
    const w = wIn instanceof HalfMatrix ? unpackHalves(wIn) : wIn;
    // W and bias enter only through the closure, so no gradient is asked of them here either.
    const f = tf.customGrad((xi, ai, bi, save) => {
      (save as tf.GradSaveFunc)([xi as tf.Tensor, ai as tf.Tensor, bi as tf.Tensor]);
      return {
        value: loraLinearStock(xi as tf.Tensor2D, w, bias, ai as tf.Tensor2D, bi as tf.Tensor2D, scale),
        gradFunc: (dy, saved) => {
          const [xs, as, bs] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
          const d = dy as tf.Tensor2D;
          const u = tf.matMul(d, bs, false, true);
          const dx = tf.add(tf.matMul(d, w, false, true), tf.mul(tf.matMul(u, as, false, true), scale));
          const dA = tf.mul(tf.matMul(xs, u, true, false), scale);
          const dB = tf.mul(tf.matMul(tf.matMul(xs, as), d, true, false), scale);
          return [dx, dA, dB];
        },
      };
    }) as (x: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.Tensor2D;
    return f(x, a, b);
  }
  registerLoraLinear();
  const w = wIn instanceof HalfMatrix ? wIn.packed : wIn;
  const halves =
    wIn instanceof HalfMatrix ? { wRows: wIn.shape[0], wCols: wIn.shape[1] } : { wRows: 0, wCols: 0 };
  const f = tf.customGrad((xi, ai, bi, save) => {
    const h = runKernel(LORA_H, { x: xi as tf.Tensor, a: ai as tf.Tensor }); // [N, r]
    const y = runKernel(
      LORA_Y,
      { x: xi as tf.Tensor, w, h, b: bi as tf.Tensor, ...(bias ? { bias } : {}) },
      { scale, ...halves },
    ) as tf.Tensor2D;
    (save as tf.GradSaveFunc)([xi as tf.Tensor, ai as tf.Tensor, bi as tf.Tensor, h]);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [xs, as, bs, hs] = saved as tf.Tensor[];
        const d = dy as tf.Tensor;
        const u = runKernel(LORA_U, { dy: d, b: bs! }); // [N, r]
        return [
          runKernel(LORA_DX, { dy: d, w, u, a: as! }, { scale, ...halves }),
          runKernel(LORA_DA, { x: xs!, u }, { scale }),
          runKernel(LORA_DB, { h: hs!, dy: d }, { scale }),
        ];
      },
    };
  }) as (x: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.Tensor2D;
  return f(x, a, b);
}
