/**
 * The UI's handle on the training worker: the same LabApi as the in-process engine, over
 * postMessage. Replies are matched by id; errors come back as their named classes.
 */
import { rebuildError } from '../lib/errors';
import type {
  EventKind,
  FromWorker,
  LabApi,
  LabEvents,
  RequestKind,
  RequestOf,
  ReplyOf,
} from '../lib/protocol/lab-protocol';

type Listener<E extends EventKind> = (data: LabEvents[E]) => void;

export class WorkerEngine {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Map<EventKind, Set<(data: never) => void>>();

  constructor() {
    this.worker = new Worker(new URL('../workers/train.worker.ts', import.meta.url), { type: 'module' });
    this.worker.onmessage = (e: MessageEvent<FromWorker>) => this.receive(e.data);
    this.worker.onerror = (e) => {
      const err = new Error(`the training worker crashed: ${e.message}; reload the page`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
  }

  private receive(msg: FromWorker): void {
    if ('event' in msg) {
      this.listeners.get(msg.event)?.forEach((l) => l(msg.data as never));
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(rebuildError(msg.error));
  }

  request<K extends RequestKind>(
    kind: K,
    payload: RequestOf<K>,
    transfer: Transferable[] = [],
  ): Promise<ReplyOf<K>> {
    const id = this.nextId++;
    return new Promise<ReplyOf<K>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, kind, payload }, transfer);
    });
  }

  on<E extends EventKind>(event: E, listener: Listener<E>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const l = listener as (data: never) => void;
    set.add(l);
    return () => set.delete(l);
  }

  /** The LabApi shape, for code written against either implementation. */
  api(): LabApi {
    const call =
      <K extends RequestKind>(k: K) =>
      (p: RequestOf<K>) =>
        this.request(k, p);
    return {
      init: call('init'),
      loadModel: call('loadModel'),
      loadModelFiles: call('loadModelFiles'),
      loadHubModel: call('loadHubModel'),
      train: call('train'),
      pause: call('pause'),
      resume: call('resume'),
      stop: call('stop'),
      generate: call('generate'),
      classify: call('classify'),
      tag: call('tag'),
      exportAdapter: call('exportAdapter'),
      importAdapter: call('importAdapter'),
      dropAdapter: call('dropAdapter'),
      useAdapter: call('useAdapter'),
    };
  }

  terminate(): void {
    this.worker.terminate();
  }
}
