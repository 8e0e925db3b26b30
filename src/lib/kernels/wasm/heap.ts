/**
 * What our wasm kernels (this folder) use of tfjs-backend-wasm's BackendWasm, typed here rather than
 * imported (its class is not exported with these members), and the registration they share.
 *
 * Why kernels of our own, written in TypeScript over Float32Array views of the wasm heap: tfjs's
 * wasm backend runs each elementwise op or reduction as its own kernel, one pass over memory and
 * about 20-100 us of dispatch each, so a LayerNorm's forward and backward, GELU's gradient or
 * cross-entropy's tail are chains of 5-15 passes over [N, C]. These ops are memory-bound: one
 * tight JS loop reading each input once beats the chain several times over, even without SIMD.
 * Only the wasm backend gets them; every other backend keeps the stock composition (ops.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { wasmBackendName } from '../../model/wasm-kernels';

export interface WasmBackendHeap {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  incRef(dataId: tf.DataId): void;
}

/** The backend a kernelFunc receives, seen as the wasm backend. */
export function heapOf(backend: unknown): WasmBackendHeap {
  return backend as WasmBackendHeap;
}

/**
 * Float32 views of tensors in the heap. Take them only after every makeOutput of the call: an
 * allocation may grow the heap, which detaches views taken before it.
 */
export function f32(be: WasmBackendHeap, t: tf.TensorInfo): Float32Array {
  return be.typedArrayFromHeap(t) as Float32Array;
}

type KernelFunc = tf.KernelConfig['kernelFunc'];

const done = new Set<string>();

/**
 * Registers `kernelFunc` as `kernelName` on the running wasm backend (`wasm` or `wasm-1t`) once,
 * replacing a stock kernel of that name if there is one. Returns the backend name, or null when
 * the running backend is not wasm (the caller then takes the stock composition).
 */
export function onWasm(kernelName: string, kernelFunc: KernelFunc): string | null {
  const backendName = wasmBackendName();
  if (!backendName) return null;
  const key = `${backendName}/${kernelName}`;
  if (done.has(key)) return backendName;
  if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
  tf.registerKernel({ kernelName, backendName, kernelFunc });
  done.add(key);
  return backendName;
}

/** Rows and the last axis's size of a tensor seen as [rows, cols]. */
export function rowsCols(shape: readonly number[]): [number, number] {
  const cols = shape[shape.length - 1] ?? 1;
  const size = shape.reduce((p, d) => p * d, 1);
  return [cols === 0 ? 0 : size / cols, cols];
}
