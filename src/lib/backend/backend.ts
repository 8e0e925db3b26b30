/**
 * Picks the tfjs backend in the browser: webgpu > wasm > webgl > cpu. A WebGPU adapter that is a
 * software fallback (SwiftShader: `isFallbackAdapter`) is about 60x slower than wasm on the same CPU
 * (ENVIRONMENT.md), so the automatic choice skips it and says why; an explicit choice still runs on it.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { BackendError } from '../errors';

export const BACKENDS = ['webgpu', 'wasm', 'webgl', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendChoice = BackendName | 'auto';

export interface BackendInfo {
  name: BackendName;
  /** Human description of the device, e.g. "google swiftshader (software fallback)". */
  device: string;
  /** Why this backend runs: the automatic choice's reasoning, or "chosen by you". */
  reason: string;
}

interface GpuAdapterLike {
  isFallbackAdapter?: boolean;
  info?: Record<string, unknown>;
}

/** Describes the WebGPU adapter, or null when WebGPU is unavailable. */
export async function probeWebGpu(): Promise<{
  fallback: boolean;
  description: string;
  name: string;
} | null> {
  const gpu = (
    globalThis.navigator as unknown as { gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> } }
  )?.gpu;
  if (!gpu) return null;
  let adapter: GpuAdapterLike | null;
  try {
    adapter = await gpu.requestAdapter();
  } catch {
    return null;
  }
  if (!adapter) return null;
  // Adapter info fields are getters: copy them with for...in (ENVIRONMENT.md).
  const info: Record<string, unknown> = {};
  for (const k in adapter.info ?? {}) info[k] = (adapter.info as Record<string, unknown>)[k];
  const fallback =
    Boolean(adapter.isFallbackAdapter ?? info.isFallbackAdapter) || info.architecture === 'swiftshader';
  const parts = [info.vendor, info.architecture, info.device, info.description].filter(
    (x) => typeof x === 'string' && x,
  );
  const name = parts.join(' ') || 'unknown adapter';
  return { fallback, description: `${name}${fallback ? ' (software fallback)' : ''}`, name };
}

async function tryBackend(name: BackendName): Promise<boolean> {
  try {
    return (await tf.setBackend(name)) && tf.getBackend() === name;
  } catch {
    return false;
  }
}

function describeNonGpu(name: BackendName): string {
  if (name === 'wasm') return 'CPU, WebAssembly SIMD';
  if (name === 'webgl') return 'WebGL 2';
  return 'CPU, plain JavaScript';
}

export async function chooseBackend(choice: BackendChoice, wasmBaseUrl: string): Promise<BackendInfo> {
  setWasmPaths(wasmBaseUrl);
  const gpu = await probeWebGpu();
  if (choice !== 'auto') {
    if (choice === 'webgpu' && !gpu)
      throw new BackendError('WebGPU is not available in this browser: choose wasm or auto');
    if (!(await tryBackend(choice)))
      throw new BackendError(`the ${choice} backend could not start here: choose auto`);
    return {
      name: choice,
      device: choice === 'webgpu' ? gpu!.description : describeNonGpu(choice),
      reason: 'chosen by you',
    };
  }
  const order: { name: BackendName; reason: string }[] = [];
  if (gpu && !gpu.fallback) order.push({ name: 'webgpu', reason: 'a hardware WebGPU adapter is available' });
  const why = !gpu
    ? 'WebGPU is not available'
    : gpu.fallback
      ? `the only WebGPU adapter is a software fallback (${gpu.name}), about 60x slower than wasm here`
      : 'WebGPU did not start';
  order.push({ name: 'wasm', reason: `${why}, so wasm runs` });
  order.push({ name: 'webgl', reason: `${why} and wasm did not start, so WebGL runs` });
  order.push({ name: 'cpu', reason: 'no accelerated backend started; plain JavaScript is slow' });
  for (const o of order) {
    if (await tryBackend(o.name)) {
      return {
        name: o.name,
        device: o.name === 'webgpu' ? gpu!.description : describeNonGpu(o.name),
        reason: o.reason,
      };
    }
  }
  throw new BackendError('no tfjs backend could start in this browser');
}
