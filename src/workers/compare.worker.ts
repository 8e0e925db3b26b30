/**
 * The Compare screen's worker: the race engine behind the typed protocol (compare-protocol.ts).
 * Its own worker, so a race and the Lab's training each have a thread and a model of their own.
 */
import { serializeError } from '../lib/errors';
import { CompareEngine } from '../lib/engine/compare-engine';
import { browserFetchBytes } from '../lib/engine/lab-engine';
import type { CompareApi, CompareKind } from '../lib/protocol/compare-protocol';

const post = (msg: unknown): void => (self as unknown as Worker).postMessage(msg);

const engine = new CompareEngine(browserFetchBytes, (event, data) => post({ event, data }));

self.onmessage = async (e: MessageEvent<{ id: number; kind: CompareKind; payload: unknown }>) => {
  const { id, kind, payload } = e.data;
  try {
    const handler = engine[kind] as (p: unknown) => Promise<unknown>;
    if (typeof handler !== 'function') throw new Error(`unknown request ${kind}`);
    post({ id, ok: true, result: await handler.call(engine as CompareApi, payload) });
  } catch (err) {
    post({ id, ok: false, error: serializeError(err) });
  }
};
