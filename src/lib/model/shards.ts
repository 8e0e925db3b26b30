/** Sharded HF checkpoints (model.safetensors.index.json). tfjs-free: the CLI reads folders before tfjs starts. */
import { WeightsMismatchError } from '../errors';

/**
 * The shard file names of a model.safetensors.index.json, in order of first appearance; every
 * tensor's file must be a plain name in the folder.
 */
export function shardNames(index: unknown, source = 'model.safetensors.index.json'): string[] {
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new WeightsMismatchError(`${source}: no "weight_map" object (tensor name -> shard file)`);
  }
  const names: string[] = [];
  for (const [tensor, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string' || !/^[\w.-]+\.safetensors$/.test(file)) {
      throw new WeightsMismatchError(
        `${source}: tensor ${tensor} maps to ${JSON.stringify(file)}, not a .safetensors file name in the folder`,
      );
    }
    if (!names.includes(file)) names.push(file);
  }
  return names;
}
