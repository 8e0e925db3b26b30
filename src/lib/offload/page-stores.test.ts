import 'fake-indexeddb/auto';
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StorageError } from '../errors';
import { deleteLabDb } from '../storage/db';
import { FilePageStore } from './file-page-store';
import { IdbPageStore } from './idb-page-store';
import { MAX_PAGE_BYTES, MemoryPageStore } from './page-store';
import type { PageStore } from './page-store';

const dir = mkdtempSync(join(tmpdir(), 'peft-lab-pages-'));
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await deleteLabDb('pages-test');
});

const STORES: [string, () => Promise<PageStore>][] = [
  ['memory', async () => new MemoryPageStore()],
  ['files', async () => new FilePageStore(join(dir, 'store'))],
  ['IndexedDB', async () => IdbPageStore.open('offload:test', 'pages-test')],
];

describe.each(STORES)('%s page store', (_name, open) => {
  it('keeps a copy, replaces, deletes, and names a missing page', async () => {
    const store = await open();
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);
    await store.put('h.0/w#0', bytes);
    bytes[0] = 99; // a later write by the caller does not reach the stored page
    expect(Array.from((await store.get('h.0/w#0')).subarray(0, 3))).toEqual([0, 1, 2]);
    await store.put('h.0/w#0', Uint8Array.of(7, 8));
    expect(Array.from(await store.get('h.0/w#0'))).toEqual([7, 8]);
    await store.delete('h.0/w#0');
    await expect(store.get('h.0/w#0')).rejects.toThrow(StorageError);
    await expect(store.get('nope')).rejects.toThrow(/nope/);
  });

  it('refuses a page over the record limit', async () => {
    const store = await open();
    // A view of the right length is enough: the check is on byteLength, before any copy.
    const big = new Uint8Array(new ArrayBuffer(MAX_PAGE_BYTES + 1));
    await expect(store.put('big', big)).rejects.toThrow(/over the 67108864-byte record limit/);
  });
});
