/**
 * table[ids] for a float32 table [rows, dim] and int32 ids of any shape -> [...ids.shape, dim] on
 * wasm: one heap-to-heap copy of `dim` floats per id. tfjs-backend-wasm's GatherV2 walks element
 * by element through generic strides: 2.5 ms for the embedding lookup of 1,024 tokens of 96 (a
 * hundredth of that here). Ids are checked against the table as the stock kernel does.
 */
import * as tf from '@tensorflow/tfjs';
import { InternalError } from '../../errors';
import { f32, heapOf, onWasm } from './heap';

export const GATHER_ROWS = 'PeftLabGatherRows';

function register(): boolean {
  return (
    onWasm(GATHER_ROWS, ({ inputs, backend }) => {
      const be = heapOf(backend);
      const ti = inputs.table as tf.TensorInfo;
      const ii = inputs.ids as tf.TensorInfo;
      const [rows, dim] = ti.shape as [number, number];
      const ids = be.typedArrayFromHeap(ii) as Int32Array;
      for (let i = 0; i < ids.length; i++) {
        const r = ids[i]!;
        // Internal: token ids come from our tokenizer and data code, which keep them in the
        // vocabulary. Checked before the output is allocated, so a throw leaves nothing behind.
        if (!(r >= 0 && r < rows)) {
          throw new InternalError(`id ${r} at ${i} is outside the table's 0..${rows - 1}`);
        }
      }
      const out = be.makeOutput([...ii.shape, dim], 'float32');
      // Views taken after the allocation, which may grow (and so replace) the heap's buffer.
      const table = f32(be, ti);
      const at = be.typedArrayFromHeap(ii) as Int32Array;
      const o = f32(be, out);
      for (let i = 0; i < at.length; i++) {
        const r = at[i]!;
        o.set(table.subarray(r * dim, (r + 1) * dim), i * dim);
      }
      return out;
    }) !== null
  );
}

/** table [rows, dim] gathered at ids (no gradient of its own: for frozen tables). */
export function gatherRows(table: tf.Tensor2D, ids: tf.Tensor): tf.Tensor {
  if (table.dtype !== 'float32' || ids.dtype !== 'int32' || !register()) return tf.gather(table, ids);
  return tf.engine().runKernel(GATHER_ROWS, { table, ids }, {}) as tf.Tensor;
}
