/**
 * Row lookups on wasm and the gradient of a trainable one.
 *
 * table[ids] for a float32 table [rows, dim] and int32 ids of any shape -> [...ids.shape, dim] on
 * wasm: one heap-to-heap copy of `dim` floats per id. tfjs-backend-wasm's GatherV2 walks element
 * by element through generic strides: 2.5 ms for the embedding lookup of 1,024 tokens of 96 (a
 * hundredth of that here). Ids are checked against the table as the stock kernel does.
 */
import * as tf from '@tensorflow/tfjs';
import { InternalError } from '../../errors';
import { f32, heapOf, onWasm } from './heap';

export const GATHER_ROWS = 'PeftLabGatherRows';
/**
 * The table's gradient: dy's row i added into row ids[i] of zeros [rows, dim]. Stock tfjs on wasm
 * has no UnsortedSegmentSum, so ops.ts's embed took oneHot(ids)^T dy: a OneHot and a Transpose of
 * [N, rows] and a [rows, N] x [N, dim] product, about 100 of a 470 ms full fine-tuning step of
 * peftlab-s in tf.profile (vocabulary 2048, 1,024 tokens), for N x dim additions.
 */
export const SCATTER_ADD_ROWS = 'PeftLabScatterAddRows';

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

function registerScatter(): boolean {
  return (
    onWasm(SCATTER_ADD_ROWS, ({ inputs, backend, attrs }) => {
      const be = heapOf(backend);
      const di = inputs.dy as tf.TensorInfo;
      const ii = inputs.ids as tf.TensorInfo;
      const { rows } = attrs as { rows: number };
      const dim = di.shape[1]!;
      const out = be.makeOutput([rows, dim], 'float32');
      const o = f32(be, out);
      o.fill(0);
      const dy = f32(be, di);
      const ids = be.typedArrayFromHeap(ii) as Int32Array;
      for (let i = 0; i < ids.length; i++) {
        const r = ids[i]!;
        // Internal, as in the gather: the forward already checked these ids against the table.
        if (!(r >= 0 && r < rows))
          throw new InternalError(`id ${r} at ${i} is outside the table's 0..${rows - 1}`);
        const [src, dst] = [i * dim, r * dim];
        for (let j = 0; j < dim; j++) o[dst + j] = o[dst + j]! + dy[src + j]!;
      }
      return out;
    }) !== null
  );
}

/**
 * The gradient of table[ids] for a table of `rows` rows: dy [N, dim] summed into the rows ids [N]
 * point at, or null where the running backend is not wasm (or the kernel is off).
 */
export function scatterAddRows(dy: tf.Tensor2D, ids: tf.Tensor1D, rows: number): tf.Tensor2D | null {
  if (dy.dtype !== 'float32' || ids.dtype !== 'int32' || !registerScatter()) return null;
  return tf.engine().runKernel(SCATTER_ADD_ROWS, { dy, ids }, { rows }) as tf.Tensor2D;
}

/** table [rows, dim] gathered at ids (no gradient of its own: for frozen tables). */
export function gatherRows(table: tf.Tensor2D, ids: tf.Tensor): tf.Tensor {
  if (table.dtype !== 'float32' || ids.dtype !== 'int32' || !register()) return tf.gather(table, ids);
  return tf.engine().runKernel(GATHER_ROWS, { table, ids }, {}) as tf.Tensor;
}
