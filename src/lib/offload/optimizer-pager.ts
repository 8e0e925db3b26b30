/**
 * ZeRO stage 1's optimizer offload for one device: AdamW's two moments (twice the trainable
 * values) leave the backend between steps and come back for the update. The read for the next
 * update starts when the step starts, so it overlaps the forward and backward; the write after an
 * update is awaited by the next read only. What moves is exactly AdamW.state() (the checkpoint
 * format's moments), so nothing is lost in the round trip.
 */
import type { AdamW } from '../train/adamw';
import type { OptimizerPaging } from '../train/trainer';
import type { PageStore } from './page-store';
import { getSplitMany, putSplitMany } from './page-store';

export interface OptimizerPagerStats {
  pageIns: number;
  pageOuts: number;
  bytesIn: number;
  bytesOut: number;
  /** Time the update waited for the moments to arrive. */
  stallMs: number;
}

export class OptimizerPager implements OptimizerPaging {
  readonly stats: OptimizerPagerStats = { pageIns: 0, pageOuts: 0, bytesIn: 0, bytesOut: 0, stallMs: 0 };
  private stored: { t: number; sizes: Map<string, number> } | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly optimizer: AdamW,
    private readonly store: PageStore,
    private readonly shapes: Map<string, number[]>,
    private readonly prefix = 'optimizer',
  ) {}

  private key(which: 'm' | 'v', name: string): string {
    return `${this.prefix}/${which}/${name}`;
  }

  /** Starts bringing the moments back; resolves when the optimizer holds them again. */
  async pageIn(): Promise<void> {
    await this.writing;
    const st = this.stored;
    if (!st) return; // nothing paged out yet: the first update creates the moments
    // Every moment in one read (one IndexedDB transaction, not two per trainable tensor).
    const m = new Map<string, Float32Array>();
    const v = new Map<string, Float32Array>();
    const items: [string, Uint8Array][] = [];
    for (const [which, into] of [
      ['m', m],
      ['v', v],
    ] as const) {
      for (const [name, n] of st.sizes) {
        const data = new Float32Array(n);
        into.set(name, data);
        items.push([this.key(which, name), new Uint8Array(data.buffer)]);
      }
    }
    await getSplitMany(this.store, items);
    this.stats.bytesIn += items.reduce((a, [, b]) => a + b.byteLength, 0);
    this.optimizer.loadState({ t: st.t, m, v }, this.shapes);
    this.stored = null;
    this.stats.pageIns++;
  }

  /** Writes the moments to the store and frees them from the backend. */
  pageOut(): Promise<void> {
    this.writing = (async () => {
      const st = await this.optimizer.state();
      const sizes = new Map<string, number>();
      const items: [string, Uint8Array][] = [];
      for (const [which, src] of [
        ['m', st.m],
        ['v', st.v],
      ] as const) {
        for (const [name, data] of src) {
          sizes.set(name, data.length);
          items.push([this.key(which, name), new Uint8Array(data.buffer, data.byteOffset, data.byteLength)]);
        }
      }
      // Every moment in one write (one IndexedDB transaction: all of them or none).
      await putSplitMany(this.store, items);
      this.stats.bytesOut += items.reduce((a, [, b]) => a + b.byteLength, 0);
      this.optimizer.dispose();
      this.stored = { t: st.t, sizes };
      this.stats.pageOuts++;
    })();
    return this.writing;
  }

  /** Awaits the moments back and measures how long the update waited. */
  async ready(pending: Promise<void>): Promise<void> {
    const t0 = performance.now();
    await pending;
    this.stats.stallMs += performance.now() - t0;
  }
}
