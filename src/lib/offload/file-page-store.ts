/**
 * Pages as files in a folder (Node only: the bench's disk-backed store and the CLI). Reads and
 * writes go through node:fs/promises, so they run on libuv's thread pool and overlap with compute
 * on the main thread, as IndexedDB's do in a browser. A write goes to a temporary name first and
 * is renamed over the page, so a crash never leaves half a page.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StorageError } from '../errors';
import { checkPageSize } from './page-store';
import type { PageStore } from './page-store';

const fileOf = (key: string): string => encodeURIComponent(key);

export class FilePageStore implements PageStore {
  constructor(readonly dir: string) {}

  async put(key: string, bytes: Uint8Array): Promise<void> {
    checkPageSize(key, bytes);
    await mkdir(this.dir, { recursive: true });
    const path = join(this.dir, fileOf(key));
    await writeFile(`${path}.tmp`, bytes);
    await rename(`${path}.tmp`, path);
  }

  async get(key: string): Promise<Uint8Array> {
    try {
      return new Uint8Array(await readFile(join(this.dir, fileOf(key))));
    } catch (e) {
      throw new StorageError(`page ${key} could not be read from ${this.dir}: ${(e as Error).message}`);
    }
  }

  /** Page by page (each renamed into place whole; not all or none as one IndexedDB transaction is). */
  async putMany(entries: readonly (readonly [string, Uint8Array])[]): Promise<void> {
    for (const [key, bytes] of entries) checkPageSize(key, bytes);
    for (const [key, bytes] of entries) await this.put(key, bytes);
  }

  getMany(keys: readonly string[]): Promise<Uint8Array[]> {
    return Promise.all(keys.map((k) => this.get(k)));
  }

  async delete(key: string): Promise<void> {
    await rm(join(this.dir, fileOf(key)), { force: true });
  }

  async clear(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
