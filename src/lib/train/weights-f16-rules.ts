/**
 * When a run may hold the frozen base weights as f16 halves (TrainSettings.weightsF16; the model's
 * packWeightsF16, kernels/webgpu/halves.ts). One answer for the three places that ask: the engine
 * and the CLI refuse a run with the reason (SettingsError), and the Lab disables its checkbox with
 * the same sentence. No tfjs here: the UI imports it.
 */

export interface WeightsF16Run {
  /** The backend running (tfjs's name: webgpu, wasm, webgl, cpu), or null before one started. */
  backend: string | null;
  /** The method's kind (peft/types.ts MethodKind): `full` trains the base weights themselves. */
  methodKind: string;
  /** LoRA with DoRA: its magnitude reads the base weights' column norms every step. */
  useDora?: boolean;
  /** The run offloads (a ZeRO stage, or gradient checkpointing). */
  offload?: boolean;
  /** How this caller gets webgpu, for the message (default: "pick webgpu"). */
  toWebGpu?: string;
}

/** Why this run cannot hold its weights as f16, as a sentence that says what to do; null when it can. */
export function weightsF16Problem(run: WeightsF16Run): string | null {
  if (run.backend !== 'webgpu') {
    // Only our WebGPU kernels read halves; elsewhere they would be unpacked to f32 on every use.
    return `f16 weights are for the webgpu backend (its kernels read them in place), and ${run.backend ?? 'no backend'} is running: ${run.toWebGpu ?? 'pick webgpu'}, or leave f16 weights off`;
  }
  if (run.methodKind === 'full') {
    return 'full fine-tuning trains the base weights, and weights that train stay f32: pick an adapter method (LoRA, IA3, ...), or leave f16 weights off';
  }
  if (run.useDora) {
    return "DoRA reads the base weights' column norms every step, which f16 weights do not give: turn DoRA off, or leave f16 weights off";
  }
  if (run.offload) {
    // Offload pages the f32 variables of the layers (and gradient checkpointing was not tried on halves).
    return 'offload moves f32 base weights between memory and storage: set the ZeRO stage to 0 and gradient checkpointing off, or leave f16 weights off';
  }
  return null;
}
