import 'fake-indexeddb/auto';
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StorageError } from '../errors';
import { deleteLabDb } from '../storage/db';
import { FilePageStore } from './file-page-store';
import { IdbPageStore } from './idb-page-store';
import {
  MAX_PAGE_BYTES,
  MemoryPageStore,
  deleteSplit,
  getSplit,
  getSplitMany,
  putSplit,
  putSplitMany,
} from './page-store';
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

  it('clears every page, and takes pages again afterwards', async () => {
    const store = await open();
    await store.put('a#0', Uint8Array.of(1));
    await store.put('b#0', Uint8Array.of(2));
    await store.clear();
    await expect(store.get('a#0')).rejects.toThrow(StorageError);
    await expect(store.get('b#0')).rejects.toThrow(StorageError);
    await store.put('a#0', Uint8Array.of(3));
    expect(Array.from(await store.get('a#0'))).toEqual([3]);
  });

  it('puts and gets many pages together, names a missing one, and refuses an oversized batch before writing', async () => {
    const store = await open();
    await store.putMany([
      ['m/a#0', Uint8Array.of(1, 2)],
      ['m/b#0', Uint8Array.of(3)],
    ]);
    expect((await store.getMany(['m/b#0', 'm/a#0'])).map((b) => Array.from(b))).toEqual([[3], [1, 2]]);
    await expect(store.getMany(['m/a#0', 'm/gone#0'])).rejects.toThrow(/m\/gone#0/);
    const big = new Uint8Array(new ArrayBuffer(MAX_PAGE_BYTES + 1));
    await expect(
      store.putMany([
        ['m/c#0', Uint8Array.of(4)],
        ['m/big#0', big],
      ]),
    ).rejects.toThrow(/over the 67108864-byte record limit/);
    await expect(store.get('m/c#0')).rejects.toThrow(StorageError);
  });

  it('refuses a page over the record limit', async () => {
    const store = await open();
    // A view of the right length is enough: the check is on byteLength, before any copy.
    const big = new Uint8Array(new ArrayBuffer(MAX_PAGE_BYTES + 1));
    await expect(store.put('big', big)).rejects.toThrow(/over the 67108864-byte record limit/);
  });
});

describe('IndexedDB pages put together', () => {
  it('are all written or, when the disk is full, none, with the error named', async () => {
    const store = await IdbPageStore.open('offload:many', 'pages-test');
    await store.put('x#0', Uint8Array.of(9));
    const realPut = IDBObjectStore.prototype.put;
    let calls = 0;
    IDBObjectStore.prototype.put = function (
      this: IDBObjectStore,
      ...args: Parameters<IDBObjectStore['put']>
    ) {
      if (++calls === 2) throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      return realPut.apply(this, args);
    };
    const err = await store
      .putMany([
        ['x#0', Uint8Array.of(1)],
        ['y#0', Uint8Array.of(2)],
        ['z#0', Uint8Array.of(3)],
      ])
      .catch((e: unknown) => e);
    IDBObjectStore.prototype.put = realPut;
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(/^storage is full.* to save 3 blobs of "offload:many"/);
    expect(Array.from(await store.get('x#0'))).toEqual([9]); // the page it would have replaced is kept
    await expect(store.getMany(['y#0'])).rejects.toThrow(/y#0 is not in IndexedDB/);
    await expect(store.get('z#0')).rejects.toThrow(StorageError);
  });
});

describe('split pages', () => {
  it('writes data over the record limit as several pages and reads it back whole', async () => {
    const store = new MemoryPageStore();
    const bytes = new Uint8Array(MAX_PAGE_BYTES + 5);
    bytes[0] = 1;
    bytes[MAX_PAGE_BYTES] = 2;
    bytes[MAX_PAGE_BYTES + 4] = 3;
    await putSplit(store, 'w', bytes);
    expect(store.size).toBe(2);
    expect((await store.get('w#1')).byteLength).toBe(5);
    const back = await getSplit(store, 'w', new Uint8Array(bytes.byteLength));
    expect([back[0], back[MAX_PAGE_BYTES], back[MAX_PAGE_BYTES + 4]]).toEqual([1, 2, 3]);
    await deleteSplit(store, 'w', bytes.byteLength);
    expect(store.size).toBe(0);
    // Many at once: the same pages, written and read in one batch each.
    await putSplitMany(store, [
      ['w', bytes],
      ['s', Uint8Array.of(5, 6)],
    ]);
    expect(store.size).toBe(3);
    const w = new Uint8Array(bytes.byteLength);
    const sm = new Uint8Array(2);
    await getSplitMany(store, [
      ['w', w],
      ['s', sm],
    ]);
    expect([w[0], w[MAX_PAGE_BYTES], w[MAX_PAGE_BYTES + 4], ...sm]).toEqual([1, 2, 3, 5, 6]);
    await deleteSplit(store, 'w', bytes.byteLength);
    await deleteSplit(store, 's', 2);
    // Empty data is still one (empty) page, so a reader finds it.
    await putSplit(store, 'e', new Uint8Array(0));
    expect((await getSplit(store, 'e', new Uint8Array(0))).byteLength).toBe(0);
  });
});
