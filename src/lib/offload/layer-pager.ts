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
 * Embeddings and the final norm stay resident (the embedding is needed at both ends of a step).
 */
import * as tf from '@tensorflow/tfjs';
import { SettingsError } from '../errors';
import type { DecoderModel } from '../model/decoder';
import { newVariable } from '../model/ops';
import { deleteSplit, getSplit, putSplit } from './page-store';
import type { PageStore } from './page-store';

export type EvictionPolicy = 'trace' | 'lru';

export interface PagerOptions {
  /** Bytes of frozen layer weights allowed resident at once (at least one layer's). */
  budgetBytes: number;
  policy: EvictionPolicy;
  /** Fetch ahead along the recorded trace (false: on demand only). */
  prefetch: boolean;
  /**
   * Store matrices as int8 with one scale per output channel and dequantize on page-in, as
   * bitsandbytes' LLM.int8() weights let PEFT's prepare_model_for_kbit_training train LoRA on an
   * 8-bit base: pages are 4x smaller; norm gains and biases stay float32 (as PEFT keeps them).
   */
  int8?: boolean;
}

export interface PagerStats {
  pageIns: number;
  pageOuts: number;
  /** Bytes read from the store (int8 pages are about a quarter of the float32 weights). */
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
  /** Resident (float32) bytes. */
  bytes: number;
  /** Stored bytes of each weight's page set (int8 + scales, or float32). */
  stored: number[];
  /** Resident or loading. */
  loading: Promise<void> | null;
  resident: boolean;
  inUse: boolean;
  lastUse: number;
}

/** The layer a weight belongs to: `h.3.` (GPT-2) or `layers.3.` (Llama family); null outside the layers. */
const layerOf = (name: string): number | null => {
  const m = /^(?:h|layers)\.(\d+)\./.exec(name);
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
    private readonly model: DecoderModel,
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
    model: DecoderModel,
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
        stored: [],
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
        throw new SettingsError(
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
      throw new SettingsError(
        `a memory budget of ${opts.budgetBytes} bytes cannot hold one layer (${largest} bytes): raise the budget`,
      );
    }
    for (let i = 0; i < pager.layers.length; i++) {
      const l = pager.layers[i]!;
      for (let k = 0; k < l.names.length; k++) {
        const name = l.names[k]!;
        const values = (await model.w(name).data()) as Float32Array;
        const shape = l.shapes[k]!;
        const quantized = opts.int8 && shape.length === 2;
        const data = quantized
          ? quantizeInt8(values, shape[0]!, shape[1]!)
          : new Uint8Array(values.slice().buffer);
        l.stored.push(data.byteLength);
        await putSplit(store, pager.key(name), data);
        // The float32 original too, read by restore() only: an int8 run must not leave the base
        // model quantized for whatever runs next.
        if (quantized) await putSplit(store, pager.masterKey(name), new Uint8Array(values.slice().buffer));
      }
    }
    // Every page is written before any layer leaves: a failed write (a full disk) leaves the
    // model whole.
    for (let i = 0; i < pager.layers.length; i++) pager.evict(i);
    return pager;
  }

  private key(name: string): string {
    return `${this.prefix}/${name}`;
  }

  /** Where an int8 page's float32 original is kept (for restore). */
  private masterKey(name: string): string {
    return `${this.prefix}/f32/${name}`;
  }

  private isQuantized(shape: number[]): boolean {
    return this.opts.int8 === true && shape.length === 2;
  }

  /** Where each layer's frozen weights are now. */
  residency(): ('resident' | 'loading' | 'stored')[] {
    return this.layers.map((l) => (l.resident ? 'resident' : l.loading ? 'loading' : 'stored'));
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

  /** Pages layer i in; `exact` reads int8 pages' float32 originals instead (restore). */
  private load(i: number, exact = false): Promise<void> {
    const l = this.layers[i]!;
    if (l.resident) return Promise.resolve();
    if (!l.loading) {
      this.makeRoom(l.bytes, i);
      l.loading = (async () => {
        const tensors: tf.Variable[] = [];
        for (let k = 0; k < l.names.length; k++) {
          const name = l.names[k]!;
          const shape = l.shapes[k]!;
          const fromInt8 = this.isQuantized(shape) && !exact;
          const bytes = await getSplit(
            this.store,
            this.isQuantized(shape) && exact ? this.masterKey(name) : this.key(name),
            new Uint8Array(this.isQuantized(shape) && exact ? 4 * sizeOf(shape) : l.stored[k]!),
          );
          this.stats.bytesIn += bytes.byteLength;
          const data = fromInt8
            ? dequantizeInt8(bytes, shape[0]!, shape[1]!)
            : new Float32Array(bytes.buffer);
          tensors.push(newVariable(tf.tensor(data, shape), false));
        }
        l.names.forEach((name, k) => this.model.weights.set(name, tensors[k]!));
        l.resident = true;
        l.loading = null;
        this.stats.pageIns++;
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

  /**
   * Runs `fn` with every layer resident, over the budget (held-out evaluation runs the whole model
   * at once), then frees them again; the pages stay in the store.
   */
  async whole<T>(fn: () => Promise<T>): Promise<T> {
    const budget = this.budgetBytes;
    this.budgetBytes = Infinity;
    try {
      for (let i = 0; i < this.layers.length; i++) await this.load(i);
      return await fn();
    } finally {
      this.budgetBytes = budget;
      for (let i = 0; i < this.layers.length; i++) if (this.layers[i]!.resident) this.evict(i);
    }
  }

  /**
   * Puts every layer back resident exactly as it was before paging (int8 runs from the float32
   * originals, not the dequantized pages) and forgets the store's pages.
   */
  async restore(): Promise<void> {
    this.budgetBytes = Infinity;
    for (let i = 0; i < this.layers.length; i++) {
      const l = this.layers[i]!;
      if (!l.resident) {
        await this.load(i, true);
        continue;
      }
      // Resident int8 layers hold dequantized values: their originals go back in place.
      for (let k = 0; k < l.names.length; k++) {
        const shape = l.shapes[k]!;
        if (!this.isQuantized(shape)) continue;
        const bytes = await getSplit(
          this.store,
          this.masterKey(l.names[k]!),
          new Uint8Array(4 * sizeOf(shape)),
        );
        tf.tidy(() => this.model.w(l.names[k]!).assign(tf.tensor(new Float32Array(bytes.buffer), shape)));
      }
    }
    for (const l of this.layers) {
      for (let k = 0; k < l.names.length; k++) {
        await deleteSplit(this.store, this.key(l.names[k]!), l.stored[k]!);
        if (this.isQuantized(l.shapes[k]!))
          await deleteSplit(this.store, this.masterKey(l.names[k]!), 4 * sizeOf(l.shapes[k]!));
      }
    }
  }
}

const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * A [rows, cols] matrix (our weights are [in, out], HF's Conv1D layout) as int8 with one absmax
 * scale per column (output channel): cols float32 scales, then rows x cols int8 values.
 */
export function quantizeInt8(w: Float32Array, rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(4 * cols + rows * cols);
  const scales = new Float32Array(out.buffer, 0, cols);
  const q = new Int8Array(out.buffer, 4 * cols, rows * cols);
  for (let j = 0; j < cols; j++) {
    let max = 0;
    for (let i = 0; i < rows; i++) max = Math.max(max, Math.abs(w[i * cols + j]!));
    scales[j] = max > 0 ? max / 127 : 1;
  }
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++)
      q[i * cols + j] = Math.max(-127, Math.min(127, Math.round(w[i * cols + j]! / scales[j]!)));
  }
  return out;
}

export function dequantizeInt8(bytes: Uint8Array, rows: number, cols: number): Float32Array {
  const buf = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const scales = new Float32Array(buf.buffer, buf.byteOffset, cols);
  const q = new Int8Array(buf.buffer, buf.byteOffset + 4 * cols, rows * cols);
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) w[i * cols + j] = q[i * cols + j]! * scales[j]!;
  return w;
}
