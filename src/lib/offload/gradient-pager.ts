/**
 * ZeRO stage 2's gradient offload for one device: with gradient accumulation, the running sum of
 * the micro-batches' gradients lives across micro-batches; here it leaves the backend after each
 * micro-batch but the last and comes back to take the next one's gradients, so a micro-batch's
 * forward and backward run without the sum resident (for a full fine-tune, one more copy of the
 * model). float32 bytes in and out: the sum is exactly what it would have been resident.
 */
import * as tf from '@tensorflow/tfjs';
import type { GradientPaging } from '../train/trainer';
import type { PageStore } from './page-store';
import { deleteSplit, getSplitMany, putSplitMany } from './page-store';
import { InternalError } from '../errors';

export interface GradientPagerStats {
  pageIns: number;
  pageOuts: number;
  bytesIn: number;
  bytesOut: number;
}

export class GradientPager implements GradientPaging {
  readonly stats: GradientPagerStats = { pageIns: 0, pageOuts: 0, bytesIn: 0, bytesOut: 0 };
  private shapes: Map<string, number[]> | null = null;

  constructor(
    private readonly store: PageStore,
    private readonly prefix = 'gradients',
  ) {}

  private key(name: string): string {
    return `${this.prefix}/${name}`;
  }

  /** Writes the sum to the store and frees it from the backend. */
  async pageOut(sum: Map<string, tf.Tensor>): Promise<void> {
    const shapes = new Map<string, number[]>();
    try {
      const items: [string, Uint8Array][] = [];
      for (const [name, g] of sum) {
        const data = (await g.data()) as Float32Array;
        items.push([this.key(name), new Uint8Array(data.buffer, data.byteOffset, data.byteLength)]);
        shapes.set(name, g.shape);
      }
      // The whole sum in one write (one IndexedDB transaction, not one per tensor).
      await putSplitMany(this.store, items);
      this.stats.bytesOut += items.reduce((a, [, b]) => a + b.byteLength, 0);
    } finally {
      tf.dispose([...sum.values()]);
    }
    this.shapes = shapes;
    this.stats.pageOuts++;
  }

  /** Reads the sum back as tensors and deletes its pages. */
  async pageIn(): Promise<Map<string, tf.Tensor>> {
    const shapes = this.shapes;
    if (!shapes) throw new InternalError('no gradients were paged out');
    const datas = new Map<string, Float32Array>();
    for (const [name, shape] of shapes) datas.set(name, new Float32Array(shape.reduce((a, b) => a * b, 1)));
    await getSplitMany(
      this.store,
      [...datas].map(([name, data]) => [this.key(name), new Uint8Array(data.buffer)] as const),
    );
    const out = new Map<string, tf.Tensor>();
    for (const [name, data] of datas) {
      await deleteSplit(this.store, this.key(name), data.byteLength);
      this.stats.bytesIn += data.byteLength;
      out.set(name, tf.tensor(data, shapes.get(name)!));
    }
    this.shapes = null;
    this.stats.pageIns++;
    return out;
  }
}
