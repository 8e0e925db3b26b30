/**
 * The one switch between the model's stock ops and our WebGPU kernels. Model code (gpt2.ts, the
 * LoRA hook, the trainer) asks `fusedKernelsOn()` at each call site and otherwise runs exactly what
 * it ran before, so on wasm, cpu and webgl nothing changes: not the values, not what the memory
 * ledger sees kept. Benches and tests turn the kernels off on webgpu to measure stock tfjs.
 */
import * as tf from '@tensorflow/tfjs';

let enabled = true;

/** True when the model should route through our kernels: the webgpu backend is active and not disabled. */
export function fusedKernelsOn(): boolean {
  return enabled && tf.getBackend() === 'webgpu';
}

/** Turns the kernels off (stock tfjs ops on webgpu too) or back on; they are on by default. */
export function setFusedKernels(on: boolean): void {
  enabled = on;
}
