/**
 * ZeRO-3's parameter offload for the frozen base, one transformer layer per page set: under a
 * memory budget, a layer's frozen weights are resident only around its forward and its backward
 * (recomputed, src/lib/offload/layerwise.ts) and otherwise live in a PageStore.
 *
 * - The first step records the order in which layers are needed (forward 0..L-1, backward
 *   L-1..0), as DeepSpeed's ZeRO-3 records its parameter trace; later steps prefetch along it: when
 *   a layer is acquired, the next layers of the trace start loading while this one computes.
 *   If the order stops matching the trace, the pager goes on demand and records a new one.
 * - Eviction from the trace frees the resident layer needed furthest ahead (Belady's choice, which
 *   the trace makes possible); LRU, the usual baseline, frees the least recently used one.
 * - Frozen pages never change, so evicting one only frees memory: nothing is written back.
 *
 * Embeddings and ln_f stay resident (the embedding is needed at both ends of a step).
 */
import * as tf from '@tensorflow/tfjs';
import { PeftLabError } from '../errors';
import type { Gpt2Model } from '../model/gpt2';
import { newVariable } from '../model/ops';
import { MAX_PAGE_BYTES } from './page-store';
import type { PageStore } from './page-store';

export type EvictionPolicy = 'trace' | 'lru';

export interface PagerOptions {
  /** Bytes of frozen layer weights allowed resident at once (at least one layer's). */
  budgetBytes: number;
  policy: EvictionPolicy;
  /** Fetch ahead along the recorded trace (false: on demand only). */
  prefetch: boolean;
}

export interface PagerStats {
  pageIns: number;
  pageOuts: number;
  bytesIn: number;
  /** Time acquire() waited for a layer that was not resident yet. */
  stallMs: number;
  /** Acquires whose layer was resident or already loading because of a prefetch. */
  prefetchHits: number;
  /** Acquires that had to start the load themselves. */
  misses: number;
  /** Most bytes of layer weights resident at once. */
  peakResidentBytes: number;
}

interface Layer {
  names: string[];
  shapes: number[][];
  bytes: number;
  /** Resident or loading. */
  loading: Promise<void> | null;
  resident: boolean;
  inUse: boolean;
  lastUse: number;
}

const layerOf = (name: string): number | null => {
  const m = /^h\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
};

export class LayerPager {
  readonly stats: PagerStats = {
    pageIns: 0,
    pageOuts: 0,
    bytesIn: 0,
    stallMs: 0,
    prefetchHits: 0,
    misses: 0,
    peakResidentBytes: 0,
  };
  private readonly layers: Layer[] = [];
  private trace: number[] = [];
  private recording: number[] = [];
  private cursor = 0;
  private followsTrace = false;
  private clock = 0;

  private budgetBytes: number;

  private constructor(
    private readonly model: Gpt2Model,
    private readonly store: PageStore,
    private readonly opts: PagerOptions,
    private readonly prefix: string,
  ) {
    this.budgetBytes = opts.budgetBytes;
  }

  /**
   * Writes every layer's frozen weights to the store and frees them from the backend. Trainable
   * base weights (full fine-tuning) cannot be paged here: they are refused.
   */
  static async create(
    model: Gpt2Model,
    store: PageStore,
    opts: PagerOptions,
    prefix = 'base',
  ): Promise<LayerPager> {
    const pager = new LayerPager(model, store, opts, prefix);
    for (let i = 0; i < model.config.nLayer; i++) {
      pager.layers.push({
        names: [],
        shapes: [],
        bytes: 0,
        loading: null,
        resident: true,
        inUse: false,
        lastUse: 0,
      });
    }
    for (const [name, v] of model.weights) {
      const i = layerOf(name);
      if (i === null) continue;
      if (v.trainable) {
        throw new PeftLabError(
          `${name} trains, and this pager moves frozen weights only: page with an adapter method, not full fine-tuning`,
        );
      }
      const l = pager.layers[i]!;
      l.names.push(name);
      l.shapes.push(v.shape);
      l.bytes += v.size * 4;
    }
    const largest = Math.max(...pager.layers.map((l) => l.bytes));
    if (opts.budgetBytes < largest) {
      throw new PeftLabError(
        `a memory budget of ${opts.budgetBytes} bytes cannot hold one layer (${largest} bytes): raise the budget`,
      );
    }
    for (let i = 0; i < pager.layers.length; i++) {
      const l = pager.layers[i]!;
      for (const name of l.names) {
        const data = new Uint8Array(((await model.w(name).data()) as Float32Array).slice().buffer);
        for (let off = 0, part = 0; off < data.byteLength || part === 0; off += MAX_PAGE_BYTES, part++) {
          await store.put(pager.key(name, part), data.subarray(off, off + MAX_PAGE_BYTES));
        }
      }
      pager.evict(i);
    }
    return pager;
  }

  private key(name: string, part: number): string {
    return `${this.prefix}/${name}#${part}`;
  }

  get residentBytes(): number {
    return this.layers.reduce((a, l) => a + (l.resident || l.loading ? l.bytes : 0), 0);
  }

  /** Makes layer i resident (waiting for it if needed) and marks it in use until release(i). */
  async acquire(i: number): Promise<void> {
    const l = this.layers[i]!;
    this.note(i);
    if (l.resident || l.loading) this.stats.prefetchHits++;
    else this.stats.misses++;
    if (!l.resident) {
      const t0 = performance.now();
      await this.load(i);
      this.stats.stallMs += performance.now() - t0;
    }
    l.inUse = true;
    l.lastUse = ++this.clock;
    if (this.opts.prefetch && this.followsTrace) this.prefetchAhead();
  }

  release(i: number): void {
    this.layers[i]!.inUse = false;
  }

  /** Call at the end of each step: the access order just seen becomes the trace if it differed. */
  endStep(): void {
    if (!this.followsTrace || this.recording.length !== this.trace.length) this.trace = this.recording;
    this.recording = [];
    this.cursor = 0;
    this.followsTrace = this.trace.length > 0;
  }

  /** Follows the trace; an access that does not match it drops to on-demand until the next step. */
  private note(i: number): void {
    this.recording.push(i);
    if (this.followsTrace) {
      if (this.trace[this.cursor] === i) this.cursor++;
      else this.followsTrace = false;
    }
  }

  private load(i: number): Promise<void> {
    const l = this.layers[i]!;
    if (l.resident) return Promise.resolve();
    if (!l.loading) {
      this.makeRoom(l.bytes, i);
      l.loading = (async () => {
        const tensors: tf.Variable[] = [];
        for (let k = 0; k < l.names.length; k++) {
          const name = l.names[k]!;
          const shape = l.shapes[k]!;
          const n = shape.reduce((a, b) => a * b, 1);
          const data = new Float32Array(n);
          const bytes = new Uint8Array(data.buffer);
          for (let off = 0, part = 0; off < bytes.byteLength || part === 0; off += MAX_PAGE_BYTES, part++) {
            bytes.set(await this.store.get(this.key(name, part)), off);
          }
          tensors.push(newVariable(tf.tensor(data, shape), false));
        }
        l.names.forEach((name, k) => this.model.weights.set(name, tensors[k]!));
        l.resident = true;
        l.loading = null;
        this.stats.pageIns++;
        this.stats.bytesIn += l.bytes;
        this.stats.peakResidentBytes = Math.max(this.stats.peakResidentBytes, this.residentBytes);
      })();
    }
    return l.loading;
  }

  private evict(i: number): void {
    const l = this.layers[i]!;
    for (const name of l.names) {
      this.model.weights.get(name)?.dispose();
      this.model.weights.delete(name);
    }
    l.resident = false;
    this.stats.pageOuts++;
  }

  /** Frees resident, unused layers (by the policy) until `bytes` more fit in the budget. */
  private makeRoom(bytes: number, incoming: number): void {
    while (this.residentBytes + bytes > this.budgetBytes) {
      const candidates = this.layers
        .map((l, j) => ({ l, j }))
        .filter(({ l, j }) => l.resident && !l.inUse && j !== incoming);
      if (candidates.length === 0) return; // in-use layers only: go over budget rather than deadlock
      const victim =
        this.opts.policy === 'lru' || !this.followsTrace
          ? candidates.reduce((a, b) => (b.l.lastUse < a.l.lastUse ? b : a))
          : candidates.reduce((a, b) => (this.nextUse(b.j) > this.nextUse(a.j) ? b : a));
      this.evict(victim.j);
    }
  }

  /** Accesses until layer j is needed again along the trace (Infinity: not in the rest of this step). */
  private nextUse(j: number): number {
    for (let k = this.cursor; k < this.trace.length; k++) if (this.trace[k] === j) return k - this.cursor;
    return Infinity;
  }

  /** Starts loading the trace's next layers while the budget has room without evicting a sooner one. */
  private prefetchAhead(): void {
    for (let k = this.cursor; k < this.trace.length; k++) {
      const j = this.trace[k]!;
      const l = this.layers[j]!;
      if (l.resident || l.loading) continue;
      const free = this.budgetBytes - this.residentBytes;
      if (free < l.bytes) {
        // Only evict for a prefetch a layer needed later than this one.
        const later = this.layers
          .map((x, idx) => ({ x, idx }))
          .filter(({ x, idx }) => x.resident && !x.inUse && this.nextUse(idx) > k - this.cursor);
        if (later.reduce((a, { x }) => a + x.bytes, 0) + free < l.bytes) return;
      }
      void this.load(j);
      return; // one layer ahead: enough to overlap the next compute, and keeps the budget for reuse
    }
  }

  /** Puts every layer back resident (as it was before paging) and forgets the store's pages. */
  async restore(): Promise<void> {
    this.budgetBytes = Infinity;
    for (let i = 0; i < this.layers.length; i++) await this.load(i);
    for (const l of this.layers) {
      l.names.forEach((name, k) => {
        const bytes = 4 * l.shapes[k]!.reduce((a, b) => a * b, 1);
        for (let part = 0; part * MAX_PAGE_BYTES < Math.max(1, bytes); part++)
          void this.store.delete(this.key(name, part));
      });
    }
  }
}
