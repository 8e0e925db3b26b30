/**
 * Where paged-out tensors live: a narrow asynchronous key -> bytes interface, so the paging logic
 * is the same whether pages sit in memory (tests, the bench's baseline), in files (Node, the
 * bench's disk-backed store) or in IndexedDB (the browser, through src/lib/storage/db.ts blobs).
 * A page is at most MAX_PAGE_BYTES: larger IndexedDB records fail in some browsers
 * (ENVIRONMENT.md), so callers split bigger tensors.
 */
import { StorageError } from '../errors';

export const MAX_PAGE_BYTES = 64 * 1024 * 1024;

export interface PageStore {
  /** Stores a copy of `bytes` under `key`, replacing what was there. */
  put(key: string, bytes: Uint8Array): Promise<void>;
  /** The bytes stored under `key`; a StorageError names a missing page. */
  get(key: string): Promise<Uint8Array>;
  delete(key: string): Promise<void>;
  /** Deletes every page of this store. */
  clear(): Promise<void>;
  /**
   * put() of each entry, together: IndexedDB writes them in one transaction (all of them or, on a
   * failure, none), which costs far less than a transaction per page.
   */
  putMany(entries: readonly (readonly [string, Uint8Array])[]): Promise<void>;
  /** get() of each key, together (IndexedDB: in one transaction); a missing page is named. */
  getMany(keys: readonly string[]): Promise<Uint8Array[]>;
}

export function checkPageSize(key: string, bytes: Uint8Array): void {
  if (bytes.byteLength > MAX_PAGE_BYTES) {
    throw new StorageError(
      `page ${key} is ${bytes.byteLength} bytes, over the ${MAX_PAGE_BYTES}-byte record limit: split it`,
    );
  }
}

/** Pages in this process's memory (copies, so a caller's later writes do not reach a stored page). */
export class MemoryPageStore implements PageStore {
  private readonly pages = new Map<string, Uint8Array>();

  async put(key: string, bytes: Uint8Array): Promise<void> {
    checkPageSize(key, bytes);
    this.pages.set(key, bytes.slice());
  }

  async get(key: string): Promise<Uint8Array> {
    const p = this.pages.get(key);
    if (!p) throw new StorageError(`page ${key} is not in the store`);
    return p;
  }

  async delete(key: string): Promise<void> {
    this.pages.delete(key);
  }

  async clear(): Promise<void> {
    this.pages.clear();
  }

  async putMany(entries: readonly (readonly [string, Uint8Array])[]): Promise<void> {
    for (const [key, bytes] of entries) checkPageSize(key, bytes);
    for (const [key, bytes] of entries) await this.put(key, bytes);
  }

  getMany(keys: readonly string[]): Promise<Uint8Array[]> {
    return Promise.all(keys.map((k) => this.get(k)));
  }

  get size(): number {
    return this.pages.size;
  }
}

/** Pages of `byteLength` bytes: at most MAX_PAGE_BYTES each, and one page even for no bytes. */
const partsOf = (byteLength: number): number => Math.max(1, Math.ceil(byteLength / MAX_PAGE_BYTES));

/** Writes `bytes` as pages `<key>#0`, `<key>#1`, ... of at most MAX_PAGE_BYTES. */
export async function putSplit(store: PageStore, key: string, bytes: Uint8Array): Promise<void> {
  for (let part = 0; part < partsOf(bytes.byteLength); part++) {
    const off = part * MAX_PAGE_BYTES;
    await store.put(`${key}#${part}`, bytes.subarray(off, off + MAX_PAGE_BYTES));
  }
}

/** Reads back what putSplit wrote under `key` (`byteLength` bytes) into `into`'s bytes. */
export async function getSplit(store: PageStore, key: string, into: Uint8Array): Promise<Uint8Array> {
  for (let part = 0; part < partsOf(into.byteLength); part++) {
    into.set(await store.get(`${key}#${part}`), part * MAX_PAGE_BYTES);
  }
  return into;
}

/** putSplit of several values at once (one putMany: with IndexedDB, one transaction). */
export async function putSplitMany(
  store: PageStore,
  items: readonly (readonly [string, Uint8Array])[],
): Promise<void> {
  const entries: [string, Uint8Array][] = [];
  for (const [key, bytes] of items) {
    for (let part = 0; part < partsOf(bytes.byteLength); part++) {
      const off = part * MAX_PAGE_BYTES;
      entries.push([`${key}#${part}`, bytes.subarray(off, off + MAX_PAGE_BYTES)]);
    }
  }
  await store.putMany(entries);
}

/** getSplit of several values at once (one getMany: with IndexedDB, one transaction). */
export async function getSplitMany(
  store: PageStore,
  items: readonly (readonly [string, Uint8Array])[],
): Promise<void> {
  const where: { into: Uint8Array; at: number }[] = [];
  const keys: string[] = [];
  for (const [key, into] of items) {
    for (let part = 0; part < partsOf(into.byteLength); part++) {
      keys.push(`${key}#${part}`);
      where.push({ into, at: part * MAX_PAGE_BYTES });
    }
  }
  const pages = await store.getMany(keys);
  pages.forEach((p, i) => where[i]!.into.set(p, where[i]!.at));
}

/** Deletes the pages putSplit wrote under `key` for `byteLength` bytes. */
export async function deleteSplit(store: PageStore, key: string, byteLength: number): Promise<void> {
  for (let part = 0; part < partsOf(byteLength); part++) await store.delete(`${key}#${part}`);
}

/** The kinds of page a run keeps apart, each in its own store with its own policy. */
export type PageKind = 'layers' | 'optimizer' | 'gradients';
