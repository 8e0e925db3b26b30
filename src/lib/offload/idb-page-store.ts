/**
 * Pages in IndexedDB, as blobs of one owner in the Lab's database (src/lib/storage/db.ts): each
 * page one blob, written in one transaction, so a page is either all there or not at all; putMany
 * and getMany take many pages in one transaction (a transaction per page costs more than its
 * bytes). The database's own chunking keeps records under its limit; pages are already at most
 * MAX_PAGE_BYTES. (Chunks under Chromium's 64 KiB blob threshold, so values come back inline, were
 * tried: no less waiting for int8 pages read ahead, twice the waiting for float32 read on demand.)
 */
import { StorageError } from '../errors';
import { openLabDb } from '../storage/handle';
import type { LabDb } from '../storage/handle';
import { checkPageSize } from './page-store';
import type { PageStore } from './page-store';

export class IdbPageStore implements PageStore {
  private constructor(
    private readonly db: LabDb,
    /** The blob owner all pages of this store belong to, e.g. "offload:<run id>". */
    readonly owner: string,
  ) {}

  static async open(owner: string, dbName?: string): Promise<IdbPageStore> {
    return new IdbPageStore(await openLabDb(dbName), owner);
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    checkPageSize(key, bytes);
    await this.db.putBlob(this.owner, key, bytes);
  }

  async get(key: string): Promise<Uint8Array> {
    const b = await this.db.getBlob(this.owner, key);
    if (!b)
      throw new StorageError(
        `page ${key} is not in IndexedDB (${this.owner}): it was deleted or never written`,
      );
    return new Uint8Array(b);
  }

  /** Every page in one transaction: all of them are written or, on a failure, none. */
  async putMany(entries: readonly (readonly [string, Uint8Array])[]): Promise<void> {
    for (const [key, bytes] of entries) checkPageSize(key, bytes);
    await this.db.putBlobs(this.owner, entries);
  }

  async getMany(keys: readonly string[]): Promise<Uint8Array[]> {
    const got = await this.db.getBlobs(this.owner, keys);
    return got.map((b, i) => {
      if (!b)
        throw new StorageError(
          `page ${keys[i]} is not in IndexedDB (${this.owner}): it was deleted or never written`,
        );
      return new Uint8Array(b);
    });
  }

  async delete(key: string): Promise<void> {
    await this.db.deleteBlob(this.owner, key);
  }

  /** Deletes every page of this store. */
  async clear(): Promise<void> {
    await this.db.deleteBlobs(this.owner);
  }
}
