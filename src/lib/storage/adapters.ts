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

/**
 * `name`, or the first of "name (2)", "name (3)"... that is not in `taken`: two adapters saved under
 * one name, by two tabs at once or one after the other, stay two, each findable by its own name.
 */
export function freeAdapterName(name: string, taken: Iterable<string>): string {
  const used = new Set(taken);
  if (!used.has(name)) return name;
  for (let n = 2; ; n++) {
    const candidate = `${name} (${n})`;
    if (!used.has(candidate)) return candidate;
  }
}

/**
 * Saves (or replaces, by id) an adapter: metadata and weights in one transaction. The name is made
 * free (freeAdapterName) inside that transaction, and IndexedDB runs readwrite transactions on one
 * store one at a time, across tabs too, so two saves never take one name; the returned metadata
 * carries the name given, which the caller shows when it differs from the one asked for.
 */
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
    async (tx) => {
      const store = tx.objectStore('adapters');
      // Names first, before any write, so a write that fails is the error the caller sees. Only a
      // request's result is awaited here, so the transaction stays open.
      const others = await store.getAll();
      meta.name = freeAdapterName(
        rec.name,
        others.filter((o) => o.id !== rec.id).map((o) => o.name),
      );
      const requests = queueBlobWrite(
        tx.objectStore('chunks'),
        ADAPTER_OWNER + rec.id,
        ADAPTER_WEIGHTS_NAME,
        weights,
        chunkBytes,
      );
      queue(requests, store.put(meta));
      return Promise.all(requests);
    },
    meta.sizeBytes,
  );
  announce(dbName);
  return meta;
}

// ---------------------------------------------------------------------------------------------
// Other tabs

/** Tabs of one origin tell each other that the list of saved adapters changed. */
const CHANNEL = 'peft-lab:adapters';
/** This module instance's id, so a tab does not answer its own announcements. */
const SELF = Math.random().toString(36).slice(2);

function announce(dbName: string): void {
  if (typeof BroadcastChannel === 'undefined') return;
  const channel = new BroadcastChannel(CHANNEL);
  channel.postMessage({ from: SELF, dbName });
  channel.close();
}

/**
 * Calls `changed` when another tab (or worker) saves or deletes an adapter in `dbName`, so its list
 * shows what that tab did. Returns the function that stops listening.
 */
export function onAdaptersChanged(changed: () => void, dbName = DEFAULT_DB_NAME): () => void {
  if (typeof BroadcastChannel === 'undefined') return () => undefined;
  const channel = new BroadcastChannel(CHANNEL);
  channel.onmessage = (e: MessageEvent<{ from?: unknown; dbName?: unknown }>) => {
    if (e.data.from !== SELF && e.data.dbName === dbName) changed();
  };
  // In Node (tests, the CLI) a listening channel would keep the process alive.
  (channel as { unref?: () => void }).unref?.();
  return () => channel.close();
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
  const deleted = await inTx(
    dbName,
    ['adapters', 'chunks'],
    'readwrite',
    `delete adapter "${id}"`,
    async (tx) => {
      const adapters = tx.objectStore('adapters');
      const [key] = await Promise.all([
        adapters.getKey(id),
        adapters.delete(id),
        tx.objectStore('chunks').delete(ownerRange(ADAPTER_OWNER + id)),
      ]);
      return key !== undefined;
    },
  );
  if (deleted) announce(dbName);
  return deleted;
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
