/** The `models` store: cached model folders (Hub or local); file bytes in `chunks`. */
import { StorageError } from '../errors';
import { DEFAULT_CHUNK_BYTES, DEFAULT_DB_NAME, inTx, newestFirst, queue } from './db';
import type { BlobOptions } from './db';
import { MODEL_OWNER, checkChunkBytes, ownerRange, queueBlobWrite, readBlob } from './chunks';

/** A cached model folder (what `getModel` returns). */
export interface ModelRecord {
  id: string;
  source: 'hub' | 'local';
  /** File name (e.g. "model.safetensors", "config.json") -> bytes. */
  files: Record<string, ArrayBuffer>;
  sizeBytes: number;
  /** Milliseconds since the epoch. */
  addedAt: number;
}

/** What `listModels` returns: file names and sizes, no bytes. */
export interface ModelMeta {
  id: string;
  source: 'hub' | 'local';
  fileSizes: Record<string, number>;
  sizeBytes: number;
  addedAt: number;
}

/** What `saveModel` takes: sizes are computed; `addedAt` defaults to now. */
export interface ModelInput {
  id: string;
  source: 'hub' | 'local';
  files: Record<string, ArrayBuffer | ArrayBufferView>;
  addedAt?: number;
}

/** Caches a model folder (replacing one with the same id), all files in one transaction. */
export async function saveModel(
  rec: ModelInput,
  opts: BlobOptions = {},
  dbName = DEFAULT_DB_NAME,
): Promise<ModelMeta> {
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  checkChunkBytes(chunkBytes);
  const fileSizes: Record<string, number> = {};
  let sizeBytes = 0;
  for (const [file, data] of Object.entries(rec.files)) {
    fileSizes[file] = data.byteLength;
    sizeBytes += data.byteLength;
  }
  const meta: ModelMeta = {
    id: rec.id,
    source: rec.source,
    fileSizes,
    sizeBytes,
    addedAt: rec.addedAt ?? Date.now(),
  };
  const owner = MODEL_OWNER + rec.id;
  await inTx(
    dbName,
    ['models', 'chunks'],
    'readwrite',
    `cache model "${rec.id}"`,
    (tx) => {
      const chunks = tx.objectStore('chunks');
      const requests: Promise<unknown>[] = [];
      queue(requests, chunks.delete(ownerRange(owner)));
      for (const [file, data] of Object.entries(rec.files)) {
        requests.push(...queueBlobWrite(chunks, owner, file, data, chunkBytes));
      }
      queue(requests, tx.objectStore('models').put(meta));
      return Promise.all(requests);
    },
    sizeBytes,
  );
  return meta;
}

/** Cached models without their bytes, newest first. */
export async function listModels(dbName = DEFAULT_DB_NAME): Promise<ModelMeta[]> {
  const rows = await inTx(dbName, ['models'], 'readonly', 'list cached models', (tx) =>
    tx.objectStore('models').index('by-addedAt').getAll(),
  );
  return newestFirst(rows);
}

/** A cached model with every file's bytes, or undefined. */
export async function getModel(id: string, dbName = DEFAULT_DB_NAME): Promise<ModelRecord | undefined> {
  return inTx(dbName, ['models', 'chunks'], 'readonly', `read cached model "${id}"`, async (tx) => {
    const meta = await tx.objectStore('models').get(id);
    if (!meta) return undefined;
    const chunks = tx.objectStore('chunks');
    const names = Object.keys(meta.fileSizes);
    const datas = await Promise.all(names.map((n) => readBlob(chunks, MODEL_OWNER + id, n)));
    const files: Record<string, ArrayBuffer> = {};
    names.forEach((n, i) => {
      const data = datas[i];
      if (!data) {
        throw new StorageError(`cached model "${id}" has lost file ${n}: delete it and load it again`);
      }
      files[n] = data;
    });
    return { id: meta.id, source: meta.source, files, sizeBytes: meta.sizeBytes, addedAt: meta.addedAt };
  });
}

/** One file of a cached model (e.g. only config.json), or undefined. */
export async function getModelFile(
  id: string,
  file: string,
  dbName = DEFAULT_DB_NAME,
): Promise<ArrayBuffer | undefined> {
  return inTx(dbName, ['chunks'], 'readonly', `read ${file} of cached model "${id}"`, (tx) =>
    readBlob(tx.objectStore('chunks'), MODEL_OWNER + id, file),
  );
}

/** Deletes a cached model and its files; false when there was none. */
export async function deleteModel(id: string, dbName = DEFAULT_DB_NAME): Promise<boolean> {
  return inTx(dbName, ['models', 'chunks'], 'readwrite', `delete cached model "${id}"`, async (tx) => {
    const models = tx.objectStore('models');
    const [key] = await Promise.all([
      models.getKey(id),
      models.delete(id),
      tx.objectStore('chunks').delete(ownerRange(MODEL_OWNER + id)),
    ]);
    return key !== undefined;
  });
}
