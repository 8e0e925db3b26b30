/**
 * Test set-up for our WebGPU kernels in Node: starts the webgpu backend (node-webgpu.ts) and says
 * whether the suite can run. Without an adapter the kernel tests skip with the reason, so the suite
 * still runs on a machine without chromium or a Vulkan driver; in CI (CI=true, where chromium and
 * so SwiftShader are installed) a missing adapter fails instead, so the kernels cannot go untested.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendError } from '../../errors';
import { initNodeWebGpu, type NodeWebGpu } from './node-webgpu';

/** The adapter, or null to skip. Throws in CI. Also makes small ops run on the GPU (see below). */
export async function webgpuForTests(): Promise<NodeWebGpu | null> {
  const r = await initNodeWebGpu();
  if (!r.ok) {
    if (process.env.CI === 'true' || process.env.CI === '1')
      throw new BackendError(`WebGPU kernel tests cannot run in CI: ${r.reason}`);
    console.warn(`skipping WebGPU kernel tests: ${r.reason}`);
    return null;
  }
  // tfjs runs small ops on the CPU when their inputs are there (WEBGPU_CPU_FORWARD); tests use tiny
  // shapes, so without this the stock side would often not touch the GPU at all.
  tf.env().set('WEBGPU_CPU_FORWARD', false);
  return r.gpu;
}

/** Seeded uniform values in [-1, 1) (a small LCG: the same numbers on every backend). */
export function randomValues(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32) * 2 - 1;
  }
  return out;
}

/** Runs fn on the named backend and returns every output's values as plain arrays. */
export async function onBackend(name: 'cpu' | 'webgpu', fn: () => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(name);
  const outs = tf.tidy(fn);
  const values = await Promise.all(outs.map(async (t) => (await t.data()) as Float32Array));
  outs.forEach((t) => t.dispose());
  return values;
}

/** Largest |a - b| / (1 + |b|): absolute near zero, relative for large values. */
export function maxRelError(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i]! - b[i]!) / (1 + Math.abs(b[i]!));
    if (!(e <= m)) m = Number.isNaN(e) ? Infinity : e;
  }
  return m;
}

/** A loss that weights every output element differently, so each gradient element is tested. */
export function weightedSum(y: tf.Tensor, seed: number): tf.Scalar {
  return tf.sum(tf.mul(y, tf.tensor(randomValues(y.size, seed), y.shape)));
}
