/** The `adapters` store: metadata and adapter_config.json text; the weights in `chunks`. */
import { StorageError } from '../errors';
import type { PeftType } from '../peft/types';
import type { TaskType } from '../data/tasks/registry';
import { DEFAULT_CHUNK_BYTES, DEFAULT_DB_NAME, inTx, newestFirst, queue } from './db';
import type { BlobOptions } from './db';
import { ADAPTER_OWNER, checkChunkBytes, ownerRange, queueBlobWrite, readBlob } from './chunks';

/** A saved adapter, weights included (what `getAdapter` returns). */
export interface AdapterRecord {
  id: string;
  name: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** Id of the base model the adapter was trained on. */
  baseModel: string;
  peftType: PeftType;
  taskType: TaskType;
  /** Registry cliName of the method, e.g. "lora". */
  method: string;
  trainableParams: number;
  steps: number;
  finalLoss: number;
  /** adapter_config.json text. */
  configJson: string;
  /** adapter_model.safetensors bytes. */
  weights: ArrayBuffer;
  /** Weights plus config bytes; computed on save. */
  sizeBytes: number;
}

/** What `listAdapters` returns: everything but the weights. */
export type AdapterMeta = Omit<AdapterRecord, 'weights'>;
/** What `saveAdapterRecord` takes: `sizeBytes` may be given but is always recomputed from the bytes. */
export type AdapterInput = Omit<AdapterRecord, 'sizeBytes'> & { sizeBytes?: number };

const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).byteLength;
}

/** Saves (or replaces) an adapter: metadata and weights in one transaction. */
export async function saveAdapterRecord(
  rec: AdapterInput,
  opts: BlobOptions = {},
  dbName = DEFAULT_DB_NAME,
): Promise<AdapterMeta> {
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  checkChunkBytes(chunkBytes);
  const { weights, sizeBytes: _given, ...rest } = rec;
  const meta: AdapterMeta = {
    ...rest,
    sizeBytes: weights.byteLength + utf8Length(rec.configJson),
  };
  await inTx(
    dbName,
    ['adapters', 'chunks'],
    'readwrite',
    `save adapter "${rec.id}"`,
    (tx) => {
      const requests = queueBlobWrite(
        tx.objectStore('chunks'),
        ADAPTER_OWNER + rec.id,
        ADAPTER_WEIGHTS_NAME,
        weights,
        chunkBytes,
      );
      queue(requests, tx.objectStore('adapters').put(meta));
      return Promise.all(requests);
    },
    meta.sizeBytes,
  );
  return meta;
}

/** All saved adapters without their weights, newest first. */
export async function listAdapters(dbName = DEFAULT_DB_NAME): Promise<AdapterMeta[]> {
  const rows = await inTx(dbName, ['adapters'], 'readonly', 'list adapters', (tx) =>
    tx.objectStore('adapters').index('by-createdAt').getAll(),
  );
  return newestFirst(rows);
}

/** Adapters trained on one base model, newest first, without weights. */
export async function listAdaptersForModel(
  baseModel: string,
  dbName = DEFAULT_DB_NAME,
): Promise<AdapterMeta[]> {
  const rows = await inTx(dbName, ['adapters'], 'readonly', `list adapters of "${baseModel}"`, (tx) =>
    tx.objectStore('adapters').index('by-baseModel').getAll(baseModel),
  );
  return rows.sort((a, b) => b.createdAt - a.createdAt);
}

/** One adapter with its weights, or undefined when there is none with that id. */
export async function getAdapter(id: string, dbName = DEFAULT_DB_NAME): Promise<AdapterRecord | undefined> {
  return inTx(dbName, ['adapters', 'chunks'], 'readonly', `read adapter "${id}"`, async (tx) => {
    const [meta, weights] = await Promise.all([
      tx.objectStore('adapters').get(id),
      readBlob(tx.objectStore('chunks'), ADAPTER_OWNER + id, ADAPTER_WEIGHTS_NAME),
    ]);
    if (!meta) return undefined;
    if (!weights) {
      throw new StorageError(
        `saved adapter "${meta.name}" has lost its weights: delete it and train it again`,
      );
    }
    return { ...meta, weights };
  });
}

/** Deletes an adapter and its weights; false when there was none. */
export async function deleteAdapter(id: string, dbName = DEFAULT_DB_NAME): Promise<boolean> {
  return inTx(dbName, ['adapters', 'chunks'], 'readwrite', `delete adapter "${id}"`, async (tx) => {
    const adapters = tx.objectStore('adapters');
    const [key] = await Promise.all([
      adapters.getKey(id),
      adapters.delete(id),
      tx.objectStore('chunks').delete(ownerRange(ADAPTER_OWNER + id)),
    ]);
    return key !== undefined;
  });
}

/** Renames an adapter (metadata only; the weights are not touched). */
export async function renameAdapter(
  id: string,
  name: string,
  dbName = DEFAULT_DB_NAME,
): Promise<AdapterMeta> {
  const trimmed = name.trim();
  if (!trimmed) throw new StorageError(`adapter name is empty: give adapter "${id}" a name`);
  return inTx(dbName, ['adapters'], 'readwrite', `rename adapter "${id}"`, async (tx) => {
    const store = tx.objectStore('adapters');
    const meta = await store.get(id);
    if (!meta) throw new StorageError(`no saved adapter with id "${id}": it may have been deleted`);
    const renamed = { ...meta, name: trimmed };
    await store.put(renamed);
    return renamed;
  });
}
