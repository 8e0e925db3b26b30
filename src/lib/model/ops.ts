/**
 * Differentiable building blocks tuned for tfjs on wasm (see ENVIRONMENT.md):
 * - tfjs's own matMul gradient uses transposeA/B flags, which the wasm backend runs 10-20x slower
 *   than an explicit transpose followed by a plain matMul, so every matmul here has a custom
 *   gradient with explicit transposes;
 * - a frozen weight takes a separate path whose gradient function computes only dx, so no weight
 *   gradient is ever computed for it;
 * - `tf.gather` has no gradient on wasm (UnsortedSegmentSum is missing), so a trainable embedding
 *   gets its gradient from our row scatter-add kernel there (kernels/wasm/gather.ts), elsewhere as
 *   oneHot(ids)^T @ dy.
 */
import * as tf from '@tensorflow/tfjs';
import { InternalError } from '../errors';
import { itemMatMul, wasmBackendName } from './wasm-kernels';
import { fusedNormsOn, normBackward, normForward } from '../kernels/wasm/norms';
import { shareIdentityOnWasm } from '../kernels/wasm/identity';
import { fusedGelu, sumRows } from '../kernels/wasm/elementwise';
import { gatherRows, scatterAddRows } from '../kernels/wasm/gather';
import { matMulSimd, matMulTransposedA } from '../kernels/wasm/matmul';
import { crossEntropyGrad, crossEntropyRows, fusedCrossEntropyOn } from '../kernels/wasm/cross-entropy';

/** True when `w` is a variable the optimizer does not update: its weight gradient is skipped. */
export function isFrozen(w: tf.Tensor): boolean {
  return w instanceof tf.Variable && !w.trainable;
}

/**
 * x [N, in] @ w [in, out] where w is frozen (or a constant derived from frozen weights, such as the
 * cached wte^T of the tied LM head): the gradient function returns dx only. `wT`, when the caller
 * holds w^T already (the tied head: wte itself), spares the backward a transpose of w and XNNPACK
 * a repacking of it (a tensor that lives on keeps its packed weights between calls).
 */
export function matmulFrozen(x: tf.Tensor2D, w: tf.Tensor2D, wT?: tf.Tensor2D): tf.Tensor2D {
  const f = tf.customGrad((xi, save) => {
    (save as tf.GradSaveFunc)([]);
    return {
      value: frozenProduct(xi as tf.Tensor2D, w),
      gradFunc: (dy) => frozenProduct(dy as tf.Tensor2D, wT ?? tf.transpose(w)),
    };
  }) as (x: tf.Tensor2D) => tf.Tensor2D;
  return f(x);
}

/** a @ b (+ bias) by our SIMD gemm on wasm where it runs with fused multiply-adds (matmul.ts), else stock. */
function frozenProduct(a: tf.Tensor2D, b: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor2D {
  const ours = matMulSimd(a, b, bias);
  if (ours) return ours;
  return bias ? (tf.fused.matMul({ a, b, bias }) as tf.Tensor2D) : tf.matMul(a, b);
}

/** x [N, in] @ w [in, out]: picks the frozen path when w is a non-trainable variable. */
export function matmul(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return isFrozen(w) ? matmulFrozen(x, w) : (bmm(x, w) as tf.Tensor2D);
}

/** a [..., M, K] @ b [..., K, N] (any rank >= 2), gradients for both with explicit transposes. */
export const bmm = tf.customGrad((a, b, save) => {
  const x = a as tf.Tensor;
  const y = b as tf.Tensor;
  (save as tf.GradSaveFunc)([x, y]);
  return {
    value: product(x, y),
    gradFunc: (dy, saved) => {
      const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
      const g = dy as tf.Tensor;
      // The weight side, a^T dy: on wasm our SIMD kernel reads a transposed in place (matmul.ts).
      return [product(g, swapLast(sb)), matMulTransposedA(sa, g) ?? tf.matMul(swapLast(sa), g)];
    },
  };
}) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

/** a @ b: 2-D products by our SIMD gemm on wasm where it runs with fused multiply-adds (matmul.ts), else stock. */
function product(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return (a.rank === 2 && b.rank === 2 && matMulSimd(a as tf.Tensor2D, b as tf.Tensor2D)) || tf.matMul(a, b);
}

/** Swaps the last two axes. */
export function swapLast(x: tf.Tensor): tf.Tensor {
  const perm = [...Array(x.rank).keys()];
  perm[x.rank - 1] = x.rank - 2;
  perm[x.rank - 2] = x.rank - 1;
  return tf.transpose(x, perm);
}

/** x [N, in] -> [N, out], a Conv1D/Linear with weight stored [in, out] (as GPT-2's Conv1D). */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  if (b && isFrozen(w) && isFrozen(b)) {
    // Frozen weight and bias: the bias rides in XNNPACK's matmul (one kernel, not a matmul then an
    // add over [N, out]); the gradient is dx only, as in matmulFrozen.
    const f = tf.customGrad((xi, save) => {
      (save as tf.GradSaveFunc)([]);
      return {
        value: frozenProduct(xi as tf.Tensor2D, w, b),
        gradFunc: (dy) => frozenProduct(dy as tf.Tensor2D, tf.transpose(w)),
      };
    }) as (x: tf.Tensor2D) => tf.Tensor2D;
    return f(x);
  }
  const y = matmul(x, w);
  if (!b) return y;
  return b instanceof tf.Variable && b.trainable ? addBias(y, b) : tf.add(y, b);
}

/**
 * y [N, out] + b [out] for a trainable b, whose gradient (dy summed over rows) is our wasm kernel's
 * where it runs (elementwise.ts sumRows): tf.add's own gradient takes tfjs-wasm's Sum over axis 0,
 * a transpose of dy and a reduction (about 8% of a full fine-tuning step of peftlab-s).
 */
const addBias = tf.customGrad((y, b, save) => {
  (save as tf.GradSaveFunc)([]);
  return {
    value: tf.add(y as tf.Tensor2D, b as tf.Tensor1D),
    gradFunc: (dy) => {
      const d = dy as tf.Tensor2D;
      return [tf.clone(d), sumRows(d) ?? tf.sum(d, 0)];
    },
  };
}) as (y: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D;

/** Row lookup table[ids] -> [..., dim]; gradient to a trainable table without UnsortedSegmentSum. */
export function embed(table: tf.Tensor2D, ids: tf.Tensor): tf.Tensor {
  if (isFrozen(table)) return gatherRows(table, ids);
  const flat = tf.reshape(ids, [-1]) as tf.Tensor1D;
  const [rows, dim] = table.shape;
  const f = tf.customGrad((t, save) => {
    (save as tf.GradSaveFunc)([flat]); // the forward scope disposes unsaved tensors
    return {
      value: gatherRows(t as tf.Tensor2D, flat) as tf.Tensor2D,
      gradFunc: (dy, saved) => {
        const [ids] = saved as [tf.Tensor1D];
        const summed = scatterAddRows(tf.reshape(dy, [-1, dim]) as tf.Tensor2D, ids, rows);
        if (summed) return summed;
        const oneHotT = tf.transpose(tf.cast(tf.oneHot(ids, rows), 'float32')); // [rows, N]
        return tf.matMul(oneHotT as tf.Tensor2D, tf.reshape(dy, [-1, dim]) as tf.Tensor2D);
      },
    };
  }) as (t: tf.Tensor2D) => tf.Tensor2D;
  return tf.reshape(f(table), [...ids.shape, dim]);
}

/**
 * LayerNorm over the last axis with biased variance, eps inside the square root (torch.nn.LayerNorm),
 * with a hand-written gradient: tfjs's autodiff of mean/sub/rsqrt is several kernels per term.
 *   xhat = (x - mean) * rstd;  y = xhat * gamma + beta
 *   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * gamma
 * Gamma and beta get gradients only when they train.
 */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): tf.Tensor {
  if (fusedNormsOn()) return fusedNorm(x, gamma, beta, eps);
  const forward = (xi: tf.Tensor): { y: tf.Tensor; xhat: tf.Tensor; rstd: tf.Tensor } => {
    const mean = tf.mean(xi, -1, true);
    const xc = tf.sub(xi, mean);
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.mul(xc, xc), -1, true), eps));
    const xhat = tf.mul(xc, rstd);
    return { y: tf.add(tf.mul(xhat, gamma), beta), xhat, rstd };
  };
  const dxOf = (dy: tf.Tensor, xhat: tf.Tensor, rstd: tf.Tensor, g: tf.Tensor): tf.Tensor => {
    const gd = tf.mul(dy, g);
    const meanG = tf.mean(gd, -1, true);
    const meanGX = tf.mean(tf.mul(gd, xhat), -1, true);
    return tf.mul(rstd, tf.sub(tf.sub(gd, meanG), tf.mul(xhat, meanGX)));
  };
  if (isFrozen(gamma) && isFrozen(beta)) {
    const f = tf.customGrad((xi, save) => {
      const { y, xhat, rstd } = forward(xi as tf.Tensor);
      (save as tf.GradSaveFunc)([xhat, rstd]);
      return {
        value: y,
        gradFunc: (dy, saved) => {
          const [xh, rs] = saved as [tf.Tensor, tf.Tensor];
          return dxOf(dy as tf.Tensor, xh, rs, gamma);
        },
      };
    }) as (x: tf.Tensor) => tf.Tensor;
    return f(x);
  }
  const f = tf.customGrad((xi, g, b, save) => {
    const { y, xhat, rstd } = forward(xi as tf.Tensor);
    (save as tf.GradSaveFunc)([xhat, rstd, g as tf.Tensor]);
    void b;
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [xh, rs, gs] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const d = dy as tf.Tensor;
        const rows = d.size / d.shape[d.rank - 1]!;
        const flat = (t: tf.Tensor): tf.Tensor2D => tf.reshape(t, [rows, -1]) as tf.Tensor2D;
        return [dxOf(d, xh, rs, gs), tf.sum(flat(tf.mul(d, xh)), 0), tf.sum(flat(d), 0)];
      },
    };
  }) as (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor;
  return f(x, gamma, beta);
}

/**
 * RMSNorm over the last axis (Llama's LlamaRMSNorm): y = x / sqrt(mean(x^2) + eps) * gamma, with
 * a hand-written gradient as layerNorm's:  dx = rrms (g - xhat mean(g xhat)),  g = dy * gamma.
 */
export function rmsNorm(x: tf.Tensor, gamma: tf.Tensor1D, eps: number): tf.Tensor {
  if (fusedNormsOn()) return fusedNorm(x, gamma, null, eps);
  const forward = (xi: tf.Tensor): { y: tf.Tensor; xhat: tf.Tensor; rrms: tf.Tensor } => {
    const rrms = tf.rsqrt(tf.add(tf.mean(tf.mul(xi, xi), -1, true), eps));
    const xhat = tf.mul(xi, rrms);
    return { y: tf.mul(xhat, gamma), xhat, rrms };
  };
  const dxOf = (dy: tf.Tensor, xhat: tf.Tensor, rrms: tf.Tensor, g: tf.Tensor): tf.Tensor => {
    const gd = tf.mul(dy, g);
    return tf.mul(rrms, tf.sub(gd, tf.mul(xhat, tf.mean(tf.mul(gd, xhat), -1, true))));
  };
  if (isFrozen(gamma)) {
    const f = tf.customGrad((xi, save) => {
      const { y, xhat, rrms } = forward(xi as tf.Tensor);
      (save as tf.GradSaveFunc)([xhat, rrms]);
      return {
        value: y,
        gradFunc: (dy, saved) => {
          const [xh, rr] = saved as [tf.Tensor, tf.Tensor];
          return dxOf(dy as tf.Tensor, xh, rr, gamma);
        },
      };
    }) as (x: tf.Tensor) => tf.Tensor;
    return f(x);
  }
  const f = tf.customGrad((xi, g, save) => {
    const { y, xhat, rrms } = forward(xi as tf.Tensor);
    (save as tf.GradSaveFunc)([xhat, rrms, g as tf.Tensor]);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [xh, rr, gs] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const d = dy as tf.Tensor;
        const rows = d.size / d.shape[d.rank - 1]!;
        return [dxOf(d, xh, rr, gs), tf.sum(tf.reshape(tf.mul(d, xh), [rows, -1]), 0)];
      },
    };
  }) as (x: tf.Tensor, g: tf.Tensor) => tf.Tensor;
  return f(x, gamma);
}

/**
 * LayerNorm (beta given) or RMSNorm (beta null) through our wasm kernels (kernels/wasm/norms.ts):
 * one kernel forward, one backward, instead of the compositions above.
 */
function fusedNorm(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D | null, eps: number): tf.Tensor {
  shareIdentityOnWasm();
  const rms = beta === null;
  if (isFrozen(gamma) && (rms || isFrozen(beta))) {
    const f = tf.customGrad((xi, save) => {
      const [y, stats] = normForward(xi as tf.Tensor, gamma, beta, eps);
      (save as tf.GradSaveFunc)([xi as tf.Tensor, stats]);
      return {
        value: y,
        gradFunc: (dy, saved) => {
          const [xs, st] = saved as [tf.Tensor, tf.Tensor2D];
          return normBackward(dy as tf.Tensor, xs, st, gamma, rms, false)[0]!;
        },
      };
    }) as (x: tf.Tensor) => tf.Tensor;
    return f(x);
  }
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [xi, g, b] = args as tf.Tensor[];
    const [y, stats] = normForward(xi!, g as tf.Tensor1D, (b ?? null) as tf.Tensor1D | null, eps);
    save([xi!, stats, g!]);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [xs, st, gs] = saved as [tf.Tensor, tf.Tensor2D, tf.Tensor1D];
        return normBackward(dy as tf.Tensor, xs, st, gs, rms, true);
      },
    };
  }) as (...xs: tf.Tensor[]) => tf.Tensor;
  return rms ? f(x, gamma) : f(x, gamma, beta!);
}

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 2 * GELU_C;
const GELU_B = 2 * GELU_C * 0.044715;

/**
 * GPT-2's gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (Hendrycks & Gimpel, tanh form),
 * computed as x * sigmoid(z), z = 2 sqrt(2/pi) (x + 0.044715 x^3), since 0.5 (1 + tanh(u)) equals
 * sigmoid(2u): tfjs-backend-wasm's Sigmoid is XNNPACK's vectorised one, its Tanh a scalar loop about
 * 15x slower. Derivative: s + x s (1 - s) z',  z' = 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2).
 * x*x*x rather than pow(x, 3): pow is about 9x slower on wasm.
 */
export function geluNew(x: tf.Tensor): tf.Tensor {
  // On wasm 3 kernels forward and 1 backward (kernels/wasm/elementwise.ts) instead of 6 and 7.
  if (wasmBackendName()) shareIdentityOnWasm();
  return fusedGelu(x) ?? geluStock(x);
}

const geluStock = tf.customGrad((xi, save) => {
  const x = xi as tf.Tensor;
  const x2 = tf.mul(x, x);
  const s = tf.sigmoid(tf.mul(x, tf.add(tf.mul(x2, GELU_B), GELU_A)));
  (save as tf.GradSaveFunc)([x, x2, s]);
  return {
    value: tf.mul(x, s),
    gradFunc: (dy, saved) => {
      const [xs, xs2, ss] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      const dz = tf.add(tf.mul(xs2, 3 * GELU_B), GELU_A);
      const ds = tf.mul(ss, tf.sub(1, ss));
      return tf.mul(dy as tf.Tensor, tf.add(ss, tf.mul(tf.mul(xs, ds), dz)));
    },
  };
}) as (x: tf.Tensor) => tf.Tensor;

/**
 * Mean cross-entropy of logits [N, V] against integer labels [N]; labels < 0 (HF's -100) are
 * ignored. Custom gradient (softmax - onehot) / count avoids gather's missing wasm gradient.
 * Returns a scalar; when no label counts, 0.
 */
export function crossEntropy(logits: tf.Tensor2D, labels: Int32Array): tf.Scalar {
  const n = logits.shape[0];
  const v = logits.shape[1];
  const weights = new Float32Array(n);
  const safe = new Int32Array(n);
  const flat = new Int32Array(n);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const l = labels[i]!;
    if (l >= 0) {
      // Internal: labels are task label ids, mapped from the task's own label list.
      if (l >= v) throw new InternalError(`label ${l} at row ${i} is outside 0..${v - 1}`);
      weights[i] = 1;
      safe[i] = l;
      count++;
    }
    flat[i] = i * v + safe[i]!;
  }
  const denom = Math.max(count, 1);
  if (fusedCrossEntropyOn()) return fusedCrossEntropy(logits, labels, denom);
  const w = tf.tensor1d(weights);
  const f = tf.customGrad((lg, save) => {
    const x = lg as tf.Tensor2D;
    // softmax, not logSoftmax: on wasm softmax is XNNPACK's (about 9x faster than logSoftmax's
    // composition with its scalar exp), and the gradient reuses p. log-sum-exp comes from the row's
    // largest probability, which is at least 1/V and never underflows: lse = max(x) - log(max(p)).
    const p = tf.softmax(x);
    // Tensors the gradient needs must be saved (tfjs keeps a copy): the forward scope disposes
    // everything else. Only p: the one-hot is made in the gradient from the labels.
    (save as tf.GradSaveFunc)([p]);
    const lse = tf.sub(tf.max(x, -1), tf.log(tf.max(p, -1))); // [N]
    // The label's logit by one gather of N values, not a one-hot product over [N, V].
    const picked = tf.gather(tf.reshape(x, [-1]), tf.tensor1d(flat, 'int32')); // [N]
    const nll = tf.sub(lse, picked); // [N]
    return {
      value: tf.div(tf.sum(tf.mul(nll, w)), denom),
      gradFunc: (dy, saved) => {
        const [ps] = saved as [tf.Tensor2D];
        // tfjs-backend-wasm 4.22 writes int bits into a float32 OneHot: built as int32 and cast.
        const oneHot = tf.cast(tf.oneHot(tf.tensor1d(safe, 'int32'), v), 'float32');
        const g = tf.mul(tf.sub(ps, oneHot), tf.div(dy as tf.Scalar, denom));
        // Ignored rows are zeroed by a [N, 1] product (slow on wasm: a broadcast), only when
        // there are any (a causal LM's windows have none).
        // (The mask is made anew: the forward's scope has disposed w by now.)
        return count < n ? tf.mul(g, tf.tensor2d(weights, [n, 1])) : g;
      },
    };
  }) as (lg: tf.Tensor2D) => tf.Scalar;
  return f(logits);
}

/**
 * crossEntropy on wasm: XNNPACK's softmax, then our kernels (kernels/wasm/cross-entropy.ts) for the
 * per-row loss and for the gradient, each one pass. Labels were checked by crossEntropy.
 */
function fusedCrossEntropy(logits: tf.Tensor2D, labels: Int32Array, denom: number): tf.Scalar {
  shareIdentityOnWasm();
  const lab = Int32Array.from(labels, (l) => (l >= 0 ? l : -1));
  const f = tf.customGrad((lg, save) => {
    const x = lg as tf.Tensor2D;
    const p = tf.softmax(x);
    (save as tf.GradSaveFunc)([p]);
    const nll = crossEntropyRows(x, p, tf.tensor1d(lab, 'int32'));
    return {
      value: tf.div(tf.sum(nll), denom),
      gradFunc: (dy, saved) => {
        const [ps] = saved as [tf.Tensor2D];
        return crossEntropyGrad(ps, tf.tensor1d(lab, 'int32'), tf.div(dy as tf.Scalar, denom));
      },
    };
  }) as (lg: tf.Tensor2D) => tf.Scalar;
  return f(logits);
}

/** A variable that owns its initial value (tf.variable alone leaves the initial tensor allocated). */
export function newVariable<R extends tf.Rank>(init: tf.Tensor<R>, trainable: boolean): tf.Variable<R> {
  const v = tf.variable(init, trainable);
  init.dispose();
  return v;
}

/**
 * Block i of x seen as [outer, P, inner] -> [outer, inner], copying only that block. On wasm a
 * kernel of ours does it with one heap-to-heap copy per row: the stock Slice (and Unpack, SplitV,
 * which call it) first copies the whole input out of the heap (readSync) for every slice, and the
 * stock Gather walks element by element. Elsewhere it is a plain tf.gather.
 */
const TAKE = 'PeftLabTakeBlock';
function takeBlock(x: tf.Tensor, outer: number, P: number, i: number): tf.Tensor {
  const inner = x.size / (outer * P);
  const wasm = wasmBackendName();
  if (!wasm) {
    return tf.reshape(tf.gather(tf.reshape(x, [outer, P, inner]), tf.tensor1d([i], 'int32'), 1), [
      outer * inner,
    ]);
  }
  if (!tf.getKernel(TAKE, wasm)) {
    tf.registerKernel({
      kernelName: TAKE,
      backendName: wasm,
      kernelFunc: ({ inputs, attrs, backend }) => {
        const wasm = backend as unknown as WasmHeap;
        const src = inputs.x as tf.TensorInfo;
        const a = attrs as unknown as { outer: number; P: number; i: number; inner: number };
        const out = wasm.makeOutput([a.outer * a.inner], src.dtype);
        const from = wasm.typedArrayFromHeap(src);
        const to = wasm.typedArrayFromHeap(out);
        const row = a.P * a.inner;
        if (a.outer === 1) to.set(from.subarray(a.i * a.inner, (a.i + 1) * a.inner));
        else {
          for (let o = 0; o < a.outer; o++) {
            const s = o * row + a.i * a.inner;
            to.set(from.subarray(s, s + a.inner), o * a.inner);
          }
        }
        return out;
      },
    });
  }
  return tf
    .engine()
    .runKernel(TAKE, { x }, { outer, P, i, inner } as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/** The two methods of tfjs-backend-wasm's backend that takeBlock uses (typed here, not imported). */
interface WasmHeap {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/**
 * softmax(q k^T / sqrt(D) + mask) v per item: q [N, T, D], k and v [N, S, D] with N = B * H
 * (item b*H + h), mask [B or 1, 1, T, S] additive. Each product is ONE itemMatMul call over all N
 * items (wasm-kernels.ts: on wasm, N plain 2-D XNNPACK products on views into the operands, no
 * copies; it replaced one copy kernel per operand, one matmul and one reshape per item and a
 * concat, about 3,400 of a LoRA step's 4,300 kernel calls). Measured faster than spreading a
 * group of heads block-diagonally into one wider product (the zero blocks cost more), and than
 * arranging the backward to avoid transposing score-sized tensors (dK^T = Q^T dS packs dS as
 * XNNPACK's weights per item and runs a 24-row product: 2.4 ms against 1.9 for transpose and
 * product, at [32, 128, 128]). The gradient is written out the same way (tfjs's own would take
 * batched matmuls with transpose flags):
 *   dP = dY V^T,  dS = P * (dP - sum(dP * P)),  dQ = dS K / sqrt(D),  dK = dS^T Q / sqrt(D),  dV = P^T dY
 */
function attentionCore(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  mask: tf.Tensor4D,
  B: number,
  H: number,
): tf.Tensor3D {
  const scale = 1 / Math.sqrt(q.shape[2]);
  const [N, T] = q.shape;
  const S = k.shape[1];
  const t = (x: tf.Tensor3D): tf.Tensor3D => tf.transpose(x, [0, 2, 1]);
  const f = tf.customGrad((qi, ki, vi, save) => {
    const qs = tf.mul(qi as tf.Tensor3D, scale) as tf.Tensor3D; // the scale on q: [T, D], not [T, S]
    // The mask broadcasts over heads in 4-D (no copy per head), the same tensors for every shape.
    const scores = tf.add(tf.reshape(itemMatMul(qs, t(ki as tf.Tensor3D)), [B, H, T, S]), mask);
    const p = tf.reshape(tf.softmax(scores), [N, T, S]) as tf.Tensor3D;
    (save as tf.GradSaveFunc)([qs, ki as tf.Tensor3D, vi as tf.Tensor3D, p]);
    return {
      value: itemMatMul(p, vi as tf.Tensor3D), // [N, T, D]
      gradFunc: (dy, saved) => {
        const [qss, ks, vs, ps] = saved as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
        const g = dy as tf.Tensor3D;
        const dp = itemMatMul(g, t(vs)); // [N, T, S]
        const ds = tf.mul(ps, tf.sub(dp, tf.sum(tf.mul(dp, ps), -1, true))) as tf.Tensor3D;
        const dq = tf.mul(itemMatMul(ds, ks), scale);
        const dk = itemMatMul(t(ds), qss); // [N, S, D]
        const dv = itemMatMul(t(ps), g); // [N, S, D]
        return [dq, dk, dv];
      },
    };
  }) as (q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D) => tf.Tensor3D;
  return f(q, k, v);
}

/**
 * Causal multi-head attention, heads side by side in the channel axis: q [B, T, C], k and v
 * [B, S, C] (S = past + T), mask [B or 1, 1, T, S] additive (attentionBias) -> [B, T, C], the
 * heads merged as c_proj reads them. Each (batch item, head) pair is one item of attentionCore.
 */
export function multiHeadAttention(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  mask: tf.Tensor4D,
  nHead: number,
): tf.Tensor3D {
  const [B, T, C] = q.shape;
  const S = k.shape[1];
  const H = nHead;
  const D = C / H;
  // [B, L, C] -> [B * H, L, D]: item b*H + h.
  const heads = (x: tf.Tensor3D, L: number): tf.Tensor3D =>
    tf.reshape(tf.transpose(tf.reshape(x, [B, L, H, D]), [0, 2, 1, 3]), [B * H, L, D]) as tf.Tensor3D;
  const y = attentionCore(heads(q, T), heads(k, S), heads(v, S), mask, B, H); // [B*H, T, D]
  return tf.reshape(tf.transpose(tf.reshape(y, [B, H, T, D]), [0, 2, 1, 3]), [B, T, C]) as tf.Tensor3D;
}

/**
 * Causal self-attention straight from c_attn's output qkv [B*T, 3C] (q, k, v side by side, heads
 * side by side in each) with no past -> [B, T, C], the heads merged as c_proj reads them. The same
 * math as multiHeadAttention, but q, k and v reach the per-head layout [3, B*H, T, D] together in
 * two transposes, and their gradients leave it in one concat and two transposes: cutting qkv into
 * columnBlocks and transposing each gave every block a gradient the full width of qkv (its dy
 * beside zeros, a concat each) and summed the three (two adds), about 8 passes over [B*T, 3C] a
 * layer on top of the three transposes.
 */
export function packedSelfAttention(
  qkv: tf.Tensor2D,
  mask: tf.Tensor4D,
  B: number,
  T: number,
  nHead: number,
): tf.Tensor3D {
  const C = qkv.shape[1] / 3;
  const H = nHead;
  const D = C / H;
  const N = B * H;
  // [B*T, 3C] -> [3, B, T, C] -> [3B, T, H, D] -> [3, B, H, T, D]: item b*H + h of block i (q, k,
  // v). Two rank-4 transposes: tfjs-backend-wasm's rank-5 transpose is about 40x slower.
  const blocks = tf.transpose(tf.reshape(qkv, [B, T, 3, C]), [2, 0, 1, 3]); // [3, B, T, C]
  const packed = tf.transpose(tf.reshape(blocks, [3 * B, T, H, D]), [0, 2, 1, 3]); // [3B, H, T, D]
  const scale = 1 / Math.sqrt(D);
  const t = (x: tf.Tensor3D): tf.Tensor3D => tf.transpose(x, [0, 2, 1]);
  const f = tf.customGrad((pi, save) => {
    const block = (i: number): tf.Tensor3D =>
      tf.reshape(takeBlock(pi as tf.Tensor, 1, 3, i), [N, T, D]) as tf.Tensor3D;
    const qs = tf.mul(block(0), scale) as tf.Tensor3D; // the scale on q: [T, D], not [T, T]
    const k = block(1);
    const v = block(2);
    const scores = tf.add(tf.reshape(itemMatMul(qs, t(k)), [B, H, T, T]), mask);
    const p = tf.reshape(tf.softmax(scores), [N, T, T]) as tf.Tensor3D;
    (save as tf.GradSaveFunc)([qs, k, v, p]);
    return {
      value: itemMatMul(p, v), // [N, T, D]
      gradFunc: (dy, saved) => {
        const [qss, ks, vs, ps] = saved as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
        const g = dy as tf.Tensor3D;
        const dp = itemMatMul(g, t(vs)); // [N, T, T]
        const ds = tf.mul(ps, tf.sub(dp, tf.sum(tf.mul(dp, ps), -1, true))) as tf.Tensor3D;
        const dq = tf.mul(itemMatMul(ds, ks), scale);
        const dk = itemMatMul(t(ds), qss);
        const dv = itemMatMul(t(ps), g);
        return tf.reshape(tf.concat([dq, dk, dv], 0), [3 * B, H, T, D]);
      },
    };
  }) as (p: tf.Tensor) => tf.Tensor3D;
  const y = f(packed); // [B*H, T, D]
  return tf.reshape(tf.transpose(tf.reshape(y, [B, H, T, D]), [0, 2, 1, 3]), [B, T, C]) as tf.Tensor3D;
}

/**
 * x [N, P * C] cut into P column blocks [N, C] (q, k, v of c_attn's output). tf.split on wasm
 * copies the whole input once per block (see takeBlock); each block's gradient is its dy with
 * zeros beside it.
 */
export function columnBlocks(x: tf.Tensor2D, P: number): tf.Tensor2D[] {
  const [N, W] = x.shape;
  const C = W / P;
  return Array.from({ length: P }, (_, i) => {
    const f = tf.customGrad((xi, save) => {
      (save as tf.GradSaveFunc)([]);
      return {
        value: tf.reshape(takeBlock(xi as tf.Tensor, N, P, i), [N, C]),
        gradFunc: (dy) => {
          const d = tf.reshape(dy as tf.Tensor, [N, 1, C]);
          const zeros = (n: number): tf.Tensor[] => (n > 0 ? [tf.zeros([N, n, C])] : []);
          return tf.reshape(tf.concat([...zeros(i), d, ...zeros(P - 1 - i)], 1), [N, W]);
        },
      };
    }) as (x: tf.Tensor2D) => tf.Tensor2D;
    return f(x);
  });
}

/**
 * tf.addN of any number of tensors. tfjs's webgpu AddN binds every input as a storage buffer in one
 * shader, and WebGPU allows 8 per stage by default: with more inputs its pipeline is invalid and
 * the sum is garbage (a wrong gradient norm, so wrong clipping). There it adds in groups of 7.
 */
export function addMany(xs: tf.Tensor[]): tf.Tensor {
  if (tf.getBackend() !== 'webgpu') return tf.addN(xs);
  let level = xs;
  while (level.length > 1) {
    const next: tf.Tensor[] = [];
    for (let i = 0; i < level.length; i += 7) {
      const group = level.slice(i, i + 7);
      next.push(group.length === 1 ? group[0]! : tf.addN(group));
    }
    level = next;
  }
  return level[0]!;
}
