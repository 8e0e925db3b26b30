/**
 * What our wasm kernels (this folder) use of tfjs-backend-wasm's BackendWasm, typed here rather than
 * imported (its class is not exported with these members), and the registration they share.
 *
 * Why kernels of our own, written in TypeScript over Float32Array views of the wasm heap: tfjs's
 * wasm backend runs each elementwise op or reduction as its own kernel, one pass over memory each,
 * so a LayerNorm's forward and backward, GELU's gradient or cross-entropy's tail are chains of
 * 5-15 passes over [N, C], some of them scalar loops (Max, OneHot). A JS loop is scalar too (about
 * 1.5 ns an element here, where XNNPACK's vectorised Multiply takes a fraction of that), so it wins
 * only where it removes passes: it reads each input once and fuses the whole chain. Each kernel
 * here was kept only if a whole LoRA step measured faster with it than without (setWasmKernels).
 * Only the wasm backend gets them; every other backend keeps the stock composition (ops.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { wasmBackendName } from '../../model/wasm-kernels';
import { relaxedSimd } from './emit';
import { simdKernels, type SimdKernels } from './simd';

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
/** Stock kernels we replaced (Identity), by `${backend}/${name}`, to put back when switched off. */
const replaced = new Map<string, tf.KernelConfig>();
let enabled: (kernelName: string) => boolean = () => true;

/**
 * Switches our wasm kernels off (every op takes its stock composition, replaced stock kernels come
 * back), on again, or some of them on (a predicate on the kernel's name). For benches and tests
 * that compare the two in one process.
 */
export function setWasmKernels(on: boolean | ((kernelName: string) => boolean)): void {
  enabled = typeof on === 'function' ? on : () => on;
  for (const [key, config] of replaced) {
    if (enabled(config.kernelName)) continue;
    tf.unregisterKernel(config.kernelName, config.backendName);
    tf.registerKernel(config);
    replaced.delete(key);
    done.delete(key);
  }
}

/** Whether our kernel `kernelName` is switched on (setWasmKernels). */
export function wasmKernelOn(kernelName: string): boolean {
  return enabled(kernelName);
}

/**
 * Not a kernel but a switch under the same names (setWasmKernels, ab.ts --off): our gemms accumulate
 * by relaxed SIMD's fused multiply-add (simd.ts) where the engine has it, unless this is off.
 */
export const RELAXED_SIMD = 'PeftLabRelaxedSimd';

/** Whether our gemms run with fused multiply-adds: the engine has relaxed SIMD and RELAXED_SIMD is on. */
export function fmaOn(): boolean {
  return relaxedSimd() && enabled(RELAXED_SIMD);
}

/**
 * Registers `kernelFunc` as `kernelName` on the running wasm backend (`wasm` or `wasm-1t`) once,
 * replacing a stock kernel of that name if there is one. Returns the backend name, or null when
 * the running backend is not wasm (the caller then takes the stock composition).
 */
export function onWasm(kernelName: string, kernelFunc: KernelFunc): string | null {
  const backendName = wasmBackendName();
  if (!backendName || !enabled(kernelName)) return null;
  const key = `${backendName}/${kernelName}`;
  if (done.has(key)) return backendName;
  const stock = tf.getKernel(kernelName, backendName);
  if (stock) {
    replaced.set(key, stock);
    tf.unregisterKernel(kernelName, backendName);
  }
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

/**
 * What our SIMD kernels (simd.ts) use of tfjs-backend-wasm's backend: its memory (to run over the
 * heap in place), malloc for scratch space, and tensors' offsets in the heap.
 */
interface WasmHeapAlloc {
  _malloc(bytes: number): number;
  _free(ptr: number): void;
}
interface WasmInternals {
  // Absent on other backends. The heap is exported as asm.memory by the unthreaded builds; the
  // threaded build imports it, and its glue keeps it as wasmMemory.
  wasm?: WasmHeapAlloc & { asm?: { memory?: WebAssembly.Memory }; wasmMemory?: WebAssembly.Memory };
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } };
}
export interface Ready {
  be: { wasm: WasmHeapAlloc; dataIdMap: WasmInternals['dataIdMap'] };
  k: SimdKernels;
}

/** The backend's heap and our SIMD kernels over it, or null (not wasm, or our module cannot link to it). */
export function simdOn(backend: unknown): Ready | null {
  const be = backend as WasmInternals;
  const memory = be.wasm?.asm?.memory ?? be.wasm?.wasmMemory;
  const k = memory ? simdKernels(memory, fmaOn()) : null;
  return k && be.wasm ? { be: { wasm: be.wasm, dataIdMap: be.dataIdMap }, k } : null;
}

/** A scratch area of `floats` floats in the heap, zeroed; freed by the caller. */
export function scratch(be: Ready['be'], k: SimdKernels, floats: number): number {
  const ptr = be.wasm._malloc(4 * floats);
  k.zero(ptr, 4 * floats);
  return ptr;
}

/** Byte offset of a tensor's data in the heap. Read it after the call's last allocation. */
export function offsetOf(r: Ready, t: tf.TensorInfo): number {
  return r.be.dataIdMap.get(t.dataId).memoryOffset;
}
