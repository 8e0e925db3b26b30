/**
 * ZeRO-3's parameter offload for the frozen base, one transformer layer per page set: under a
 * memory budget, a layer's frozen weights are resident only around its forward and its backward
 * (recomputed, src/lib/offload/layerwise.ts) and otherwise live in a PageStore.
 *
 * - Each layer's weights are one record in the store (`<prefix>/h.<i>`: the weights one after
 *   another, each 4-byte aligned), so a page-in is one sequential read (one IndexedDB transaction)
 *   instead of one per weight; int8 runs keep a second record of the float32 originals for restore.
 * - The first step records the order in which layers are needed (forward 0..L-1, backward
 *   L-1..0), as DeepSpeed's ZeRO-3 records its parameter trace; later steps prefetch along it: when
 *   a layer is acquired, the next layers of the trace start loading while this one computes.
 *   If the order stops matching the trace, the pager goes on demand and records a new one.
 * - Read-ahead: where the budget has no room for the next layer on the backend (a quarter of the
 *   model holds one float32 layer), the next layers' records are still read along the trace (past
 *   the end of the step into the next one, which repeats it) into host memory, nearest first, one
 *   read at a time, while the current layer computes: DeepSpeed's NVMe read buffers. Those bytes
 *   count against the same budget (resident + read ahead <= budget), so at a quarter it is int8
 *   pages, four times smaller, that leave room to read ahead.
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
  /**
   * An adapter's own trainable variables that sit in the model's weight table (LN tuning swaps its
   * trained norm copies in there): they stay resident with the adapter instead of being paged.
   */
  adapterOwned?: ReadonlySet<tf.Variable>;
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
  /** Page-ins whose record had been read ahead (or was being read) when the layer was needed. */
  readAheadHits: number;
  /** Most bytes held at once: resident or loading layers plus records read ahead (<= the budget). */
  peakHeldBytes: number;
}

interface Layer {
  names: string[];
  shapes: number[][];
  /** Resident (float32) bytes; also the size of the float32 record of an int8 layer. */
  bytes: number;
  /** Where each weight starts in the layer's record (int8 + scales, or float32). */
  offsets: number[];
  /** Bytes of the layer's record. */
  recordBytes: number;
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
    readAheadHits: 0,
    peakHeldBytes: 0,
  };
  private readonly layers: Layer[] = [];
  /** Records read ahead (or being read), by layer, with their size. */
  private readonly staged = new Map<number, { bytes: number; data: Promise<Uint8Array> }>();
  private stagedBytes = 0;
  /** The last read ahead queued: the next one starts after it, so the nearest layer arrives first. */
  private reads: Promise<unknown> = Promise.resolve();
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
   * base weights (full fine-tuning) cannot be paged here: they are refused. A write that fails (a
   * full disk) deletes the records already written and leaves the model whole.
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
        offsets: [],
        recordBytes: 0,
        loading: null,
        resident: true,
        inUse: false,
        lastUse: 0,
      });
    }
    for (const [name, v] of model.weights) {
      const i = layerOf(name);
      if (i === null || opts.adapterOwned?.has(v)) continue;
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
    for (const l of pager.layers) {
      const { offsets, total } = pager.layout(l.shapes, opts.int8 === true);
      l.offsets = offsets;
      l.recordBytes = total;
    }
    const written: { key: string; bytes: number }[] = [];
    try {
      for (let i = 0; i < pager.layers.length; i++) {
        const l = pager.layers[i]!;
        const record = new Uint8Array(l.recordBytes);
        // The float32 original of an int8 layer, read by restore() only: an int8 run must not leave
        // the base model quantized for whatever runs next.
        const master = opts.int8 ? new Uint8Array(l.bytes) : null;
        let masterAt = 0;
        for (let k = 0; k < l.names.length; k++) {
          const values = (await model.w(l.names[k]!).data()) as Float32Array;
          const shape = l.shapes[k]!;
          const asBytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
          record.set(
            pager.isQuantized(shape) ? quantizeInt8(values, shape[0]!, shape[1]!) : asBytes,
            l.offsets[k]!,
          );
          master?.set(asBytes, masterAt);
          masterAt += values.byteLength;
        }
        written.push({ key: pager.key(i), bytes: record.byteLength });
        await putSplit(store, pager.key(i), record);
        if (master) {
          written.push({ key: pager.masterKey(i), bytes: master.byteLength });
          await putSplit(store, pager.masterKey(i), master);
        }
      }
    } catch (e) {
      // Nothing half-written stays behind: the records this call wrote go (best effort: the store
      // that refused a write may refuse more), and the error (a StorageError naming a full disk)
      // goes on as it was.
      for (const w of written) await deleteSplit(store, w.key, w.bytes).catch(() => undefined);
      throw e;
    }
    // Every page is written before any layer leaves: a failed write leaves the model whole.
    for (let i = 0; i < pager.layers.length; i++) pager.evict(i);
    return pager;
  }

  /** The layer's record under the current options: each weight's offset (4-byte aligned) and the total. */
  private layout(shapes: number[][], int8: boolean): { offsets: number[]; total: number } {
    const offsets: number[] = [];
    let at = 0;
    for (const shape of shapes) {
      offsets.push(at);
      const n = sizeOf(shape);
      // int8: a float32 scale per column, then the values; rounded up so the next weight's floats align.
      at += int8 && shape.length === 2 ? align4(4 * shape[1]! + n) : 4 * n;
    }
    return { offsets, total: at };
  }

  private key(layer: number): string {
    return `${this.prefix}/h.${layer}`;
  }

  /** Where an int8 layer's float32 originals are kept (for restore), in the float32 layout. */
  private masterKey(layer: number): string {
    return `${this.prefix}/f32/h.${layer}`;
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

  /** Resident or loading layers plus the records read ahead: what the budget bounds. */
  get heldBytes(): number {
    return this.residentBytes + this.stagedBytes;
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
    if (this.opts.prefetch && this.followsTrace) {
      this.prefetchAhead();
      this.readAhead();
    }
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

  /** Reads layer i's record (`exact`: the float32 originals of an int8 layer) from the store. */
  private async read(i: number, exact: boolean): Promise<Uint8Array> {
    const l = this.layers[i]!;
    const bytes = await getSplit(
      this.store,
      exact ? this.masterKey(i) : this.key(i),
      new Uint8Array(exact ? l.bytes : l.recordBytes),
    );
    this.stats.bytesIn += bytes.byteLength;
    return bytes;
  }

  /** Starts reading layer i's record ahead, after the reads ahead already queued. */
  private stage(i: number): void {
    const bytes = this.layers[i]!.recordBytes;
    const data = this.reads.then(() => this.read(i, false));
    // A failed read surfaces when the layer is loaded; one dropped unread must not go unhandled.
    data.catch(() => undefined);
    this.reads = data.catch(() => undefined);
    this.staged.set(i, { bytes, data });
    this.stagedBytes += bytes;
    this.notePeak();
  }

  /** Forgets layer i's read-ahead record (an in-flight read finishes and is dropped). */
  private unstage(i: number): Promise<Uint8Array> | null {
    const s = this.staged.get(i);
    if (!s) return null;
    this.staged.delete(i);
    this.stagedBytes -= s.bytes;
    return s.data;
  }

  private notePeak(): void {
    this.stats.peakResidentBytes = Math.max(this.stats.peakResidentBytes, this.residentBytes);
    this.stats.peakHeldBytes = Math.max(this.stats.peakHeldBytes, this.heldBytes);
  }

  /** Pages layer i in; `exact` reads int8 layers' float32 originals instead (restore). */
  private load(i: number, exact = false): Promise<void> {
    const l = this.layers[i]!;
    if (l.resident) return Promise.resolve();
    if (!l.loading) {
      const fromOriginals = exact && this.opts.int8 === true;
      const ahead = this.unstage(i);
      if (ahead && !fromOriginals) this.stats.readAheadHits++;
      this.makeRoom(l.bytes, i);
      const reading = ahead && !fromOriginals ? ahead : this.read(i, fromOriginals);
      l.loading = (async () => {
        const bytes = await reading;
        // The float32 originals are laid out as a float32 record, not as the int8 one.
        const offsets = fromOriginals ? this.layout(l.shapes, false).offsets : l.offsets;
        const tensors = l.names.map((_, k) => {
          const shape = l.shapes[k]!;
          const at = bytes.byteOffset + offsets[k]!;
          if (this.isQuantized(shape) && !fromOriginals) {
            return newVariable(dequantizeOnBackend(bytes.buffer, at, shape[0]!, shape[1]!), false);
          }
          return newVariable(tf.tensor(new Float32Array(bytes.buffer, at, sizeOf(shape)), shape), false);
        });
        l.names.forEach((name, k) => this.model.weights.set(name, tensors[k]!));
        l.resident = true;
        this.stats.pageIns++;
        this.notePeak();
      })().finally(() => {
        l.loading = null;
      });
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

  /**
   * Frees resident, unused layers and records read ahead (by the policy) until `bytes` more fit in
   * the budget. With the trace, whichever is needed furthest ahead goes first (Belady); with LRU,
   * the least recently used layer, then the read-ahead record needed last.
   */
  private makeRoom(bytes: number, incoming: number): void {
    while (this.heldBytes + bytes > this.budgetBytes) {
      const layers = this.layers
        .map((l, j) => ({ l, j }))
        .filter(({ l, j }) => l.resident && !l.inUse && j !== incoming);
      const staged = [...this.staged.keys()];
      const byTrace = this.opts.policy === 'trace' && this.followsTrace;
      if (byTrace) {
        const victims = [
          ...layers.map(({ j }) => ({ j, staged: false })),
          ...staged.map((j) => ({ j, staged: true })),
        ];
        if (victims.length === 0) return; // in-use layers only: go over budget rather than deadlock
        const v = victims.reduce((a, b) => (this.nextUse(b.j) > this.nextUse(a.j) ? b : a));
        if (v.staged) this.unstage(v.j);
        else this.evict(v.j);
      } else if (layers.length > 0) {
        this.evict(layers.reduce((a, b) => (b.l.lastUse < a.l.lastUse ? b : a)).j);
      } else if (staged.length > 0) {
        this.unstage(staged.reduce((a, b) => (this.nextUse(b) > this.nextUse(a) ? b : a)));
      } else return; // in-use layers only: go over budget rather than deadlock
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
      // Records read ahead are all needed later than this layer (they follow the trace): they make room.
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
   * Reads the records of the layers next along the trace (on past its end into the next step's
   * first accesses, which repeat it) that are neither resident nor already read ahead, nearest
   * first, while they fit in what the budget leaves; stops at the first that does not fit, so a
   * later layer never takes the room a sooner one needs.
   */
  private readAhead(): void {
    const n = this.trace.length;
    const seen = new Set<number>();
    for (let s = 0; s < n; s++) {
      const j = this.trace[(this.cursor + s) % n]!;
      if (seen.has(j)) continue;
      seen.add(j);
      const l = this.layers[j]!;
      if (l.resident || l.loading || this.staged.has(j)) continue;
      if (this.heldBytes + l.recordBytes > this.budgetBytes) return;
      this.stage(j);
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
    for (const i of [...this.staged.keys()]) this.unstage(i);
    // Reads and loads under way finish first: a prefetch's weights are the ones put right below, and
    // no read ahead is left running against pages about to be deleted.
    await this.reads;
    await Promise.all(this.layers.map((l) => l.loading?.catch(() => undefined)));
    for (let i = 0; i < this.layers.length; i++) {
      const l = this.layers[i]!;
      if (!l.resident) {
        await this.load(i, true);
        continue;
      }
      if (!this.opts.int8) continue;
      // Resident int8 layers hold dequantized values: their originals go back in place.
      const bytes = await this.read(i, true);
      const offsets = this.layout(l.shapes, false).offsets;
      for (let k = 0; k < l.names.length; k++) {
        const shape = l.shapes[k]!;
        if (!this.isQuantized(shape)) continue;
        const at = bytes.byteOffset + offsets[k]!;
        tf.tidy(() =>
          this.model
            .w(l.names[k]!)
            .assign(tf.tensor(new Float32Array(bytes.buffer, at, sizeOf(shape)), shape)),
        );
      }
    }
    for (let i = 0; i < this.layers.length; i++) {
      const l = this.layers[i]!;
      await deleteSplit(this.store, this.key(i), l.recordBytes);
      if (this.opts.int8) await deleteSplit(this.store, this.masterKey(i), l.bytes);
    }
  }
}

const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
const align4 = (n: number): number => Math.ceil(n / 4) * 4;

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

/**
 * dequantizeInt8 as a tensor, the scaling done by the backend: the int8 values widen to float32 in
 * one native typed-array conversion and the backend multiplies by the column scales (on wasm a
 * compiled loop, where JavaScript's loop over every value cost a page-in more than its read). The
 * same values: an int8 times a float32 scale is exact in double and in float32 alike before the one
 * rounding to float32.
 */
function dequantizeOnBackend(buffer: ArrayBufferLike, at: number, rows: number, cols: number): tf.Tensor {
  const scales = new Float32Array(buffer, at, cols);
  const q = new Float32Array(new Int8Array(buffer, at + 4 * cols, rows * cols));
  return tf.tidy(() => tf.mul(tf.tensor2d(q, [rows, cols]), tf.tensor1d(scales)));
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
