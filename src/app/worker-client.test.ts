import { afterEach, describe, expect, it, vi } from 'vitest';
import { WorkerClient } from './worker-client';
import { BusyError, DataImportError, PeftLabError, WorkerCrashedError, serializeError } from '../lib/errors';
import { WORKER_ALIVE } from '../lib/protocol/wire';

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
    () =>
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

/**
 * Web Locks as the browser keeps them, for one page: a request waits while another holder has the
 * name and is granted when that holder lets go (`release`, what a worker's death does).
 */
class FakeLocks {
  private readonly held = new Map<string, { release: () => void }>();
  private readonly waiting = new Map<string, (() => unknown)[]>();
  request(name: string, callback: () => unknown): Promise<unknown> {
    if (this.held.has(name)) {
      const list = this.waiting.get(name) ?? [];
      list.push(callback);
      this.waiting.set(name, list);
      return new Promise(() => {});
    }
    let release = (): void => {};
    const done = new Promise<void>((r) => (release = r));
    this.held.set(name, { release });
    void Promise.resolve(callback()).then(() => done);
    return done;
  }
  /** The holder of `name` is gone: the next waiter gets it. */
  release(name: string): void {
    this.held.delete(name);
    const next = this.waiting.get(name)?.shift();
    if (next) void this.request(name, next);
  }
}

describe('WorkerClient when the worker dies', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('fails pending and later requests with WorkerCrashedError, tells its listeners, and restarts', async () => {
    const locks = new FakeLocks();
    vi.stubGlobal('navigator', { locks });
    const names: string[] = [];
    // A worker that takes its lock, says so, and never answers a request (it is mid-step).
    const spawn = (name: string): Worker => {
      names.push(name);
      const w = { onmessage: null, onerror: null, postMessage() {}, terminate() {} } as unknown as Worker;
      const lock = name.split('#')[1]!;
      void locks.request(lock, () => {
        queueMicrotask(() => w.onmessage?.({ data: { event: WORKER_ALIVE, data: null } } as MessageEvent));
        return new Promise(() => {});
      });
      return w;
    };
    const client = new WorkerClient<{ train: [null, void] }, object>(spawn, 'training', 'training');
    const crashes: WorkerCrashedError[] = [];
    client.onCrash((e) => crashes.push(e));
    expect(names[0]).toMatch(/^training#peft-lab-worker:/);
    await new Promise((r) => setTimeout(r, 0));
    const run = client.request('train', null).catch((e: unknown) => e);
    // The worker is killed: nothing is posted, only its lock goes.
    locks.release(names[0]!.split('#')[1]!);
    const err = await run;
    expect(err).toBeInstanceOf(WorkerCrashedError);
    expect((err as Error).message).toMatch(/^the training worker stopped .*what it held in memory is lost$/);
    expect(crashes).toEqual([err]);
    expect(client.crashed).toBe(err);
    await expect(client.request('train', null)).rejects.toBe(err);
    client.restart();
    expect(client.crashed).toBeNull();
    expect(names).toHaveLength(2);
    expect(names[1]).not.toBe(names[0]);
    // A worker ended on purpose is not a crash.
    await new Promise((r) => setTimeout(r, 0));
    client.terminate();
    locks.release(names[1]!.split('#')[1]!);
    await new Promise((r) => setTimeout(r, 0));
    expect(crashes).toHaveLength(1);
  });
});
