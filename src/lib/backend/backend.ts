/**
 * Starts the tfjs backend in the browser (in a worker). An explicit choice runs as asked. `auto`
 * times one short training step on every backend this browser has (src/lib/backend/probe.ts) and
 * runs the fastest, saying why with the figures; the result is kept in IndexedDB per device and
 * reused until the app, the browser or the WebGPU adapter changes (src/lib/backend/choose.ts), so a
 * second engine, or the next visit, starts at once.
 *
 * Wasm may run two ways: with threads (needs cross-origin isolation: COOP/COEP, see vite.config.ts)
 * and with one. Both are candidates where threads are possible. tfjs registers one `wasm` backend
 * whose module (threaded or not) is fixed when it starts, so the one-thread variant is a second
 * registration, `wasm-1t`, built with the thread flag off and sharing the wasm kernels.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { BackendError } from '../errors';
import { guardAllocations } from './out-of-memory';
import { loadBackendMeasurement, saveBackendMeasurement } from '../storage/backend-measurement';
import { CANDIDATES, chooseByMeasurement, describeMeasurement } from './choose';
import type { BackendChoice, BackendName, CandidateId, Fingerprint, Timing } from './choose';
import { PROBE_LABEL, countProbeOps, timeProbeStep } from './probe';
import type { ToBeat } from './probe';

export { BACKENDS, CANDIDATES } from './choose';
export type { BackendChoice, BackendName, CandidateId } from './choose';

export interface BackendInfo {
  name: BackendName;
  /** Human description of the device, e.g. "google swiftshader (software fallback)". */
  device: string;
  /** Why this backend runs: the measured figures and the winner, or "chosen by you". */
  reason: string;
  /** Wasm's thread count (1 without cross-origin isolation); absent for other backends. */
  threads?: number;
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

/**
 * WebGL's renderer when it is a software rasteriser (SwiftShader, llvmpipe), else null. Such a
 * "GPU" runs on the CPU slower than wasm, and its first step spends seconds compiling shaders
 * (measured here: 4-7 s for webgl, 7-16 s for SwiftShader WebGPU), which would hold up every first start.
 */
function softwareWebGl(): string | null {
  try {
    const gl = new OffscreenCanvas(1, 1).getContext('webgl2');
    if (!gl) return null;
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    return /swiftshader|llvmpipe|software/i.test(renderer) ? renderer : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Wasm with and without threads

const WASM_ONE_THREAD = 'wasm-1t';
const THREAD_FLAG = 'WASM_HAS_MULTITHREAD_SUPPORT';
let threadsPossible: Promise<boolean> | null = null;
let wasmThreads = 0;

/** Whether tfjs's threaded wasm can run here (cross-origin isolated, SharedArrayBuffer). */
function wasmThreadsPossible(): Promise<boolean> {
  threadsPossible ??= (async () => {
    // tfjs's default is half the cores (one on a 2-core machine, the same as no threads): use all.
    setThreadsCount(Math.max(1, globalThis.navigator?.hardwareConcurrency ?? 1));
    return (
      (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true &&
      Boolean(await tf.env().getAsync(THREAD_FLAG))
    );
  })();
  return threadsPossible;
}

type Registration = { factory: () => tf.KernelBackend | Promise<tf.KernelBackend>; priority: number };

/** Registers `wasm-1t`: tfjs's own wasm factory run with the thread flag off, with wasm's kernels. */
async function registerOneThreadWasm(): Promise<void> {
  const engine = tf.engine() as unknown as { registryFactory: Record<string, Registration | undefined> };
  if (engine.registryFactory[WASM_ONE_THREAD]) return;
  const wasm = engine.registryFactory.wasm;
  if (!wasm) throw new BackendError('the wasm backend is not registered: reload the page');
  const threads = await tf.env().getAsync(THREAD_FLAG);
  tf.registerBackend(
    WASM_ONE_THREAD,
    () => {
      // tfjs's wasm init reads the flag synchronously when called, so it is restored at once.
      tf.env().set(THREAD_FLAG, false);
      try {
        return wasm.factory();
      } finally {
        tf.env().set(THREAD_FLAG, threads);
      }
    },
    0,
  );
  for (const k of tf.getKernelsForBackend('wasm')) tf.registerKernel({ ...k, backendName: WASM_ONE_THREAD });
}

/** The tfjs backend a candidate runs on. */
async function tfBackendOf(id: CandidateId): Promise<string> {
  if (id === 'wasm-threads') return 'wasm';
  if (id === 'wasm') {
    if (!(await wasmThreadsPossible())) return 'wasm';
    await registerOneThreadWasm();
    return WASM_ONE_THREAD;
  }
  return id;
}

function backendNameOf(id: CandidateId): BackendName {
  return id === 'wasm-threads' ? 'wasm' : id;
}

async function start(id: CandidateId): Promise<boolean> {
  try {
    const name = await tfBackendOf(id);
    const ok = (await tf.setBackend(name)) && tf.getBackend() === name;
    if (ok && id === 'wasm-threads') wasmThreads ||= getThreadsCount();
    if (ok) guardAllocations();
    return ok;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Descriptions

type Gpu = Awaited<ReturnType<typeof probeWebGpu>>;

function label(id: CandidateId, gpu: Gpu): string {
  if (id === 'webgpu') return `webgpu (${gpu?.name ?? 'no adapter'}${gpu?.fallback ? ', software' : ''})`;
  // "threaded build": measured here on 2 cores, tfjs reported 1 thread in use even after setThreadsCount(2).
  if (id === 'wasm-threads')
    return `wasm threaded build, ${wasmThreads} thread${wasmThreads === 1 ? '' : 's'}`;
  if (id === 'wasm') return 'wasm, 1 thread';
  return id;
}

function device(id: CandidateId, gpu: Gpu): string {
  if (id === 'webgpu') return gpu?.description ?? 'WebGPU';
  if (id === 'wasm-threads')
    return `CPU, WebAssembly SIMD, ${wasmThreads} thread${wasmThreads === 1 ? '' : 's'}`;
  if (id === 'wasm') return 'CPU, WebAssembly SIMD, 1 thread';
  if (id === 'webgl') return 'WebGL 2';
  return 'CPU, plain JavaScript';
}

function info(id: CandidateId, gpu: Gpu, reason: string): BackendInfo {
  const threads = id === 'wasm-threads' ? wasmThreads : id === 'wasm' ? 1 : undefined;
  return {
    name: backendNameOf(id),
    device: device(id, gpu),
    reason,
    ...(threads !== undefined ? { threads } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// The choice

/** What the app is: a new build measures again. Vite defines it; elsewhere (tests) it is "dev". */
function appBuild(): string {
  return typeof __PEFT_LAB_BUILD__ === 'string' ? __PEFT_LAB_BUILD__ : 'dev';
}

/**
 * Runs `f` holding a lock shared by every worker of this origin, so two engines starting together
 * (the Lab's and the Compare screen's) measure once: the second finds the first one's result kept.
 */
async function exclusively<T>(f: () => Promise<T>): Promise<T> {
  const locks = (globalThis.navigator as { locks?: LockManager } | undefined)?.locks;
  return locks ? locks.request('peft-lab-backend-choice', f) : f();
}

export async function chooseBackend(choice: BackendChoice, wasmBaseUrl: string): Promise<BackendInfo> {
  setWasmPaths(wasmBaseUrl);
  const gpu = await probeWebGpu();
  const threads = await wasmThreadsPossible();
  if (choice !== 'auto') {
    if (choice === 'webgpu' && !gpu)
      throw new BackendError('WebGPU is not available in this browser: choose wasm or auto');
    if (choice === 'wasm-threads' && !threads)
      throw new BackendError(
        'wasm threads need a cross-origin isolated page (COOP/COEP headers), which this one is not: choose wasm or auto',
      );
    if (!(await start(choice)))
      throw new BackendError(`the ${choice} backend could not start here: choose auto`);
    return info(choice, gpu, 'chosen by you');
  }
  const candidates = CANDIDATES.filter(
    (c) => (c !== 'webgpu' || gpu !== null) && (c !== 'wasm-threads' || threads),
  );
  const fingerprint: Fingerprint = {
    app: appBuild(),
    userAgent: globalThis.navigator?.userAgent ?? 'unknown',
    adapter: gpu?.description ?? 'none',
    crossOriginIsolated: threads,
  };
  // The best figure so far, which a slower backend's per-op cost alone may already rule out.
  let toBeat: (ToBeat & { wasm: boolean }) | undefined;
  const { measurement, reused } = await exclusively(() =>
    chooseByMeasurement({
      fingerprint,
      candidates,
      probe: PROBE_LABEL,
      start,
      async measure(id): Promise<Timing> {
        // Plain JavaScript runs the same math on the same CPU as wasm, without SIMD: never faster.
        if (id === 'cpu' && toBeat?.wasm)
          return { id, label: 'cpu', msPerStep: null, note: 'not timed (slower than wasm on the same CPU)' };
        // Software GPUs are named, not timed: their shader compiles alone take seconds (see softwareWebGl).
        if (id === 'webgpu' && gpu?.fallback && toBeat?.wasm)
          return {
            id,
            label: label(id, gpu),
            msPerStep: null,
            note: 'not timed (a software adapter, slower than wasm)',
          };
        const glSoftware = id === 'webgl' && toBeat?.wasm ? softwareWebGl() : null;
        if (glSoftware)
          return {
            id,
            label: `webgl (${glSoftware})`,
            msPerStep: null,
            note: 'not timed (a software renderer, slower than wasm)',
          };
        if (!(await start(id))) return { id, label: label(id, gpu), msPerStep: null, note: 'did not start' };
        const t = { id, label: label(id, gpu), ...(await timeProbeStep(undefined, toBeat)) };
        if (t.msPerStep !== null && (!toBeat || t.msPerStep < toBeat.msPerStep)) {
          toBeat = {
            msPerStep: t.msPerStep,
            ops: toBeat?.ops ?? (await countProbeOps()),
            wasm: id !== 'webgpu' && id !== 'webgl',
          };
        }
        delete t.ops;
        return t;
      },
      load: () => loadBackendMeasurement(),
      save: (m) => saveBackendMeasurement(m),
    }),
  );
  return info(measurement.winner, gpu, describeMeasurement(measurement, reused));
}

/**
 * What runs now, for a backend tfjs switched to without a choice here: a run that lost its GPU
 * device moves on by itself (train/device-loss.ts), and the Lab shows this with `reason`.
 */
export async function currentBackendInfo(reason: string): Promise<BackendInfo> {
  const name = tf.getBackend();
  const gpu = name === 'webgpu' ? await probeWebGpu() : null;
  const id: CandidateId =
    name === WASM_ONE_THREAD
      ? 'wasm'
      : name === 'wasm'
        ? wasmThreads > 0 || (await wasmThreadsPossible())
          ? 'wasm-threads'
          : 'wasm'
        : (name as CandidateId);
  if (id === 'wasm-threads') wasmThreads ||= getThreadsCount();
  return info(id, gpu, reason);
}
