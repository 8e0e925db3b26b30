/**
 * A typed request/reply client for an engine in a worker: each request gets an id, its reply
 * (result or serialized named error) is matched back, and events stream to listeners. `Req` maps a
 * request kind to [payload, reply], `Ev` an event kind to its payload. The Lab's and the Compare
 * screen's workers both speak it.
 */
import { WorkerCrashedError, rebuildError } from '../lib/errors';
import type { FromWorker, ToWorker } from '../lib/protocol/wire';

export class WorkerClient<Req extends { [K in keyof Req]: [unknown, unknown] }, Ev> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Map<keyof Ev, Set<(data: never) => void>>();

  constructor(
    private readonly worker: Worker,
    what: string,
  ) {
    this.worker.onmessage = (e: MessageEvent<FromWorker>) => this.receive(e.data);
    this.worker.onerror = (e) => {
      const err = new WorkerCrashedError(`the ${what} worker crashed: ${e.message}; reload the page`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
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
    this.worker.terminate();
  }
}
