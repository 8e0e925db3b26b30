/**
 * The one shell every worker is: requests from the page go to the engine's method of that kind,
 * each answered once with its result or a serialized named error; the engine's events go out as
 * they happen. A result's `weights` buffer is transferred, not copied.
 */
import { InternalError, serializeError } from '../lib/errors';
import type { FromWorker, ToWorker } from '../lib/protocol/wire';

export type Post = (msg: FromWorker, transfer?: Transferable[]) => void;

// The options form of postMessage types on the worker's global and the window's alike: no cast.
export const post: Post = (msg, transfer = []) => self.postMessage(msg, { transfer });

/** Answers every request on this worker with `engine[kind](payload)`. */
export function serve<Api extends object>(engine: Api): void {
  self.onmessage = async (e: MessageEvent<ToWorker>) => {
    const { id, kind, payload } = e.data;
    try {
      const handler: unknown = (engine as Record<string, unknown>)[kind];
      if (typeof handler !== 'function') throw new InternalError(`unknown request ${kind}`);
      const result: unknown = await (handler as (p: unknown) => Promise<unknown>).call(engine, payload);
      const transfer =
        result && typeof result === 'object' && 'weights' in result && result.weights instanceof ArrayBuffer
          ? [result.weights]
          : [];
      post({ id, ok: true, result }, transfer);
    } catch (err) {
      post({ id, ok: false, error: serializeError(err) });
    }
  };
}
