/**
 * add_weighted_adapter on PEFT's files (src/lib/peft/lora/combine.ts does the arithmetic): the CLI's
 * `combine` and the Lab's worker both read the adapters' adapter_config.json and
 * adapter_model.safetensors here, refuse adapters made on different base models, and write the
 * result as PEFT's two files again.
 */
import { AdapterCombineError } from '../errors';
import { lora } from '../peft/lora';
import type { CombinationType, CombineOptions } from '../peft/lora/combine';
import { addWeightedAdapter } from '../peft/lora/combine';
import type { LoraConfig } from '../peft/lora/config';
import { readAdapterConfig, readAdapterWeights } from './peft-format';
import { writeSafetensors } from './safetensors';

export interface AdapterFileInput {
  /** How messages name it (a folder, or a saved adapter's name). */
  name: string;
  config: string;
  weights: Uint8Array;
}

export interface CombinedFiles {
  config: string;
  weights: Uint8Array;
  /** The result's rank (cat: the sum of the ranks). */
  r: number;
}

export function combineAdapterFiles(
  inputs: AdapterFileInput[],
  weights: number[],
  type: CombinationType,
  options: CombineOptions = {},
): CombinedFiles {
  const read = inputs.map((f) => ({
    name: f.name,
    config: readAdapterConfig(f.config, f.name),
    state: readAdapterWeights(f.weights, f.name),
  }));
  // The updates are added on one base's weights: adapters of two bases have no shared meaning even
  // when the shapes agree (PEFT combines adapters already loaded on one model).
  const bases = read.map((a) => a.config.baseModelNameOrPath ?? null);
  const other = bases.findIndex((b) => b !== null && bases[0] !== null && b !== bases[0]);
  if (other > 0) {
    throw new AdapterCombineError(
      `${read[other]!.name} was made on ${bases[other]} and ${read[0]!.name} on ${bases[0]}: combine adapters made on the same base model`,
      'base',
    );
  }
  const combined = addWeightedAdapter(
    read.map((a) => ({ config: a.config as LoraConfig, state: a.state })),
    weights,
    type,
    options,
  );
  const tensors = new Map([...combined.state].map(([k, t]) => [k, { dtype: 'F32' as const, ...t }]));
  return {
    config: JSON.stringify(
      lora.toPeftJson({ ...combined.config, baseModelNameOrPath: bases[0] ?? null, inferenceMode: true }),
      null,
      2,
    ),
    weights: writeSafetensors(tensors, { format: 'pt' }),
    r: combined.config.r,
  };
}
