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

/** Deletes the pages putSplit wrote under `key` for `byteLength` bytes. */
export async function deleteSplit(store: PageStore, key: string, byteLength: number): Promise<void> {
  for (let part = 0; part < partsOf(byteLength); part++) await store.delete(`${key}#${part}`);
}

/** The kinds of page a run keeps apart, each in its own store with its own policy. */
export type PageKind = 'layers' | 'optimizer' | 'gradients';
