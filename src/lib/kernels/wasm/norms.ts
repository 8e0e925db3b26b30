/**
 * LayerNorm and RMSNorm over the last axis on wasm, each as one forward kernel and one backward
 * kernel in JS over the heap (see heap.ts for why). Stock tfjs runs LayerNorm as about 9 kernels
 * forward and 10-15 backward, each a pass over [rows, C]; here each direction reads its inputs once
 * per row (the row is C floats, in cache between the loops). Sums are taken in doubles.
 *
 *   LayerNorm  xhat = (x - mean) rstd,  rstd = 1 / sqrt(mean((x - mean)^2) + eps),  y = xhat g + b
 *              dx = rstd (gd - mean(gd) - xhat mean(gd xhat)),  gd = dy g
 *   RMSNorm    xhat = x rrms,  rrms = 1 / sqrt(mean(x^2) + eps),  y = xhat g
 *              dx = rrms (gd - xhat mean(gd xhat))
 *   both       dg = sum over rows of dy xhat;  db = sum over rows of dy (LayerNorm)
 *
 * The forward kernel returns y and the per-row statistics [rows, 2] = (mean, rstd), mean 0 for
 * RMSNorm; the backward recomputes xhat from x and them (x is alive anyway: the residual stream).
 */
import * as tf from '@tensorflow/tfjs';
import { f32, heapOf, offsetOf, onWasm, rowsCols, scratch, simdOn, wasmKernelOn } from './heap';

export const NORM_FORWARD = 'PeftLabNormForward';
export const NORM_BACKWARD = 'PeftLabNormBackward';
/**
 * Not a kernel of its own: the switch (setWasmKernels) for running both kernels above in
 * WebAssembly SIMD (simd.ts: normForward, normBackward; sums in float32 over 4 lanes, where the JS
 * loops below sum in doubles). Rows whose C is not a multiple of 4 keep the JS loops.
 */
export const NORM_SIMD = 'PeftLabNormSimd';

function simdFor(backend: unknown, C: number): ReturnType<typeof simdOn> {
  return C % 4 === 0 && wasmKernelOn(NORM_SIMD) ? simdOn(backend) : null;
}

interface NormAttrs {
  eps: number;
  /** 1 for RMSNorm (no centring, no beta), 0 for LayerNorm. */
  rms: number;
}

function registerForward(): string | null {
  return onWasm(NORM_FORWARD, ({ inputs, backend, attrs }) => {
    const be = heapOf(backend);
    const { eps, rms } = attrs as unknown as NormAttrs;
    const xi = inputs.x as tf.TensorInfo;
    const [rows, C] = rowsCols(xi.shape);
    const yo = be.makeOutput(xi.shape, 'float32');
    const so = be.makeOutput([rows, 2], 'float32');
    const simd = simdFor(backend, C);
    if (simd) {
      const zeros = rms ? scratch(simd.be, simd.k, C) : 0; // RMSNorm's beta
      const gamma = offsetOf(simd, inputs.gamma as tf.TensorInfo);
      const beta = rms ? zeros : offsetOf(simd, inputs.beta as tf.TensorInfo);
      const [x, y, st] = [offsetOf(simd, xi), offsetOf(simd, yo), offsetOf(simd, so)];
      simd.k.normForward(x, gamma, beta, y, st, rows, 4 * C, 1 / C, eps, rms);
      if (rms) simd.be.wasm._free(zeros);
      return [yo, so];
    }
    const x = f32(be, xi);
    const g = f32(be, inputs.gamma as tf.TensorInfo);
    const b = rms ? null : f32(be, inputs.beta as tf.TensorInfo);
    const y = f32(be, yo);
    const st = f32(be, so);
    for (let r = 0, o = 0; r < rows; r++, o += C) {
      let mean = 0;
      if (!rms) {
        for (let j = 0; j < C; j++) mean += x[o + j]!;
        mean /= C;
      }
      let v = 0;
      for (let j = 0; j < C; j++) {
        const c = x[o + j]! - mean;
        v += c * c;
      }
      const rstd = 1 / Math.sqrt(v / C + eps);
      if (b) for (let j = 0; j < C; j++) y[o + j] = (x[o + j]! - mean) * rstd * g[j]! + b[j]!;
      else for (let j = 0; j < C; j++) y[o + j] = x[o + j]! * rstd * g[j]!;
      st[2 * r] = mean;
      st[2 * r + 1] = rstd;
    }
    return [yo, so];
  });
}

function registerBackward(): string | null {
  return onWasm(NORM_BACKWARD, ({ inputs, backend, attrs }) => {
    const be = heapOf(backend);
    const { rms, params } = attrs as unknown as { rms: number; params: number };
    const xi = inputs.x as tf.TensorInfo;
    const [rows, C] = rowsCols(xi.shape);
    const dxo = be.makeOutput(xi.shape, 'float32');
    const dgo = params ? be.makeOutput([C], 'float32') : null;
    const dbo = params && !rms ? be.makeOutput([C], 'float32') : null;
    const simd = simdFor(backend, C);
    if (simd) {
      const { k } = simd;
      const spare = params && rms ? scratch(simd.be, k, C) : 0; // RMSNorm's unused db
      const dg = dgo ? offsetOf(simd, dgo) : 0;
      const db = dbo ? offsetOf(simd, dbo) : spare;
      if (dgo) k.zero(dg, 4 * C);
      if (dbo) k.zero(db, 4 * C);
      const at = (t: tf.TensorInfo): number => offsetOf(simd, t);
      const [x, dy, st, g] = [inputs.x, inputs.dy, inputs.stats, inputs.gamma].map((t) =>
        at(t as tf.TensorInfo),
      );
      k.normBackward(x!, dy!, st!, g!, at(dxo), dg, db, rows, 4 * C, 1 / C, rms, params);
      if (spare) simd.be.wasm._free(spare);
      return [dxo, ...(dgo ? [dgo] : []), ...(dbo ? [dbo] : [])];
    }
    const x = f32(be, xi);
    const dy = f32(be, inputs.dy as tf.TensorInfo);
    const st = f32(be, inputs.stats as tf.TensorInfo);
    const g = f32(be, inputs.gamma as tf.TensorInfo);
    const dx = f32(be, dxo);
    const dg = params ? new Float64Array(C) : null;
    const db = params && !rms ? new Float64Array(C) : null;
    for (let r = 0, o = 0; r < rows; r++, o += C) {
      const mean = st[2 * r]!;
      const rstd = st[2 * r + 1]!;
      let sumG = 0;
      let sumGX = 0;
      for (let j = 0; j < C; j++) {
        const xh = (x[o + j]! - mean) * rstd;
        const d = dy[o + j]!;
        const gd = d * g[j]!;
        sumG += gd;
        sumGX += gd * xh;
        if (dg) dg[j]! += d * xh;
        if (db) db[j]! += d;
      }
      const mG = rms ? 0 : sumG / C;
      const mGX = sumGX / C;
      for (let j = 0; j < C; j++) {
        const xh = (x[o + j]! - mean) * rstd;
        dx[o + j] = rstd * (dy[o + j]! * g[j]! - mG - xh * mGX);
      }
    }
    const outs = [dxo];
    if (dgo) {
      f32(be, dgo).set(dg!);
      outs.push(dgo);
    }
    if (dbo) {
      f32(be, dbo).set(db!);
      outs.push(dbo);
    }
    return outs;
  });
}

/** True (and the kernels registered) when the running backend is wasm. */
export function fusedNormsOn(): boolean {
  return registerForward() !== null && registerBackward() !== null;
}

/**
 * y and the statistics [rows, 2] (mean, rstd). `beta` null means RMSNorm. Wasm only (fusedNormsOn);
 * no gradient of its own: ops.ts wraps it in a customGrad with normBackward.
 */
export function normForward(
  x: tf.Tensor,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D | null,
  eps: number,
): [tf.Tensor, tf.Tensor2D] {
  const inputs: tf.NamedTensorMap = beta ? { x, gamma, beta } : { x, gamma };
  const attrs: NormAttrs = { eps, rms: beta ? 0 : 1 };
  return tf.engine().runKernel(NORM_FORWARD, inputs, attrs as unknown as tf.NamedAttrMap) as unknown as [
    tf.Tensor,
    tf.Tensor2D,
  ];
}

/**
 * dx, and with `params` dgamma (and dbeta for LayerNorm), from dy, the forward's input and its
 * statistics.
 */
export function normBackward(
  dy: tf.Tensor,
  x: tf.Tensor,
  stats: tf.Tensor2D,
  gamma: tf.Tensor1D,
  rms: boolean,
  params: boolean,
): tf.Tensor[] {
  const attrs = { rms: rms ? 1 : 0, params: params ? 1 : 0 };
  const out = tf
    .engine()
    .runKernel(NORM_BACKWARD, { dy, x, stats, gamma }, attrs as unknown as tf.NamedAttrMap);
  return Array.isArray(out) ? (out as tf.Tensor[]) : [out as tf.Tensor];
}
