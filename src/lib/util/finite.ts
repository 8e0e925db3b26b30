/**
 * The one check that stands between a diverged run and the files it would overwrite: adapter and
 * checkpoint saves pass every tensor they are about to write through here.
 */
import { NonFiniteWeightsError } from '../errors';

/** Index of the first NaN or infinity in `data`, or -1. */
export function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return i;
  return -1;
}

/**
 * Throws NonFiniteWeightsError naming the first tensor with a NaN or infinity; `what` says what was
 * being saved ("the adapter", "the checkpoint at step 12").
 */
export function assertFiniteTensors(
  tensors: Iterable<[string, { data: Float32Array | Int32Array | BigInt64Array }]>,
  what: string,
): void {
  for (const [name, t] of tensors) {
    // Integer tensors cannot hold a NaN.
    if (!(t.data instanceof Float32Array)) continue;
    const i = firstNonFinite(t.data);
    if (i >= 0) {
      throw new NonFiniteWeightsError(
        `${what} was not saved: ${name} holds ${t.data[i]} at element ${i}, so training diverged; ` +
          'what was saved before is kept. Resume from an earlier checkpoint or train again with a lower learning rate',
      );
    }
  }
}
