/**
 * Differentiable building blocks tuned for tfjs on wasm (see ENVIRONMENT.md):
 * - tfjs's own matMul gradient uses transposeA/B flags, which the wasm backend runs 10-20x slower
 *   than an explicit transpose followed by a plain matMul, so every matmul here has a custom
 *   gradient with explicit transposes;
 * - a frozen weight takes a separate path whose gradient function computes only dx, so no weight
 *   gradient is ever computed for it;
 * - `tf.gather` has no gradient on wasm (UnsortedSegmentSum is missing), so a trainable embedding
 *   gets its gradient as oneHot(ids)^T @ dy.
 */
import * as tf from '@tensorflow/tfjs';
import { InternalError } from '../errors';

/** True when `w` is a variable the optimizer does not update: its weight gradient is skipped. */
export function isFrozen(w: tf.Tensor): boolean {
  return w instanceof tf.Variable && !w.trainable;
}

/**
 * x [N, in] @ w [in, out] where w is frozen (or a constant derived from frozen weights, such as the
 * cached wte^T of the tied LM head): the gradient function returns dx only.
 */
export function matmulFrozen(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const f = tf.customGrad((xi, save) => {
    (save as tf.GradSaveFunc)([]);
    return {
      value: tf.matMul(xi as tf.Tensor2D, w),
      gradFunc: (dy) => tf.matMul(dy as tf.Tensor2D, tf.transpose(w)),
    };
  }) as (x: tf.Tensor2D) => tf.Tensor2D;
  return f(x);
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
    value: tf.matMul(x, y),
    gradFunc: (dy, saved) => {
      const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
      const g = dy as tf.Tensor;
      return [tf.matMul(g, swapLast(sb)), tf.matMul(swapLast(sa), g)];
    },
  };
}) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

/** Swaps the last two axes. */
export function swapLast(x: tf.Tensor): tf.Tensor {
  const perm = [...Array(x.rank).keys()];
  perm[x.rank - 1] = x.rank - 2;
  perm[x.rank - 2] = x.rank - 1;
  return tf.transpose(x, perm);
}

/** x [N, in] -> [N, out], a Conv1D/Linear with weight stored [in, out] (as GPT-2's Conv1D). */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  const y = matmul(x, w);
  return b ? tf.add(y, b) : y;
}

/** Row lookup table[ids] -> [..., dim]; gradient to a trainable table without UnsortedSegmentSum. */
export function embed(table: tf.Tensor2D, ids: tf.Tensor): tf.Tensor {
  if (isFrozen(table)) return tf.gather(table, ids);
  const flat = tf.reshape(ids, [-1]) as tf.Tensor1D;
  const [rows, dim] = table.shape;
  const f = tf.customGrad((t, save) => {
    (save as tf.GradSaveFunc)([flat]); // the forward scope disposes unsaved tensors
    return {
      value: tf.gather(t as tf.Tensor2D, flat),
      gradFunc: (dy, saved) => {
        const [ids] = saved as [tf.Tensor1D];
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

const GELU_C = Math.sqrt(2 / Math.PI);

/**
 * GPT-2's gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (Hendrycks & Gimpel, tanh form),
 * with its derivative written out: 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
 * x*x*x rather than pow(x, 3): pow is about 9x slower on wasm.
 */
export const geluNew = tf.customGrad((xi, save) => {
  const x = xi as tf.Tensor;
  const x2 = tf.mul(x, x);
  const t = tf.tanh(tf.mul(tf.add(x, tf.mul(tf.mul(x2, x), 0.044715)), GELU_C));
  (save as tf.GradSaveFunc)([x, x2, t]);
  return {
    value: tf.mul(tf.mul(x, 0.5), tf.add(t, 1)),
    gradFunc: (dy, saved) => {
      const [xs, xs2, ts] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      const left = tf.mul(tf.add(ts, 1), 0.5);
      const sech2 = tf.sub(1, tf.mul(ts, ts));
      const inner = tf.mul(tf.add(tf.mul(xs2, 3 * 0.044715), 1), GELU_C);
      const right = tf.mul(tf.mul(tf.mul(xs, 0.5), sech2), inner);
      return tf.mul(dy as tf.Tensor, tf.add(left, right));
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
  }
  const denom = Math.max(count, 1);
  const w = tf.tensor1d(weights);
  // tfjs-backend-wasm 4.22 writes int bits into a float32 OneHot: build it as int32 and cast.
  const oneHot = tf.cast(tf.oneHot(tf.tensor1d(safe, 'int32'), v), 'float32');
  const f = tf.customGrad((lg, save) => {
    const logp = tf.logSoftmax(lg as tf.Tensor2D);
    // Tensors the gradient needs must be saved: the forward scope disposes everything else.
    (save as tf.GradSaveFunc)([logp, oneHot, w]);
    const nll = tf.neg(tf.sum(tf.mul(logp, oneHot), -1)); // [N]
    return {
      value: tf.div(tf.sum(tf.mul(nll, w)), denom),
      gradFunc: (dy, saved) => {
        const [lp, oh, wt] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
        const g = tf.mul(tf.sub(tf.exp(lp), oh), tf.reshape(wt, [n, 1]));
        return tf.mul(g, tf.div(dy as tf.Scalar, denom));
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
