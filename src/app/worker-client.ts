/**
 * A typed request/reply client for an engine in a worker: each request gets an id, its reply
 * (result or serialized named error) is matched back, and events stream to listeners. `Req` maps a
 * request kind to [payload, reply], `Ev` an event kind to its payload. The Lab's and the Compare
 * screen's workers both speak it.
 *
 * A worker can die without a word: the browser ends one that runs out of memory, and a worker that
 * closes itself or is terminated fires no event at the page. So each worker holds a Web Lock named
 * for it while it lives (src/workers/engine.worker.ts) and the client waits for the same lock: the
 * browser grants it the moment the worker is gone. Then every pending request fails with
 * WorkerCrashedError, later requests fail at once (rather than waiting forever), and the `onCrash`
 * listeners hear of it; `restart()` starts a fresh worker with the same listeners.
 */
import { WorkerCrashedError, rebuildError } from '../lib/errors';
import { WORKER_ALIVE } from '../lib/protocol/wire';
import type { FromWorker, ToWorker } from '../lib/protocol/wire';

/** Starts one engine worker under the given name (see engine.worker.ts for what the name carries). */
export type SpawnWorker = (name: string) => Worker;

interface Locks {
  request(name: string, callback: () => Promise<unknown> | unknown): Promise<unknown>;
}

function lockManager(): Locks | null {
  const nav = (globalThis as { navigator?: { locks?: Locks } }).navigator;
  return nav?.locks ?? null;
}

export class WorkerClient<Req extends { [K in keyof Req]: [unknown, unknown] }, Ev> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Map<keyof Ev, Set<(data: never) => void>>();
  private readonly crashListeners = new Set<(e: WorkerCrashedError) => void>();
  private worker: Worker;
  /** Set once the worker is gone; requests fail with it until `restart()`. */
  private dead: WorkerCrashedError | null = null;
  /** Counts workers started, so the death of an old one is not taken for the new one's. */
  private generation = 0;

  constructor(
    private readonly spawn: SpawnWorker,
    private readonly engineName: string,
    private readonly what: string,
  ) {
    this.worker = this.start();
  }

  private start(): Worker {
    const generation = ++this.generation;
    const locks = lockManager();
    // The lock's name travels in the worker's name: "<engine>#<lock>", unique per worker and tab.
    const lock = locks ? `peft-lab-worker:${crypto.randomUUID()}` : null;
    const worker = this.spawn(lock ? `${this.engineName}#${lock}` : this.engineName);
    worker.onmessage = (e: MessageEvent<FromWorker>) => {
      const msg = e.data;
      if ('event' in msg && msg.event === WORKER_ALIVE) {
        // The worker holds its lock now: this request is granted only once it has let go of it.
        if (lock && locks) void locks.request(lock, () => this.died(generation, 'stopped'));
        return;
      }
      this.receive(msg);
    };
    worker.onerror = (e) => this.died(generation, `crashed: ${e.message}`);
    return worker;
  }

  private died(generation: number, how: string): void {
    if (generation !== this.generation || this.dead) return;
    const err = new WorkerCrashedError(
      `the ${this.what} worker ${how} (the browser ends a worker that runs out of memory): what it held in memory is lost`,
    );
    this.dead = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.crashListeners.forEach((l) => l(err));
  }

  /** The worker is gone (crashed, closed or ended by the browser) and has not been restarted. */
  get crashed(): WorkerCrashedError | null {
    return this.dead;
  }

  /** Hears of the worker's death, once per worker. */
  onCrash(listener: (e: WorkerCrashedError) => void): () => void {
    this.crashListeners.add(listener);
    return () => this.crashListeners.delete(listener);
  }

  /** Starts a fresh worker (nothing loaded in it) after the last one died; event listeners stay. */
  restart(): void {
    this.generation++; // the old worker's late signals are ignored from here
    this.worker.terminate();
    this.dead = null;
    this.worker = this.start();
  }

  private receive(msg: FromWorker): void {
    if ('event' in msg) {
      this.listeners.get(msg.event as keyof Ev)?.forEach((l) => l(msg.data as never));
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(rebuildError(msg.error));
  }

  request<K extends keyof Req & string>(
    kind: K,
    payload: Req[K][0],
    transfer: Transferable[] = [],
  ): Promise<Req[K][1]> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<Req[K][1]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      const msg: ToWorker<K> = { id, kind, payload };
      this.worker.postMessage(msg, transfer);
    });
  }

  on<E extends keyof Ev>(event: E, listener: (data: Ev[E]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const l = listener as (data: never) => void;
    set.add(l);
    return () => set.delete(l);
  }

  terminate(): void {
    this.generation++; // ended on purpose: not a crash
    this.worker.terminate();
  }
}
