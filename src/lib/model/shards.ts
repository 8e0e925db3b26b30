/** Sharded HF checkpoints (model.safetensors.index.json). tfjs-free: the CLI reads folders before tfjs starts. */
import { FileLoadError, WeightsMismatchError } from '../errors';
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

/** The index file of a sharded checkpoint. */
export const SHARD_INDEX = 'model.safetensors.index.json';

/**
 * The weights of a folder held as file name -> bytes (a drop, a record kept in IndexedDB):
 * model.safetensors, or else the shards its model.safetensors.index.json names, in the index's order.
 * What is missing is named, with what to add.
 */
export function folderWeights(
  files: Readonly<Record<string, ArrayBuffer | undefined>>,
  source: string,
): { weights: ArrayBuffer[]; weightFileNames: string[] } {
  const single = files['model.safetensors'];
  if (single) return { weights: [single], weightFileNames: ['model.safetensors'] };
  const index = files[SHARD_INDEX];
  if (!index) {
    throw new FileLoadError(
      `${source} has neither model.safetensors nor ${SHARD_INDEX}: add the weights (one file, or the shards with their index)`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(index));
  } catch (e) {
    throw new FileLoadError(`${source}/${SHARD_INDEX} is not valid JSON: ${(e as Error).message}`);
  }
  const weightFileNames = shardNames(parsed, `${source}/${SHARD_INDEX}`);
  const missing = weightFileNames.filter((n) => !files[n]);
  if (missing.length > 0) {
    throw new FileLoadError(
      `${source} lacks ${missing.join(', ')}, which ${SHARD_INDEX} names: add every shard with the index`,
    );
  }
  return { weights: weightFileNames.map((n) => files[n]!), weightFileNames };
}
