/**
 * Test helper: a LoRA adapter's two files for a GPT-2 of the given width, with seeded random A and B
 * (both nonzero, so the update is too), as PEFT would save them.
 */
import { lora } from '../peft/lora';
import type { LoraConfig } from '../peft/lora/config';
import { Rng } from '../util/rng';
import { writeSafetensors } from './safetensors';
import type { TensorToWrite } from './safetensors';

export interface LoraFileSpec {
  base: string;
  nLayer: number;
  nEmbd: number;
  r: number;
  seed: number;
  /** GPT-2 module names targeted (default c_attn). */
  targets?: ('c_attn' | 'c_proj')[];
  config?: Partial<LoraConfig>;
}

export function loraFiles(spec: LoraFileSpec): { config: string; weights: Uint8Array } {
  const rng = new Rng(spec.seed);
  const targets = spec.targets ?? ['c_attn'];
  const tensors = new Map<string, TensorToWrite>();
  const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 0.2);
  for (let l = 0; l < spec.nLayer; l++)
    for (const t of targets) {
      const out = t === 'c_attn' ? 3 * spec.nEmbd : spec.nEmbd;
      const key = `base_model.model.transformer.h.${l}.attn.${t}`;
      tensors.set(`${key}.lora_A.weight`, {
        dtype: 'F32',
        shape: [spec.r, spec.nEmbd],
        data: rand(spec.r * spec.nEmbd),
      });
      tensors.set(`${key}.lora_B.weight`, { dtype: 'F32', shape: [out, spec.r], data: rand(out * spec.r) });
    }
  const config: LoraConfig = {
    ...lora.defaults('CAUSAL_LM'),
    r: spec.r,
    loraAlpha: 2 * spec.r,
    targetModules: targets,
    baseModelNameOrPath: spec.base,
    inferenceMode: true,
    ...spec.config,
  };
  return {
    config: JSON.stringify(lora.toPeftJson(config)),
    weights: writeSafetensors(tensors, { format: 'pt' }),
  };
}
