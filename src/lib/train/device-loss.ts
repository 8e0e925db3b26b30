/**
 * Training that survives a lost WebGPU device. A GPU device can go at any time (a driver reset, the
 * browser reclaiming it, a laptop switching GPUs); everything tfjs kept on it goes with it, and
 * tfjs's webgpu backend drops the CPU copy of a tensor once it is uploaded, so nothing on that
 * backend can be read back afterwards. So while a run is on WebGPU:
 *
 * - the device's `lost` promise is watched (tfjs's WebGPUBackend exposes its GPUDevice);
 * - the run's state (trainable weights, AdamW moments, step, batch RNG: a checkpoint, train/checkpoint.ts)
 *   is copied to the CPU after completed steps, every `snapshotEveryMs`;
 * - when the device is lost, or a step fails and the device turns out to be lost, the dead backend
 *   is removed, a new one started (a new device if the browser gives one, else wasm), the model,
 *   adapter and trainer built again on it by the caller's `build`, and the snapshot loaded: the run
 *   goes on from the snapshot's step with exactly the batches it would have drawn, so its losses
 *   equal an uninterrupted run's (up to the two backends' rounding).
 *
 * On any other backend nothing is watched and nothing is copied.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendError } from '../errors';
import { guardAllocations } from '../backend/out-of-memory';
import { loadCheckpoint, saveCheckpoint } from './checkpoint';
import type { CheckpointFiles } from './checkpoint';
import type { StepStats, Trainer } from './trainer';

/** What the browser said when the device went. */
export interface DeviceLoss {
  /** GPUDeviceLostReason: "destroyed" or "unknown". */
  reason: string;
  message: string;
}

/** Said once a run has moved to a new backend. */
export interface DeviceRecovery {
  loss: DeviceLoss;
  /** The tfjs backend the run is on now. */
  backend: string;
  /** Why that one: a new device, or the fallback and why no new device could be had. */
  why: string;
  /** The step the run went back to (its last snapshot; of several trainers, the earliest). */
  fromStep: number;
  /** Steps done since that snapshot that are done again (of all its trainers together). */
  redone: number;
}

/** The GPUDevice under tfjs's current backend, or null when the backend is not webgpu. */
export function currentGpuDevice(): GPUDevice | null {
  if (tf.getBackend() !== 'webgpu') return null;
  return (tf.backend() as unknown as { device?: GPUDevice }).device ?? null;
}

/** Watches one device's `lost` promise; `close()` before the code itself destroys the device. */
export class DeviceWatch {
  lost: DeviceLoss | null = null;
  private closed = false;

  constructor(readonly device: GPUDevice) {
    device.lost.then(
      (info) => {
        if (!this.closed) this.lost = { reason: String(info.reason), message: info.message };
      },
      () => undefined,
    );
  }

  /**
   * Whether the device is lost, after giving the browser a turn to settle `lost` (a step that fails
   * because the device went may reject before the promise resolves).
   */
  async isLost(): Promise<boolean> {
    if (this.lost) return true;
    await new Promise((r) => setTimeout(r, 0));
    return this.lost !== null;
  }

  close(): void {
    this.closed = true;
  }
}

interface Registration {
  factory: () => tf.KernelBackend | Promise<tf.KernelBackend>;
  priority: number;
}

/**
 * Replaces the dead webgpu backend: tfjs's registration of it is kept and started again (its
 * factory asks for a new adapter and device); if that fails, `fallback` starts. Returns the backend
 * running now and why.
 */
export async function replaceLostBackend(fallback: string): Promise<{ backend: string; why: string }> {
  const engine = tf.engine() as unknown as { registryFactory: Record<string, Registration | undefined> };
  const reg = engine.registryFactory.webgpu;
  const quiet = console.warn;
  console.warn = () => {}; // tfjs warns about disposing a backend that has live tensors: they are dead
  try {
    tf.removeBackend('webgpu'); // also forgets the factory, so it is registered again below
  } catch {
    // a backend on a dead device may fail to free its buffers; it is gone either way
  } finally {
    console.warn = quiet;
  }
  let failed = 'tfjs has no webgpu registration';
  if (reg) {
    tf.registerBackend('webgpu', reg.factory, reg.priority);
    try {
      if ((await tf.setBackend('webgpu')) && tf.getBackend() === 'webgpu' && currentGpuDevice())
        return { backend: 'webgpu', why: 'the browser gave a new GPU device' };
      failed = 'the webgpu backend did not start again';
    } catch (e) {
      failed = `no new GPU device (${(e as Error).message})`;
    }
  }
  try {
    if ((await tf.setBackend(fallback)) && tf.getBackend() === fallback) {
      // As every backend start does (backend/backend.ts): a wasm heap that cannot grow is named.
      guardAllocations();
      return { backend: fallback, why: `${failed}, so the run moved to ${fallback}` };
    }
  } catch {
    // reported below
  }
  throw new BackendError(
    `the GPU device was lost and neither a new device nor ${fallback} could start (${failed}): reload the page and resume from the last checkpoint`,
  );
}

/** What a run is made of on one backend: the caller builds it and frees it. */
export interface RunParts {
  /** The run's trainer (a run of one trainer, the Lab's). */
  trainer?: Trainer;
  /** Or its several trainers, snapshotted and restored together (a race's lanes). */
  trainers?: Trainer[];
  /** What the run keeps beside its trainers' state (a race's lane histories), kept with each snapshot. */
  save?(): unknown;
  /** Puts back what `save` gave, after a rebuild and before the trainers' state is loaded. */
  restore?(saved: unknown): void;
  /** Frees the model, adapter and trainer (on a lost device their memory is already gone). */
  dispose(): void;
}

export interface RecoverableOptions {
  /** Builds the model, adapter and trainer on the backend now current. */
  build: () => RunParts | Promise<RunParts>;
  /** How often the run's state is copied to the CPU while on WebGPU (0: after every step). */
  snapshotEveryMs?: number;
  /** The backend to fall back to when no new GPU device can be had. */
  fallback?: string;
  /** Told once the run is on its new backend, before the next step (awaited). */
  onRecovered?: (r: DeviceRecovery) => void | Promise<void>;
  /** Tries at most this many recoveries in one run (a device that keeps going is not a GPU to train on). */
  maxRecoveries?: number;
}

interface Snapshot {
  trainers: CheckpointFiles[];
  extra: unknown;
}

function trainersOf(parts: RunParts): Trainer[] {
  return parts.trainers ?? (parts.trainer ? [parts.trainer] : []);
}

/**
 * A training run that carries on past a lost GPU device (see the top of this file). `step()` is
 * `trainer.trainStep()`; after a loss it rebuilds, restores and returns the next step made on the
 * new backend, so the caller's loop does not change. `trainer` may change after any step. A run of
 * several trainers (a race) wraps each one's step in `attempt` and takes snapshots with
 * `snapshotIfDue` where all of them are at a step boundary.
 */
export class RecoverableRun {
  private watch: DeviceWatch | null = null;
  private snapshot: Snapshot | null = null;
  private snapshotAt = 0;
  recoveries: DeviceRecovery[] = [];

  private constructor(
    private parts: RunParts,
    private readonly opts: RecoverableOptions,
  ) {}

  /** Builds the run on the current backend and, on WebGPU, starts watching and takes the first snapshot. */
  static async start(opts: RecoverableOptions): Promise<RecoverableRun> {
    const run = new RecoverableRun(await opts.build(), opts);
    await run.arm();
    return run;
  }

  get trainer(): Trainer {
    const t = this.parts.trainer;
    if (!t) throw new BackendError('this run has several trainers: use attempt() for each');
    return t;
  }

  /** Takes over a trainer that was changed from outside (a checkpoint loaded into it): snapshot now. */
  async arm(): Promise<void> {
    this.watch?.close();
    const device = currentGpuDevice();
    this.watch = device ? new DeviceWatch(device) : null;
    this.snapshot = null;
    if (this.watch) await this.takeSnapshot();
  }

  private async takeSnapshot(): Promise<void> {
    const trainers: CheckpointFiles[] = [];
    for (const t of trainersOf(this.parts)) trainers.push(await saveCheckpoint(t));
    this.snapshot = { trainers, extra: structuredClone(this.parts.save?.()) };
    this.snapshotAt = performance.now();
  }

  /** On WebGPU, copies the run's state to the CPU when `snapshotEveryMs` has passed since the last copy. */
  async snapshotIfDue(): Promise<void> {
    if (!this.watch) return;
    const every = this.opts.snapshotEveryMs ?? 15_000;
    if (every <= 0 || performance.now() - this.snapshotAt >= every) await this.takeSnapshot();
  }

  async step(): Promise<StepStats> {
    const st = await this.attempt(() => this.trainer.trainStep());
    if (!st.skipped) await this.snapshotIfDue();
    return st;
  }

  /**
   * Runs `work` (a step: GPU work whose result counts only if the device lived through it); when
   * the device is lost during it, recovers (every trainer back to the last snapshot, on the new
   * backend) and runs `work` again, which must read the trainers afresh.
   */
  async attempt<T>(work: () => Promise<T>): Promise<T> {
    for (;;) {
      let out: T;
      try {
        out = await work();
      } catch (e) {
        if (!this.watch || !(await this.watch.isLost())) throw e;
        await this.recover();
        continue;
      }
      // A step on a device that went while it ran may read back anything: it does not count.
      if (this.watch && (await this.watch.isLost())) {
        await this.recover();
        continue;
      }
      return out;
    }
  }

  private async recover(): Promise<void> {
    const loss = this.watch!.lost!;
    const snapshot = this.snapshot;
    if (!snapshot)
      throw new BackendError(`the GPU device was lost (${loss.message}) before the run had started`);
    if (this.recoveries.length >= (this.opts.maxRecoveries ?? 3)) {
      throw new BackendError(
        `the GPU device was lost ${this.recoveries.length + 1} times in one run (last: ${loss.message}): choose wasm and resume from the last checkpoint`,
      );
    }
    const lostAt = trainersOf(this.parts).map((t) => t.step);
    this.watch!.close();
    try {
      this.parts.dispose();
    } catch {
      // freeing memory on a dead device may fail; it is gone either way
    }
    const { backend, why } = await replaceLostBackend(this.opts.fallback ?? 'wasm');
    this.parts = await this.opts.build();
    this.parts.restore?.(structuredClone(snapshot.extra));
    const trainers = trainersOf(this.parts);
    if (trainers.length !== snapshot.trainers.length)
      throw new BackendError(
        `the run was rebuilt with ${trainers.length} trainers after the GPU device was lost, not ${snapshot.trainers.length}: start it again`,
      );
    const from = trainers.map((t, i) =>
      Number(loadCheckpoint(t, snapshot.trainers[i]!, 'the state kept before the GPU device was lost').step),
    );
    const device = currentGpuDevice();
    this.watch = device ? new DeviceWatch(device) : null;
    this.snapshot = this.watch ? snapshot : null;
    const fromStep = Math.min(...from);
    const redone = from.reduce((n, f, i) => n + Math.max(0, (lostAt[i] ?? f) - f), 0);
    const r: DeviceRecovery = { loss, backend, why, fromStep, redone };
    this.recoveries.push(r);
    await this.opts.onRecovered?.(r);
  }

  close(): void {
    this.watch?.close();
  }
}

/** One line for a person: what happened and where the run is now. */
export function describeRecovery(r: DeviceRecovery): string {
  const again = r.redone > 0 ? `, doing ${r.redone} step${r.redone === 1 ? '' : 's'} again` : '';
  return `the GPU device was lost (${r.loss.reason}: ${r.loss.message || 'no message'}): ${r.why}; training goes on from step ${r.fromStep}${again}`;
}
