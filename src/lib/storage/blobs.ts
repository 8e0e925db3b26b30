/** Named blobs of any other owner in `chunks`: offload pages, checkpoints. */
import { DEFAULT_CHUNK_BYTES, DEFAULT_DB_NAME, inTx } from './db';
import type { BlobOptions } from './db';
import { blobRange, checkChunkBytes, checkOwner, ownerRange, queueBlobWrite, readBlob } from './chunks';

/** What `blobUsage` returns: one owner's blobs and their total size. */
export interface BlobUsage {
  ownerId: string;
  blobs: number;
  bytes: number;
}

/**
 * Stores `bytes` as blob (ownerId, name), split into records of at most `chunkBytes`; replaces
 * any blob of that name atomically. Owner ids starting "adapter:" or "model:" are reserved.
 */
export async function putBlob(
  ownerId: string,
  name: string,
  bytes: ArrayBuffer | ArrayBufferView,
  opts: BlobOptions = {},
  dbName = DEFAULT_DB_NAME,
): Promise<void> {
  checkOwner(ownerId);
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  checkChunkBytes(chunkBytes);
  await inTx(
    dbName,
    ['chunks'],
    'readwrite',
    `save "${ownerId}/${name}"`,
    (tx) => Promise.all(queueBlobWrite(tx.objectStore('chunks'), ownerId, name, bytes, chunkBytes)),
    bytes.byteLength,
  );
}

/**
 * Stores several blobs of one owner in one transaction (offload's pages of a step): either every one
 * is replaced or, on any failure (a full disk), none is and the error names the total size.
 */
export async function putBlobs(
  ownerId: string,
  entries: readonly (readonly [name: string, bytes: ArrayBuffer | ArrayBufferView])[],
  opts: BlobOptions = {},
  dbName = DEFAULT_DB_NAME,
): Promise<void> {
  checkOwner(ownerId);
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  checkChunkBytes(chunkBytes);
  await inTx(
    dbName,
    ['chunks'],
    'readwrite',
    `save ${entries.length} blobs of "${ownerId}"`,
    (tx) =>
      Promise.all(
        entries.flatMap(([name, bytes]) =>
          queueBlobWrite(tx.objectStore('chunks'), ownerId, name, bytes, chunkBytes),
        ),
      ),
    entries.reduce((a, [, b]) => a + b.byteLength, 0),
  );
}

/** The bytes of several blobs of one owner, read in one transaction; undefined for each that is missing. */
export async function getBlobs(
  ownerId: string,
  names: readonly string[],
  dbName = DEFAULT_DB_NAME,
): Promise<(ArrayBuffer | undefined)[]> {
  return inTx(dbName, ['chunks'], 'readonly', `read ${names.length} blobs of "${ownerId}"`, (tx) =>
    Promise.all(names.map((name) => readBlob(tx.objectStore('chunks'), ownerId, name))),
  );
}

/** The bytes of blob (ownerId, name), or undefined when there is none. */
export async function getBlob(
  ownerId: string,
  name: string,
  dbName = DEFAULT_DB_NAME,
): Promise<ArrayBuffer | undefined> {
  return inTx(dbName, ['chunks'], 'readonly', `read "${ownerId}/${name}"`, (tx) =>
    readBlob(tx.objectStore('chunks'), ownerId, name),
  );
}

/** Deletes blob (ownerId, name); nothing happens when there is none. */
export async function deleteBlob(ownerId: string, name: string, dbName = DEFAULT_DB_NAME): Promise<void> {
  checkOwner(ownerId);
  await inTx(dbName, ['chunks'], 'readwrite', `delete "${ownerId}/${name}"`, (tx) =>
    tx.objectStore('chunks').delete(blobRange(ownerId, name)),
  );
}

/** Deletes every blob of `ownerId`. */
export async function deleteBlobs(ownerId: string, dbName = DEFAULT_DB_NAME): Promise<void> {
  checkOwner(ownerId);
  await inTx(dbName, ['chunks'], 'readwrite', `delete the data of "${ownerId}"`, (tx) =>
    tx.objectStore('chunks').delete(ownerRange(ownerId)),
  );
}

/**
 * Bytes held by the blobs of each owner whose id starts with `prefix` (e.g. "offload:"), for the
 * Storage screen. Walks the chunk keys and reads only each blob's first chunk (it carries the blob's
 * total size), so a listing reads at most one chunk record per blob.
 */
export async function blobUsage(prefix: string, dbName = DEFAULT_DB_NAME): Promise<BlobUsage[]> {
  return inTx(dbName, ['chunks'], 'readonly', `measure the data of "${prefix}*"`, async (tx) => {
    const store = tx.objectStore('chunks');
    // Every owner id starting with `prefix` sorts between [prefix] and [prefix + U+FFFF].
    const range = IDBKeyRange.bound([prefix], [`${prefix}\uffff`]);
    const byOwner = new Map<string, BlobUsage>();
    for (let c = await store.openKeyCursor(range); c; c = await c.continue()) {
      const [ownerId, , index] = c.key;
      if (index !== 0) continue;
      const first = await store.get(c.key);
      const u = byOwner.get(ownerId) ?? { ownerId, blobs: 0, bytes: 0 };
      u.blobs += 1;
      u.bytes += first?.totalBytes ?? 0;
      byOwner.set(ownerId, u);
    }
    return [...byOwner.values()];
  });
}
