import { describe, expect, it } from 'vitest';
import { WorkerClient } from './worker-client';
import { BusyError, DataImportError, PeftLabError, serializeError } from '../lib/errors';

/**
 * A worker stand-in that answers as src/workers/*.worker.ts do: the handler's result, or its error
 * serialized, each message passed through structuredClone as postMessage would.
 */
function fakeWorker(handle: (kind: string, payload: unknown) => unknown): Worker {
  const w = {
    onmessage: null as ((e: MessageEvent) => void) | null,
    onerror: null,
    postMessage(msg: { id: number; kind: string; payload: unknown }) {
      const reply = (data: unknown) =>
        queueMicrotask(() => w.onmessage?.({ data: structuredClone(data) } as MessageEvent));
      try {
        reply({ id: msg.id, ok: true, result: handle(msg.kind, msg.payload) });
      } catch (err) {
        reply({ id: msg.id, ok: false, error: serializeError(err) });
      }
    },
    terminate() {},
  };
  return w as unknown as Worker;
}

type Api = { importData: [string, number]; train: [null, void]; boom: [null, void] };

describe('WorkerClient', () => {
  const client = new WorkerClient<Api, object>(
    fakeWorker((kind, payload) => {
      if (kind === 'importData')
        throw new DataImportError(
          `line 4 of ${String(payload)}: 3 fields, the header has 2`,
          'field-count',
          4,
        );
      if (kind === 'train') throw new BusyError('training is already running: stop it first');
      throw new TypeError('x is not a function');
    }),
    'test',
  );

  it("rejects with the worker's named error, its fields included", async () => {
    const e = await client.request('importData', 'mail.csv').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DataImportError);
    expect(e).toMatchObject({
      message: 'line 4 of mail.csv: 3 fields, the header has 2',
      code: 'field-count',
      line: 4,
    });
    await expect(client.request('train', null)).rejects.toBeInstanceOf(BusyError);
  });

  it('keeps the name of an error it has no class for', async () => {
    const e = await client.request('boom', null).catch((x: unknown) => x);
    expect(e).not.toBeInstanceOf(PeftLabError);
    expect(e).toMatchObject({ name: 'TypeError', message: 'x is not a function' });
  });
});
