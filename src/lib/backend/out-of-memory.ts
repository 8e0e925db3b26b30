/**
 * Running out of memory, made a named error. tfjs's wasm backend takes whatever `_malloc` returns:
 * when the heap cannot grow, malloc returns 0 and tfjs writes the tensor over the start of the heap
 * (and a request of 4 GiB or more wraps around the 32-bit size), so the fault would surface later
 * as wrong numbers, or never. The guard wraps the backend's malloc so such a request throws
 * OutOfMemoryError at the allocation; the engines then add what to lower (`outOfMemoryAdvice`).
 */
import * as tf from '@tensorflow/tfjs';
import { OutOfMemoryError } from '../errors';

const MIB = 1024 * 1024;
/** The most a 32-bit wasm heap can hold (Emscripten's getHeapMax in tfjs-backend-wasm 4.22). */
export const WASM_HEAP_MAX = 4294901760;

interface WasmModule {
  _malloc(bytes: number): number;
  HEAPU8: Uint8Array;
}

const guarded = new WeakSet<object>();

/**
 * A ceiling on the bytes of live tensors, below what the heap could grow to: what a tab on a
 * smaller device would hit. For fault-injection tests and for reproducing a user's out-of-memory
 * report on a bigger machine; null (the default) leaves only the heap's own limit.
 */
let ceiling: number | null = null;
export function limitWasmHeap(bytes: number | null): void {
  ceiling = bytes;
}

/**
 * Makes the active backend's allocations fail loudly: on a wasm backend, a malloc that cannot be
 * satisfied throws OutOfMemoryError instead of returning 0. Other backends are left as they are
 * (WebGPU reports an allocation failure through its device's error scopes, not a return value).
 * Safe to call again for the same backend.
 */
export function guardAllocations(): void {
  const wasm = (tf.backend() as unknown as { wasm?: Partial<WasmModule> }).wasm;
  if (wasm) guardMalloc(wasm);
}

/** Wraps one Emscripten module's malloc (see guardAllocations). */
export function guardMalloc(wasm: Partial<WasmModule>): void {
  if (typeof wasm._malloc !== 'function' || guarded.has(wasm)) return;
  const malloc = wasm._malloc.bind(wasm);
  const guard = (bytes: number): number => {
    const heap = (): string => `${Math.round((wasm.HEAPU8?.length ?? 0) / MIB)} MiB`;
    if (bytes > WASM_HEAP_MAX) {
      throw new OutOfMemoryError(
        `a tensor of ${Math.round(bytes / MIB)} MiB does not fit in the wasm heap, which holds at most 4 GiB`,
      );
    }
    if (ceiling !== null && tf.memory().numBytes + bytes > ceiling) {
      throw new OutOfMemoryError(
        `${Math.ceil(bytes / MIB)} MiB more for a tensor would pass the ${Math.round(ceiling / MIB)} MiB limit on the wasm heap`,
      );
    }
    const at = malloc(bytes);
    // Emscripten's first-call stub replaces Module._malloc with the raw export: put the guard back.
    wasm._malloc = guard;
    if (at === 0 && bytes > 0) {
      throw new OutOfMemoryError(
        `the wasm heap (${heap()}) could not grow by ${Math.ceil(bytes / MIB)} MiB for another tensor`,
      );
    }
    return at;
  };
  wasm._malloc = guard;
  guarded.add(wasm);
}

/** Whether `e` is the runtime running out of memory (ours, the JS engine's, or WebGPU's). */
export function isOutOfMemory(e: unknown): boolean {
  if (e instanceof OutOfMemoryError) return true;
  if (!(e instanceof Error)) return false;
  // A JS engine that cannot allocate an ArrayBuffer, a WebAssembly.Memory that cannot grow, a
  // GPUOutOfMemoryError surfaced by an error scope.
  return (
    e.name === 'GPUOutOfMemoryError' ||
    (e instanceof RangeError &&
      /allocation failed|out of memory|could not allocate memory/i.test(e.message)) ||
    /WebAssembly\.Memory.*grow|Cannot enlarge memory|out of memory/i.test(e.message)
  );
}

/** What the run was set to, for the advice. */
export interface MemorySettings {
  batchSize: number;
  seqLen: number;
  /** The offload memory budget in MiB, when the run offloads. */
  budgetMB?: number;
  /** The base model, named in the advice. */
  model?: string;
}

/**
 * `e` as OutOfMemoryError saying what to lower, when it is the runtime running out of memory;
 * anything else is returned as it is, for the caller to rethrow.
 */
export function outOfMemoryAdvice(e: unknown, during: string, s: MemorySettings): unknown {
  if (!isOutOfMemory(e)) return e;
  const lower = [
    `the batch size (now ${s.batchSize})`,
    `the sequence length (now ${s.seqLen})`,
    s.budgetMB !== undefined
      ? `the offload memory budget (now ${s.budgetMB} MiB)`
      : 'the memory with offload settings (a ZeRO stage and a budget)',
  ];
  const model = s.model ? `, or pick a model smaller than ${s.model}` : ', or pick a smaller model';
  return new OutOfMemoryError(
    `${during} ran out of memory (${(e as Error).message}): lower ${lower.join(', ')}${model}`,
  );
}

interface EngineTapeState {
  gradientDepth: number;
  activeTape: { saved?: tf.Tensor[] }[] | null;
}

/**
 * After a gradient computation threw (an allocation failed in the forward or backward), tfjs 4.22
 * leaves its tape behind: the tensors its kernels saved for the backward stay allocated until the
 * next gradient computation replaces the tape without freeing them. This frees them. Nothing
 * happens inside a gradient computation (a nested one owns the tape) or when no tape is left.
 */
export function releaseFailedTape(): void {
  const state = (tf.engine() as unknown as { state: EngineTapeState }).state;
  if (state.gradientDepth !== 0 || !state.activeTape) return;
  for (const node of state.activeTape) for (const t of node.saved ?? []) t.dispose();
  state.activeTape = null;
}
