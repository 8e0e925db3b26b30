/**
 * The messages on the wire between the page and an engine's worker, the same for every worker
 * (the Lab's and the Compare screen's): a request carries an id its one reply echoes, with the
 * result or the error as {name, message} (src/lib/errors.ts); events carry no id. The typed maps
 * (lab-protocol.ts, compare-protocol.ts) fix what `kind`, `payload`, `result` and `data` hold.
 */
import type { SerializedError } from '../errors';

/** The event a worker sends once it holds the Web Lock that tells the page it lives (engine.worker.ts). */
export const WORKER_ALIVE = '__alive';

export interface ToWorker<K extends string = string> {
  id: number;
  kind: K;
  payload: unknown;
}

export type FromWorker<E extends string = string> =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: SerializedError }
  | { event: E; data: unknown };
