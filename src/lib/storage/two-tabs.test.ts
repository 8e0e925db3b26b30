/**
 * Two tabs on one database (fake-indexeddb; a "tab" is a connection of its own): a newer tab that
 * upgrades the schema while this one holds the database open, and two tabs saving an adapter under
 * the same name at the same moment (both kept whole; the second is named "name (2)", and the other
 * tab hears of it). The same in two real Chromium tabs that train at once: e2e/two-tabs.spec.ts.
 */
import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError } from '../errors';
import {
  deleteAdapter,
  freeAdapterName,
  getAdapter,
  listAdapters,
  onAdaptersChanged,
  saveAdapterRecord,
} from './adapters';
import type { AdapterInput } from './adapters';
import { LAB_DB_VERSION, closeLabDb, deleteLabDb } from './db';
import { getSetting, setSetting } from './settings';

const DB = 'peft-lab-two-tabs';

function adapter(id: string, fill: number): AdapterInput {
  return {
    id,
    name: 'my adapter',
    createdAt: fill,
    baseModel: 'peftlab-s',
    peftType: 'LORA',
    taskType: 'CAUSAL_LM',
    method: 'lora',
    trainableParams: 4,
    steps: 1,
    finalLoss: 1,
    configJson: '{"peft_type":"LORA"}',
    weights: new Uint8Array(5000).fill(fill).buffer,
  };
}

describe('two tabs', () => {
  afterEach(async () => {
    await closeLabDb();
    await deleteLabDb(DB);
  });

  it('a newer tab upgrades while this one holds the database open: this one steps aside, then says to reload', async () => {
    await setSetting('backend', 'wasm', DB); // this tab's connection is open and cached
    // The other tab, a newer app, opens the next schema version.
    const events: string[] = [];
    const other = await new Promise<IDBDatabase>((resolve, reject) => {
      const req = indexedDB.open(DB, LAB_DB_VERSION + 1);
      req.onblocked = () => events.push('blocked');
      req.onupgradeneeded = () => events.push('upgrade');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    // Our connection closed itself on `versionchange`, so the upgrade was never held up.
    expect(events).toEqual(['upgrade']);
    // What this tab saved is still there for the newer one.
    try {
      const value = await new Promise<unknown>((resolve) => {
        const get = other.transaction('kv').objectStore('kv').get('backend');
        get.onsuccess = () => resolve(get.result);
      });
      expect(value).toBe('wasm');
    } finally {
      other.close();
    }
    // This (older) tab's next use says what happened and what to do.
    const err = await getSetting('backend', DB).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(/written by a newer PEFT Lab than this one .*reload the page/);
  });

  it('two tabs saving an adapter under the same name at once keep both, each whole, the second as "name (2)"', async () => {
    // Two saves at once, as two tabs' are: IndexedDB runs them one after the other, and the name
    // is chosen inside each one's transaction.
    const heardByA: number[] = [];
    const stop = onAdaptersChanged(() => heardByA.push(Date.now()), DB);
    try {
      const [a, b] = await Promise.all([
        saveAdapterRecord(adapter('tab-a', 1), { chunkBytes: 1024 }, DB),
        saveAdapterRecord(adapter('tab-b', 2), { chunkBytes: 1024 }, DB),
      ]);
      // Which tab comes first is the database's choice; each is told the name it got.
      expect([a.name, b.name].sort()).toEqual(['my adapter', 'my adapter (2)']);
      const list = await listAdapters(DB);
      expect(list.map((x) => x.id).sort()).toEqual(['tab-a', 'tab-b']);
      expect(Object.fromEntries(list.map((x) => [x.id, x.name]))).toEqual({
        'tab-a': a.name,
        'tab-b': b.name,
      });
      expect(new Uint8Array((await getAdapter('tab-a', DB))!.weights).every((x) => x === 1)).toBe(true);
      expect(new Uint8Array((await getAdapter('tab-b', DB))!.weights).every((x) => x === 2)).toBe(true);
      // A third save takes the next number; saving tab-a again (same id) keeps its own name.
      expect((await saveAdapterRecord(adapter('tab-c', 3), {}, DB)).name).toBe('my adapter (3)');
      expect((await saveAdapterRecord(adapter('tab-a', 4), {}, DB)).name).toBe(a.name);
      // Saves from this module instance are not announced back to itself; another tab's are
      // (BroadcastChannel, checked below with a second channel standing in for the other tab).
      expect(heardByA).toEqual([]);
    } finally {
      stop();
    }
  });

  it('a tab hears when another tab saves or deletes an adapter', async () => {
    const heard: unknown[] = [];
    const other = new BroadcastChannel('peft-lab:adapters');
    other.onmessage = (e: MessageEvent) => heard.push(e.data);
    try {
      await saveAdapterRecord(adapter('tab-a', 1), {}, DB);
      await deleteAdapter('tab-a', DB);
      await expect.poll(() => heard.length).toBe(2);
      expect(heard).toEqual([
        { from: expect.any(String), dbName: DB },
        { from: expect.any(String), dbName: DB },
      ]);
    } finally {
      other.close();
    }
  });

  it('names: the first free of "name", "name (2)", "name (3)"...', () => {
    expect(freeAdapterName('x', [])).toBe('x');
    expect(freeAdapterName('x', ['x'])).toBe('x (2)');
    expect(freeAdapterName('x', ['x', 'x (2)', 'x (4)'])).toBe('x (3)');
    expect(freeAdapterName('x (2)', ['x (2)'])).toBe('x (2) (2)');
  });
});
