/**
 * The `chunks` store: blobs split into records of at most `chunkBytes`, keyed
 * [ownerId, name, index]; the adapters', models' and data sets' bytes and every other blob
 * (blobs.ts) live here. Helpers for the store modules' transactions.
 */
import type { IDBPObjectStore } from 'idb';
import { StorageError } from '../errors';
import { MAX_RECORD_BYTES, queue } from './db';
import type { LabSchema, StoreName } from './db';

export const ADAPTER_OWNER = 'adapter:';
export const MODEL_OWNER = 'model:';
export const DATASET_OWNER = 'dataset:';

/** The `chunks` store as seen from a transaction over `Names` (which includes "chunks"). */
export type ChunkStore<Names extends readonly StoreName[], Mode extends IDBTransactionMode> = IDBPObjectStore<
  LabSchema,
  Names,
  'chunks',
  Mode
>;

export function blobRange(ownerId: string, name: string): IDBKeyRange {
  // Arrays sort after every number, so [owner, name, []] is above every [owner, name, index].
  return IDBKeyRange.bound([ownerId, name], [ownerId, name, []]);
}

export function ownerRange(ownerId: string): IDBKeyRange {
  // Arrays sort after every string, so [owner, []] is above every [owner, name, index].
  return IDBKeyRange.bound([ownerId], [ownerId, []]);
}

function asBytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export function checkChunkBytes(chunkBytes: number): void {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_RECORD_BYTES) {
    throw new RangeError(`chunkBytes must be an integer from 1 to ${MAX_RECORD_BYTES}, got ${chunkBytes}`);
  }
}

/** Queues the requests that replace blob (owner, name) with `data`. Always writes >= 1 chunk. */
export function queueBlobWrite<Names extends readonly StoreName[]>(
  store: ChunkStore<Names, 'readwrite'>,
  ownerId: string,
  name: string,
  data: ArrayBuffer | ArrayBufferView,
  chunkBytes: number,
): Promise<unknown>[] {
  const bytes = asBytes(data);
  const total = bytes.byteLength;
  const count = Math.max(1, Math.ceil(total / chunkBytes));
  const requests: Promise<unknown>[] = [];
  queue(requests, store.delete(blobRange(ownerId, name)));
  for (let index = 0; index < count; index++) {
    const start = index * chunkBytes;
    const piece = bytes.slice(start, Math.min(total, start + chunkBytes)).buffer;
    queue(requests, store.put({ ownerId, name, index, count, totalBytes: total, bytes: piece }));
  }
  return requests;
}

export async function readBlob<Names extends readonly StoreName[], Mode extends IDBTransactionMode>(
  store: ChunkStore<Names, Mode>,
  ownerId: string,
  name: string,
): Promise<ArrayBuffer | undefined> {
  const chunks = await store.getAll(blobRange(ownerId, name));
  const first = chunks[0];
  if (!first) return undefined;
  const out = new Uint8Array(first.totalBytes);
  let offset = 0;
  const whole =
    chunks.length === first.count &&
    chunks.every((c, i) => {
      if (c.index !== i || c.count !== first.count || offset + c.bytes.byteLength > out.byteLength)
        return false;
      out.set(new Uint8Array(c.bytes), offset);
      offset += c.bytes.byteLength;
      return true;
    }) &&
    offset === first.totalBytes;
  if (!whole) {
    throw new StorageError(
      `saved data "${ownerId}/${name}" is incomplete (${chunks.length} of ${first.count} chunks): delete it and save it again`,
    );
  }
  return out.buffer;
}

export function checkOwner(ownerId: string): void {
  if ([ADAPTER_OWNER, MODEL_OWNER, DATASET_OWNER].some((p) => ownerId.startsWith(p))) {
    throw new StorageError(
      `blob owner id "${ownerId}" is reserved for saved adapters, cached models and data sets: use another prefix`,
    );
  }
}
