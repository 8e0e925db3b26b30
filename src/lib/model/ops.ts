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
      if (l >= v) throw new RangeError(`label ${l} at row ${i} is outside 0..${v - 1}`);
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
export function newVariable(init: tf.Tensor, trainable: boolean): tf.Variable {
  const v = tf.variable(init, trainable);
  init.dispose();
  return v;
}

/**
 * Heads handled together in one block-diagonal product by `multiHeadAttention`: the largest divisor
 * of nHead up to 4. Each group costs G times the useful multiply-adds (the zero blocks), which the
 * 2-D matmul's ~20x speed over the batched one on wasm more than pays for up to about 4.
 */
export function headGroup(nHead: number): number {
  for (let g = Math.min(4, nHead); g > 1; g--) if (nHead % g === 0) return g;
  return 1;
}

/** Block masks for G heads of width D over S keys, times `scale`: [E, G*S] and [G*S, E], E = G*D. */
const maskCache = new Map<string, { chs: Float32Array; hsc: Float32Array }>();
function blockMasks(G: number, D: number, S: number, scale: number): { chs: tf.Tensor2D; hsc: tf.Tensor2D } {
  const key = `${G} ${D} ${S} ${scale}`;
  let m = maskCache.get(key);
  if (!m) {
    const E = G * D;
    const chs = new Float32Array(E * G * S);
    const hsc = new Float32Array(G * S * E);
    for (let c = 0; c < E; c++) {
      const h = Math.floor(c / D);
      for (let j = 0; j < S; j++) {
        chs[c * G * S + h * S + j] = scale;
        hsc[(h * S + j) * E + c] = scale;
      }
    }
    if (maskCache.size > 32) maskCache.clear(); // generation grows S by one per token
    m = { chs, hsc };
    maskCache.set(key, m);
  }
  return { chs: tf.tensor2d(m.chs, [G * D, G * S]), hsc: tf.tensor2d(m.hsc, [G * S, G * D]) };
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
  if (tf.getBackend() !== 'wasm') {
    return tf.reshape(tf.gather(tf.reshape(x, [outer, P, inner]), tf.tensor1d([i], 'int32'), 1), [
      outer * inner,
    ]);
  }
  if (!tf.getKernel(TAKE, 'wasm')) {
    tf.registerKernel({
      kernelName: TAKE,
      backendName: 'wasm',
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

/** Item i of x [N, ...] along axis 0, as a tensor of the remaining shape. */
function item(x: tf.Tensor, i: number): tf.Tensor {
  if (x.shape[0] === 1) return tf.reshape(x, x.shape.slice(1));
  return tf.reshape(takeBlock(x, 1, x.shape[0], i), x.shape.slice(1));
}

/**
 * a [N, M, K] @ b [N, K, L] as N plain 2-D products: tfjs-backend-wasm runs a matmul through
 * XNNPACK only when both operands have batch 1, and any batched one through a scalar loop about
 * 20x slower (batch_mat_mul_impl.cc, slow_batch_matmul).
 */
function perItem(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const [n, m] = a.shape;
  const l = b.shape[2];
  const outs = Array.from({ length: n }, (_, i) =>
    tf.reshape(tf.matMul(item(a, i) as tf.Tensor2D, item(b, i) as tf.Tensor2D), [1, m, l]),
  );
  return (n === 1 ? outs[0]! : tf.concat(outs, 0)) as tf.Tensor3D;
}

/** G copies of x side by side along `axis` (tf.tile on wasm is a slow generic loop; concat copies rows). */
function repeat(x: tf.Tensor, G: number, axis: number): tf.Tensor {
  return G > 1
    ? tf.concat(
        Array.from({ length: G }, () => x),
        axis,
      )
    : x;
}

/** x [N, S, E] -> [N, E, G*S]: x^T repeated G times along its columns, times the mask (block-diagonal x^T per head). */
function spreadT(x: tf.Tensor3D, G: number, chs: tf.Tensor2D | null): tf.Tensor3D {
  const r = repeat(tf.transpose(x, [0, 2, 1]), G, 2);
  return (chs ? tf.mul(r, chs) : r) as tf.Tensor3D;
}

/** x [N, S, E] -> [N, G*S, E]: x repeated G times along its rows, times the mask. */
function spread(x: tf.Tensor3D, G: number, hsc: tf.Tensor2D | null): tf.Tensor3D {
  const r = repeat(x, G, 1);
  return (hsc ? tf.mul(r, hsc) : r) as tf.Tensor3D;
}

/**
 * softmax(q k^T / sqrt(D) + bias) v for G heads side by side in the last axis (as c_attn's output
 * holds them): q [N, T, E], k and v [N, S, E], E = G * D, bias [1 or N, T, 1, S] additive.
 * Every product is a 2-D matmul per item: the G heads' keys are spread block-diagonally (head h's
 * k^T in rows h*D.., columns h*S..), so one [T, E] @ [E, G*S] gives every head's scores and
 * [T, G*S] @ [G*S, E] every head's output, already merged. The gradient is written out the same way
 * (tfjs's own would take batched matmuls with transpose flags):
 *   dP = dY V^T,  dS = P * (dP - sum(dP * P)),  dQ = dS K * scale,  dK = dS^T Q * scale,  dV = P^T dY
 */
function attentionCore(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  bias: tf.Tensor4D,
  G: number,
): tf.Tensor3D {
  const [N, T, E] = q.shape;
  const S = k.shape[1];
  const D = E / G;
  const scale = 1 / Math.sqrt(D);
  const f = tf.customGrad((qi, ki, vi, save) => {
    const [q3, k3, v3] = [qi, ki, vi] as tf.Tensor3D[];
    const unit = G > 1 ? blockMasks(G, D, S, 1) : null;
    const scaled = blockMasks(G, D, S, scale);
    const kd = spreadT(k3!, G, scaled.chs); // [N, E, G*S], scale folded in
    const vd = spread(v3!, G, unit?.hsc ?? null); // [N, G*S, E]
    const scores = tf.add(tf.reshape(perItem(q3!, kd), [N, T, G, S]), bias);
    const p = tf.softmax(scores) as tf.Tensor4D; // [N, T, G, S]
    (save as tf.GradSaveFunc)([q3!, k3!, v3!, p]);
    return {
      value: perItem(tf.reshape(p, [N, T, G * S]) as tf.Tensor3D, vd), // [N, T, E]
      gradFunc: (dy, saved) => {
        const [qs, ks, vs, ps] = saved as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.Tensor4D];
        const g = dy as tf.Tensor3D;
        const um = G > 1 ? blockMasks(G, D, S, 1) : null;
        const sm = blockMasks(G, D, S, scale);
        const p3 = tf.reshape(ps, [N, T, G * S]) as tf.Tensor3D;
        const dp = tf.reshape(perItem(g, spreadT(vs, G, um?.chs ?? null)), [N, T, G, S]);
        const ds = tf.mul(ps, tf.sub(dp, tf.sum(tf.mul(dp, ps), -1, true)));
        const ds3 = tf.reshape(ds, [N, T, G * S]) as tf.Tensor3D;
        const dq = perItem(ds3, spread(ks, G, sm.hsc)); // [N, T, E]
        // dK^T [N, E, S]: Q^T dS through the block mask, the G column blocks summed.
        const dkd = tf.mul(perItem(tf.transpose(qs, [0, 2, 1]) as tf.Tensor3D, ds3), sm.chs);
        const dk = tf.transpose(tf.sum(tf.reshape(dkd, [N, E, G, S]), 2), [0, 2, 1]);
        // dV [N, S, E]: P^T dY through the block mask, the G row blocks summed.
        const dvd = perItem(tf.transpose(p3, [0, 2, 1]) as tf.Tensor3D, g);
        const dvm = um ? tf.mul(dvd, um.hsc) : dvd;
        const dv = G > 1 ? tf.sum(tf.reshape(dvm, [N, G, S, E]), 1) : dvm;
        return [dq, dk, dv];
      },
    };
  }) as (q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D) => tf.Tensor3D;
  return f(q, k, v);
}

/**
 * Causal multi-head attention, heads side by side in the channel axis: q [B, T, C], k and v
 * [B, S, C] (S = past + T), mask [B or 1, 1, T, S] additive (attentionBias) -> [B, T, C], the
 * heads merged as c_proj reads them. Heads go in groups of headGroup(nHead) through attentionCore;
 * with more than one group, the groups become items of the batch.
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
  const G = headGroup(nHead);
  const NG = nHead / G;
  const E = C / NG;
  const Bm = mask.shape[0];
  if (NG === 1) return attentionCore(q, k, v, tf.reshape(mask, [Bm, T, 1, S]) as tf.Tensor4D, G);
  // [B, L, C] -> [B * NG, L, E]: each group of heads one item.
  const split = (x: tf.Tensor3D, L: number): tf.Tensor3D =>
    tf.reshape(tf.transpose(tf.reshape(x, [B, L, NG, E]), [0, 2, 1, 3]), [B * NG, L, E]) as tf.Tensor3D;
  const bias = Bm === 1 ? tf.reshape(mask, [1, T, 1, S]) : tf.reshape(repeat(mask, NG, 1), [B * NG, T, 1, S]); // [B, NG, T, S]: item b*NG + g
  const y = attentionCore(split(q, T), split(k, S), split(v, S), bias as tf.Tensor4D, G); // [B*NG, T, E]
  return tf.reshape(tf.transpose(tf.reshape(y, [B, NG, T, E]), [0, 2, 1, 3]), [B, T, C]) as tf.Tensor3D;
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
