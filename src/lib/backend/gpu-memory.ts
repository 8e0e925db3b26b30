/**
 * Running out of GPU memory on WebGPU, made a named error. A GPUDevice that cannot allocate a
 * buffer does not throw: `createBuffer` returns an invalid buffer and the device reports a
 * GPUOutOfMemoryError to an 'out-of-memory' error scope or, with none pushed, as an
 * 'uncapturederror' event. tfjs-backend-webgpu 4.22 pushes no scopes (its BufferManager calls
 * `device.createBuffer` and uses whatever comes back), so every command that touches the invalid
 * buffer is refused and a step reads back stale or zero numbers: the fault would surface as a wrong
 * loss and an optimizer update made from garbage, or never. So:
 *
 * - `watchGpuMemory()` listens for the device's uncaptured out-of-memory errors;
 * - the trainer checks the watch after its loss and gradient norm come back and before the
 *   optimizer touches a weight (train/trainer.ts), so a step that could not get its memory throws
 *   OutOfMemoryError with the run's weights and optimizer state as they were;
 * - the buffers tfjs keeps for reuse are freed then: invalid ones are among them, and handing one
 *   to a later tensor would make the fault silent again.
 *
 * `limitGpuMemory` injects the fault (tests, or reproducing a smaller GPU's report on a bigger one).
 */
import * as tf from '@tensorflow/tfjs';
import { BackendError, OutOfMemoryError } from '../errors';

const MIB = 1024 * 1024;

/** The parts of tfjs-backend-webgpu 4.22's BufferManager read here. */
interface BufferManager {
  freeBuffers: Map<string, GPUBuffer[]>;
  numFreeBuffers: number;
  numBytesAllocated: number;
}

interface WebGpuBackendParts {
  device?: GPUDevice;
  bufferManager?: BufferManager;
}

function webgpuParts(): { device: GPUDevice; bufferManager: BufferManager } | null {
  if (tf.getBackend() !== 'webgpu') return null;
  const b = tf.backend() as unknown as WebGpuBackendParts;
  return b.device && b.bufferManager ? { device: b.device, bufferManager: b.bufferManager } : null;
}

/** Out-of-memory errors one device reported that no step has answered for yet. */
export class GpuMemoryWatch {
  private errors: string[] = [];
  /** Buffers may have gone back to tfjs's pool since the last failure: free them before the next step. */
  private dirty = false;

  constructor(readonly device: GPUDevice) {
    device.addEventListener('uncapturederror', (ev) => {
      const error = (ev as GPUUncapturedErrorEvent).error;
      if (error?.constructor?.name === 'GPUOutOfMemoryError' || isGpuOom(error)) {
        this.errors.push(error.message);
        // Handled here: the browser need not log it as well.
        ev.preventDefault?.();
      }
    });
  }

  /** Called as a step starts: frees what a failed step left in tfjs's pool of reusable buffers. */
  begin(): void {
    if (!this.dirty) return;
    freeReusableBuffers();
    this.dirty = false;
  }

  /**
   * Throws OutOfMemoryError if the device ran out of memory since the last check, after giving it
   * a turn to deliver its error events (they arrive asynchronously). Then `cleanup` frees the
   * step's tensors and tfjs's reusable buffers are destroyed (see the top of this file). `during`
   * names what was running, for the message.
   */
  async check(during: string, cleanup?: () => void): Promise<void> {
    await new Promise((r) => setTimeout(r, 0));
    if (this.errors.length === 0) return;
    const first = this.errors[0]!;
    const n = this.errors.length;
    this.errors = [];
    cleanup?.();
    freeReusableBuffers();
    // tfjs frees some buffers only after its next submit: those are freed as the next step starts.
    this.dirty = true;
    throw new OutOfMemoryError(
      `the GPU could not allocate memory for ${during} (${first}${n > 1 ? `; ${n - 1} more like it` : ''})`,
    );
  }
}

function isGpuOom(e: unknown): e is GPUError {
  return typeof GPUOutOfMemoryError !== 'undefined' && e instanceof GPUOutOfMemoryError;
}

const watches = new WeakMap<GPUDevice, GpuMemoryWatch>();

/** The watch on the current backend's GPU device (one per device), or null when not on webgpu. */
export function watchGpuMemory(): GpuMemoryWatch | null {
  const parts = webgpuParts();
  if (!parts) return null;
  let w = watches.get(parts.device);
  if (!w) {
    w = new GpuMemoryWatch(parts.device);
    watches.set(parts.device, w);
  }
  return w;
}

/** Destroys the buffers tfjs keeps for reuse on the current webgpu backend (none in use is touched). */
export function freeReusableBuffers(): void {
  const bm = webgpuParts()?.bufferManager;
  if (!bm) return;
  for (const list of bm.freeBuffers.values()) {
    for (const b of list) {
      bm.numBytesAllocated -= b.size;
      b.destroy();
    }
    list.length = 0;
  }
  bm.numFreeBuffers = 0;
}

interface Limited {
  real: GPUDevice['createBuffer'];
  bytes: number;
}
const limited = new WeakMap<GPUDevice, Limited>();

/**
 * A ceiling on the bytes of GPU buffers tfjs holds on the current webgpu device (in use and kept
 * for reuse): a buffer that would pass it fails as on a real device that is out of memory. The
 * buffer comes back unusable (destroyed: every command using it is refused, as an invalid buffer's
 * are) and a GPUOutOfMemoryError is dispatched as the device's 'uncapturederror' event. Buffers
 * mapped at creation (uploads from the CPU) are left alone. null lifts the ceiling.
 */
export function limitGpuMemory(bytes: number | null): void {
  const parts = webgpuParts();
  if (!parts) {
    if (bytes === null) return;
    throw new BackendError('limitGpuMemory needs the webgpu backend: set it first (tf.setBackend)');
  }
  const { device, bufferManager } = parts;
  const had = limited.get(device);
  if (bytes === null) {
    if (had) device.createBuffer = had.real;
    limited.delete(device);
    return;
  }
  if (had) {
    had.bytes = bytes;
    return;
  }
  const real = device.createBuffer.bind(device);
  const state: Limited = { real: device.createBuffer, bytes };
  limited.set(device, state);
  device.createBuffer = (desc: GPUBufferDescriptor): GPUBuffer => {
    const buffer = real(desc);
    if (!desc.mappedAtCreation && bufferManager.numBytesAllocated + desc.size > state.bytes) {
      buffer.destroy();
      const message = `a buffer of ${(desc.size / MIB).toFixed(1)} MiB would pass the ${(state.bytes / MIB).toFixed(1)} MiB on the GPU device`;
      // Devices report errors asynchronously, after the call that made them has returned.
      setTimeout(() => {
        device.dispatchEvent(
          new GPUUncapturedErrorEvent('uncapturederror', { error: new GPUOutOfMemoryError(message) }),
        );
      }, 0);
    }
    return buffer;
  };
}
