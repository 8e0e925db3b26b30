/**
 * The training worker: a thin shell that connects the typed protocol to the in-process engine.
 * Every request is answered once with its result or a serialized named error.
 */
import { serializeError } from '../lib/errors';
import { LabEngine, browserFetchBytes } from '../lib/engine/lab-engine';
import type { FromWorker, LabApi, RequestKind, ToWorker } from '../lib/protocol/lab-protocol';

const post = (msg: FromWorker, transfer: Transferable[] = []): void =>
  (self as unknown as Worker).postMessage(msg, transfer);

const engine = new LabEngine(browserFetchBytes, (event, data) => post({ event, data }));

self.onmessage = async (e: MessageEvent<ToWorker>) => {
  const { id, kind, payload } = e.data;
  try {
    const handler = engine[kind as RequestKind] as LabApi[RequestKind];
    const result = await (handler as (p: unknown) => Promise<unknown>).call(engine, payload);
    const transfer =
      result && typeof result === 'object' && 'weights' in result
        ? [(result as { weights: ArrayBuffer }).weights]
        : [];
    post({ id, ok: true, result }, transfer);
  } catch (err) {
    post({ id, ok: false, error: serializeError(err) });
  }
};
