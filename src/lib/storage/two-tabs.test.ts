/**
 * Two tabs on one database (fake-indexeddb; a "tab" is a connection of its own): a newer tab that
 * upgrades the schema while this one holds the database open, and two tabs saving an adapter under
 * the same name at the same moment.
 */
import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError } from '../errors';
import { getAdapter, listAdapters, saveAdapterRecord } from './adapters';
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

  it('two tabs saving an adapter under the same name at once keep both, each whole', async () => {
    const [a, b] = await Promise.all([
      saveAdapterRecord(adapter('tab-a', 1), { chunkBytes: 1024 }, DB),
      saveAdapterRecord(adapter('tab-b', 2), { chunkBytes: 1024 }, DB),
    ]);
    expect(a.name).toBe(b.name);
    expect((await listAdapters(DB)).map((x) => x.id).sort()).toEqual(['tab-a', 'tab-b']);
    expect(new Uint8Array((await getAdapter('tab-a', DB))!.weights).every((x) => x === 1)).toBe(true);
    expect(new Uint8Array((await getAdapter('tab-b', DB))!.weights).every((x) => x === 2)).toBe(true);
  });
});
