/** Sharded HF checkpoints (model.safetensors.index.json). tfjs-free: the CLI reads folders before tfjs starts. */
import { WeightsMismatchError } from '../errors';
import { showValue } from '../util/show';

/**
 * The shard file names of a model.safetensors.index.json, in order of first appearance; every
 * tensor's file must be a plain name in the folder.
 */
export function shardNames(index: unknown, source = 'model.safetensors.index.json'): string[] {
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new WeightsMismatchError(`${source}: no "weight_map" object (tensor name -> shard file)`);
  }
  // A Set: an index of a million distinct shard names would make an array's includes() quadratic.
  const names = new Set<string>();
  for (const [tensor, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string' || !/^[\w.-]+\.safetensors$/.test(file)) {
      throw new WeightsMismatchError(
        `${source}: tensor ${showValue(tensor)} maps to ${showValue(file)}, not a .safetensors file name in the folder`,
      );
    }
    names.add(file);
  }
  return [...names];
}
