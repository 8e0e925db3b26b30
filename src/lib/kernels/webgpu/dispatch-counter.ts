/**
 * Counts what work costs on tfjs's webgpu backend: shader dispatches (one per program run), queue
 * submissions, and readbacks (GPU -> CPU copies: `data()`, `dataSync()`, `array()`). tfjs 4.22 keeps
 * no such counters, so this wraps the backend instance's own methods: every program goes through
 * `recordAndSubmit` (one dispatchWorkgroups each), every async read through `getBufferData`, every
 * sync read through `readSync`, and every submission through `queue.submit`.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendError } from '../../errors';

export interface DispatchCounts {
  dispatches: number;
  readbacks: number;
  submits: number;
  /** Dispatches by program class, e.g. {MatMulPackedProgram: 3, BinaryOpProgram: 5}. */
  byProgram: Record<string, number>;
}

interface CountableBackend {
  recordAndSubmit(program: object, ...rest: unknown[]): unknown;
  getBufferData(buffer: unknown): Promise<unknown>;
  readSync(dataId: object): unknown;
  tensorMap: { get(dataId: object): { values: unknown } | undefined };
  queue: { submit(buffers: unknown[]): unknown };
}

const patched = new WeakMap<object, DispatchCounts>();

function countsOf(backend: CountableBackend): DispatchCounts {
  let c = patched.get(backend);
  if (c) return c;
  const counts: DispatchCounts = { dispatches: 0, readbacks: 0, submits: 0, byProgram: {} };
  c = counts;
  const record = backend.recordAndSubmit.bind(backend);
  backend.recordAndSubmit = (program, ...rest) => {
    counts.dispatches++;
    const name = program.constructor.name;
    counts.byProgram[name] = (counts.byProgram[name] ?? 0) + 1;
    return record(program, ...rest);
  };
  const getBufferData = backend.getBufferData.bind(backend);
  backend.getBufferData = (buffer) => {
    counts.readbacks++;
    return getBufferData(buffer);
  };
  const readSync = backend.readSync.bind(backend);
  backend.readSync = (dataId) => {
    // A value already on the CPU (cached or never uploaded) costs no copy.
    if (backend.tensorMap.get(dataId)?.values == null) counts.readbacks++;
    return readSync(dataId);
  };
  const queue = backend.queue;
  const submit = queue.submit.bind(queue);
  queue.submit = (buffers) => {
    counts.submits++;
    return submit(buffers);
  };
  patched.set(backend, c);
  return c;
}

function webgpuBackend(): CountableBackend {
  if (tf.getBackend() !== 'webgpu')
    throw new BackendError(`dispatch counting needs the webgpu backend, but ${tf.getBackend()} is active`);
  return tf.backend() as unknown as CountableBackend;
}

/** The webgpu backend's counts since it started (or since the counter was first attached). */
export function dispatchCounts(): DispatchCounts {
  const c = countsOf(webgpuBackend());
  return { ...c, byProgram: { ...c.byProgram } };
}

/**
 * Runs fn and returns what it cost. Async results (a promise) are awaited, so a readback inside
 * counts. Dispatches recorded but not yet submitted still count: recording is what costs a launch.
 */
export async function countDispatches<T>(
  fn: () => T | Promise<T>,
): Promise<{ result: T; counts: DispatchCounts }> {
  const before = dispatchCounts();
  const result = await fn();
  const after = dispatchCounts();
  const byProgram: Record<string, number> = {};
  for (const [k, v] of Object.entries(after.byProgram)) {
    const d = v - (before.byProgram[k] ?? 0);
    if (d > 0) byProgram[k] = d;
  }
  return {
    result,
    counts: {
      dispatches: after.dispatches - before.dispatches,
      readbacks: after.readbacks - before.readbacks,
      submits: after.submits - before.submits,
      byProgram,
    },
  };
}
