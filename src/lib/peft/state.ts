/**
 * Helpers for PEFT state dicts: key prefixes and checked loading of one tensor.
 * PEFT saves keys under `base_model.model.` with the adapter name removed
 * (peft/utils/save_and_load.py, get_peft_model_state_dict).
 */
import * as tf from '@tensorflow/tfjs';
import { AdapterError, AdapterMismatchError } from '../errors';
import type { TaskHead } from '../model/heads';

export const PEFT_PREFIX = 'base_model.model.';

export type StateDict = Map<string, { shape: number[]; data: Float32Array }>;

/** Reads `key` from a state dict into `target` (optionally transposing a 2-D tensor), checking its shape. */
export function assignFromState(
  tensors: StateDict,
  key: string,
  target: tf.Variable,
  source: string,
  transpose = false,
): void {
  const t = tensors.get(key);
  if (!t) {
    throw new AdapterMismatchError(
      `${source}: tensor ${key} is missing; the config calls for it: was the file saved with the same config?`,
      'missing-keys',
    );
  }
  const want = transpose ? [...target.shape].reverse() : target.shape;
  if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
    throw new AdapterMismatchError(
      `${source}: tensor ${key} has shape [${t.shape}] but this model needs [${want}]; open it on the base model it was made for`,
      'shape',
    );
  }
  tf.tidy(() => {
    const v = tf.tensor(t.data, t.shape, 'float32');
    target.assign(transpose ? tf.transpose(v) : v);
  });
}

/**
 * A tensor's values in PEFT's layout (transposed for 2-D tensors we keep as [in, out]).
 * Async: WebGPU cannot read back synchronously.
 */
export async function readForState(
  v: tf.Tensor,
  transpose = false,
): Promise<{ shape: number[]; data: Float32Array }> {
  const t = transpose ? tf.transpose(v) : v;
  const data = (await t.data()) as Float32Array;
  if (t !== v) t.dispose();
  return { shape: [...t.shape], data };
}

/** Rejects keys the adapter does not know: they mean the file belongs to another model or method. */
export function checkNoExtraKeys(tensors: StateDict, known: Set<string>, source: string): void {
  const extra = [...tensors.keys()].filter((k) => !known.has(k));
  if (extra.length) {
    throw new AdapterMismatchError(
      `${source}: unexpected tensor(s) ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ` and ${extra.length - 3} more` : ''}; was this adapter made for another model or configuration?`,
      'unexpected-keys',
    );
  }
}

/**
 * A classification head's parameters under `prefix`: PEFT saves modules_to_save weights as
 * `base_model.model.score.weight`, with `modules_to_save.default.` stripped
 * (get_peft_model_state_dict); a full HF checkpoint has plain `score.weight`.
 */
export function headKeys(
  head: TaskHead | null | undefined,
  prefix: string,
): Map<string, { variable: tf.Variable; transpose: boolean }> {
  const out = new Map<string, { variable: tf.Variable; transpose: boolean }>();
  if (!head) return out;
  for (const [name, p] of head.params()) out.set(prefix + name, p);
  return out;
}

/** Adds the head's tensors, in HF's layout, to a state dict being saved. */
export async function headState(
  out: StateDict,
  head: TaskHead | null | undefined,
  prefix: string,
): Promise<void> {
  for (const [k, p] of headKeys(head, prefix)) out.set(k, await readForState(p.variable, p.transpose));
}

/** Loads the head's tensors from a state dict, checking shapes. */
export function loadHeadState(
  tensors: StateDict,
  head: TaskHead | null | undefined,
  prefix: string,
  source: string,
): void {
  for (const [k, p] of headKeys(head, prefix)) assignFromState(tensors, k, p.variable, source, p.transpose);
}

/** Checks a head may join an adapter (one head, of the adapter's task type); `what` names the adapter. */
export function checkHeadFits(
  existing: TaskHead | null,
  head: TaskHead,
  taskType: string,
  what: string,
): TaskHead {
  if (existing) throw new AdapterError(`this ${what} already has a classification head`);
  if (head.task !== taskType) {
    throw new AdapterError(
      `a ${head.task} head (${head.module}) does not fit a ${what} with task_type ${taskType}`,
    );
  }
  return head;
}

/** Parameters an adapter trains (its head included), counted from its live variables. */
export function countTrainable(adapter: { trainable(): Map<string, tf.Variable> }): number {
  let n = 0;
  for (const v of adapter.trainable().values()) n += v.size;
  return n;
}
