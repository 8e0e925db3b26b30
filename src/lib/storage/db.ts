/**
 * The one owner of IndexedDB (ARCHITECTURE.md, habit 4). Everything else sees narrow functions
 * (save/list/get an adapter, put/get a blob, a setting); no idb type leaves this file.
 *
 * Layout (version 2; version 1 had every store but `datasets`, and upgrades keep its data):
 * - `adapters`: adapter metadata plus adapter_config.json text, keyed by `id`. The weights are NOT
 *   in this record: they live in `chunks` (owner `adapter:<id>`), so `listAdapters()` reads no weight
 *   bytes, and a full fine-tune's weights (hundreds of MB) still stay under the record size limit.
 * - `models`: cached model folders (Hub or local), metadata keyed by `id`; file bytes in `chunks`
 *   (owner `model:<id>`, one blob per file name).
 * - `chunks`: blobs split into records of at most `chunkBytes` (default 32 MiB), keyed
 *   [ownerId, name, index]. In Chromium a single record of 128 MiB or more fails (ENVIRONMENT.md),
 *   so no record here may exceed MAX_RECORD_BYTES.
 * - `kv`: small JSON settings (e.g. the chosen backend), keyed by string.
 * - `datasets` (version 2): imported data sets, metadata (counts, labels, preview) keyed by `id`; the
 *   split files in `chunks` (owner `dataset:<id>`, one blob per split file name).
 *
 * Every write is one readwrite transaction over all the stores it touches; on any failure the
 * transaction is aborted, so what was saved before is left exactly as it was.
 */
import {
  openDB,
  deleteDB,
  type DBSchema,
  type IDBPDatabase,
  type IDBPObjectStore,
  type IDBPTransaction,
  type StoreNames,
} from 'idb';
import { StorageError } from '../errors';
import type { PeftType } from '../peft/types';
import type { TaskType } from '../data/tasks/registry';
import type { DatasetMeta } from '../data/imported';

// ---------------------------------------------------------------------------------------------
// Public types

export const DEFAULT_DB_NAME = 'peft-lab';
/** Bump when a store or index is added, and add a `case` to `upgradeFrom` below. */
export const LAB_DB_VERSION = 2;
/** Default size of one chunk record: well under the 64 MiB cap, large enough to keep counts small. */
export const DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024;
/** No record may exceed this (ENVIRONMENT.md: 128 MiB records fail; we keep a 2x margin). */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

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

/** What `saveDataset` takes: the metadata but its sizes (computed from the files). */
export type DatasetInput = Omit<DatasetMeta, 'sizeBytes' | 'fileSizes'>;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface StorageEstimate {
  usageBytes: number;
  quotaBytes: number;
}

/** What `blobUsage` returns: one owner's blobs and their total size. */
export interface BlobUsage {
  ownerId: string;
  blobs: number;
  bytes: number;
}

export interface BlobOptions {
  /** Bytes per chunk record (tests use a small value); default DEFAULT_CHUNK_BYTES. */
  chunkBytes?: number;
}

// ---------------------------------------------------------------------------------------------
// Schema (private)

interface ChunkRecord {
  ownerId: string;
  name: string;
  index: number;
  /** How many chunks the blob has, and its total size: lets a read tell a torn blob from a whole one. */
  count: number;
  totalBytes: number;
  bytes: ArrayBuffer;
}

type StoredAdapter = AdapterMeta;
type StoredModel = ModelMeta;

interface LabSchema extends DBSchema {
  adapters: {
    key: string;
    value: StoredAdapter;
    indexes: { 'by-createdAt': number; 'by-baseModel': string };
  };
  models: {
    key: string;
    value: StoredModel;
    indexes: { 'by-addedAt': number };
  };
  chunks: {
    key: [string, string, number];
    value: ChunkRecord;
  };
  kv: {
    key: string;
    value: JsonValue;
  };
  datasets: {
    key: string;
    value: DatasetMeta;
    indexes: { 'by-addedAt': number };
  };
}

type StoreName = StoreNames<LabSchema>;
type Conn = IDBPDatabase<LabSchema>;

const ADAPTER_OWNER = 'adapter:';
const MODEL_OWNER = 'model:';
const DATASET_OWNER = 'dataset:';
const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';

/**
 * Versioned upgrades. Each `case v` upgrades from v to v+1; the loop runs every step from the
 * stored version up to LAB_DB_VERSION, so a v1 database opened by a v3 app gets steps 1 and 2 and
 * keeps its data. (This is the classic `switch (oldVersion)` fall-through; tsconfig's
 * noFallthroughCasesInSwitch forbids literal fall-through, so the loop does the falling.)
 */
function upgradeFrom(
  db: Conn,
  oldVersion: number,
  _tx: IDBPTransaction<LabSchema, StoreName[], 'versionchange'>,
): void {
  for (let v = oldVersion; v < LAB_DB_VERSION; v++) {
    switch (v) {
      case 0: {
        const adapters = db.createObjectStore('adapters', { keyPath: 'id' });
        adapters.createIndex('by-createdAt', 'createdAt');
        adapters.createIndex('by-baseModel', 'baseModel');
        const models = db.createObjectStore('models', { keyPath: 'id' });
        models.createIndex('by-addedAt', 'addedAt');
        db.createObjectStore('chunks', { keyPath: ['ownerId', 'name', 'index'] });
        db.createObjectStore('kv');
        break;
      }
      case 1: {
        // Version 2 adds imported data sets; the other stores and their records stay as they are.
        const datasets = db.createObjectStore('datasets', { keyPath: 'id' });
        datasets.createIndex('by-addedAt', 'addedAt');
        break;
      }
      // case 2: { ...add version 3's stores/indexes; migrate records through _tx... break; }
      default:
        throw new Error(`no upgrade step from database version ${v}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Connections, cached per database name

const connections = new Map<string, Promise<Conn>>();

function connect(name: string): Promise<Conn> {
  const cached = connections.get(name);
  if (cached) return cached;
  if (typeof indexedDB === 'undefined') {
    return Promise.reject(
      new StorageError(
        'IndexedDB is not available here (private browsing or an old browser): nothing can be saved',
      ),
    );
  }
  const forget = (): void => {
    if (connections.get(name) === opening) connections.delete(name);
  };
  const opening: Promise<Conn> = openDB<LabSchema>(name, LAB_DB_VERSION, {
    upgrade(db, oldVersion, _newVersion, tx) {
      upgradeFrom(db, oldVersion, tx);
    },
    // Another tab wants a newer version: step aside so it can upgrade; the next call reopens.
    blocking() {
      forget();
      void opening.then((db) => db.close());
    },
    // The browser closed the connection (storage cleared, say): the next call reopens.
    terminated() {
      forget();
    },
  }).catch(async (e: unknown) => {
    forget();
    throw await toStorageError(e, `database "${name}"`, 'open the database');
  });
  connections.set(name, opening);
  return opening;
}

/** Closes the cached connection for `name`, or all of them (tests, before deleting a database). */
export async function closeLabDb(name?: string): Promise<void> {
  const names = name === undefined ? [...connections.keys()] : [name];
  for (const n of names) {
    const p = connections.get(n);
    connections.delete(n);
    if (p) {
      try {
        (await p).close();
      } catch {
        // it never opened; nothing to close
      }
    }
  }
}

/** Deletes the whole database (every adapter, cached model, blob and setting). */
export async function deleteLabDb(name = DEFAULT_DB_NAME): Promise<void> {
  await closeLabDb(name);
  try {
    await deleteDB(name);
  } catch (e) {
    throw await toStorageError(e, `database "${name}"`, 'delete the database');
  }
}

// ---------------------------------------------------------------------------------------------
// Errors

const MiB = 1024 * 1024;

function isQuotaError(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const { name, code } = e as { name?: unknown; code?: unknown };
  // 22 is the legacy DOMException code; NS_ERROR_DOM_QUOTA_REACHED is old Firefox's name.
  return name === 'QuotaExceededError' || name === 'NS_ERROR_DOM_QUOTA_REACHED' || code === 22;
}

function formatMb(bytes: number): string {
  const mb = bytes / MiB;
  return mb < 10 ? mb.toFixed(1) : mb.toFixed(0);
}

function describe(e: unknown): string {
  if (e instanceof Error || (typeof e === 'object' && e !== null && 'message' in e)) {
    const { name, message } = e as { name?: unknown; message?: unknown };
    const n = typeof name === 'string' && name ? name : 'Error';
    return message ? `${n}: ${String(message)}` : n;
  }
  return String(e);
}

/** `store` reads like 'store "adapters"' or 'stores "adapters", "chunks"'. */
async function toStorageError(e: unknown, store: string, op: string): Promise<StorageError> {
  if (e instanceof StorageError) return e;
  let err: StorageError;
  if (isQuotaError(e)) {
    const est = await storageEstimate();
    const used = est ? ` (used ${formatMb(est.usageBytes)} of ${formatMb(est.quotaBytes)} MB)` : '';
    err = new StorageError(
      `storage is full${used}: delete saved adapters (Lab), cached models (Models) or imported data sets (Data), then try again; nothing already saved was changed`,
    );
  } else if (typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'VersionError') {
    err = new StorageError(
      `the saved data was written by a newer PEFT Lab than this one (database version above ${LAB_DB_VERSION}): reload the page to get the newer app`,
    );
  } else {
    err = new StorageError(`could not ${op} (IndexedDB ${store}): ${describe(e)}`);
  }
  err.cause = e;
  return err;
}

// ---------------------------------------------------------------------------------------------
// Transactions

/**
 * Runs `fn` inside one transaction over `stores`. Issue requests only (no other awaits) inside `fn`,
 * or the transaction auto-commits early. On any failure, thrown or from a request, the transaction
 * is aborted (nothing it wrote is kept) and the error comes out as a StorageError.
 */
async function inTx<const Names extends readonly StoreName[], Mode extends IDBTransactionMode, T>(
  dbName: string,
  stores: Names,
  mode: Mode,
  op: string,
  fn: (tx: IDBPTransaction<LabSchema, Names, Mode>) => Promise<T>,
): Promise<T> {
  const db = await connect(dbName);
  const where = `${stores.length > 1 ? 'stores' : 'store'} ${stores.map((s) => `"${s}"`).join(', ')}`;
  let tx: IDBPTransaction<LabSchema, Names, Mode>;
  try {
    tx = db.transaction(stores, mode);
  } catch (e) {
    throw await toStorageError(e, where, op);
  }
  const done = tx.done;
  done.catch(() => undefined); // observed below; silences the unhandled rejection after an abort
  try {
    const result = await fn(tx);
    await done;
    return result;
  } catch (e) {
    try {
      tx.abort();
    } catch {
      // already aborted (a failed request aborts it) or finished
    }
    throw await toStorageError(e, where, op);
  }
}

/** The `chunks` store as seen from a transaction over `Names` (which includes "chunks"). */
type ChunkStore<Names extends readonly StoreName[], Mode extends IDBTransactionMode> = IDBPObjectStore<
  LabSchema,
  Names,
  'chunks',
  Mode
>;

function blobRange(ownerId: string, name: string): IDBKeyRange {
  // Arrays sort after every number, so [owner, name, []] is above every [owner, name, index].
  return IDBKeyRange.bound([ownerId, name], [ownerId, name, []]);
}

function ownerRange(ownerId: string): IDBKeyRange {
  // Arrays sort after every string, so [owner, []] is above every [owner, name, index].
  return IDBKeyRange.bound([ownerId], [ownerId, []]);
}

function asBytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function checkChunkBytes(chunkBytes: number): void {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_RECORD_BYTES) {
    throw new RangeError(`chunkBytes must be an integer from 1 to ${MAX_RECORD_BYTES}, got ${chunkBytes}`);
  }
}

/** Queues the requests that replace blob (owner, name) with `data`. Always writes >= 1 chunk. */
function queueBlobWrite<Names extends readonly StoreName[]>(
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

async function readBlob<Names extends readonly StoreName[], Mode extends IDBTransactionMode>(
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

function checkOwner(ownerId: string): void {
  if ([ADAPTER_OWNER, MODEL_OWNER, DATASET_OWNER].some((p) => ownerId.startsWith(p))) {
    throw new StorageError(
      `blob owner id "${ownerId}" is reserved for saved adapters, cached models and data sets: use another prefix`,
    );
  }
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).byteLength;
}

/** Rows read in ascending index order, newest first. */
function newestFirst<T>(rows: T[]): T[] {
  return rows.reverse();
}

/**
 * Adds a request to `list`, observing its rejection: if a later request throws and the transaction
 * is aborted, requests already queued reject with AbortError, and those rejections must not surface
 * as unhandled. (The first real error still reaches the caller through Promise.all or the tx.)
 */
function queue(list: Promise<unknown>[], request: Promise<unknown>): void {
  request.catch(() => undefined);
  list.push(request);
}

// ---------------------------------------------------------------------------------------------
// The handle

/**
 * Narrow operations on one named database. `openLabDb(name)` gives one; the module-level functions
 * below use the default database.
 */
export class LabDb {
  constructor(readonly name: string) {}

  // -- adapters

  /** Saves (or replaces) an adapter: metadata and weights in one transaction. */
  async saveAdapterRecord(rec: AdapterInput, opts: BlobOptions = {}): Promise<AdapterMeta> {
    const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    checkChunkBytes(chunkBytes);
    const { weights, sizeBytes: _given, ...rest } = rec;
    const meta: AdapterMeta = {
      ...rest,
      sizeBytes: weights.byteLength + utf8Length(rec.configJson),
    };
    await inTx(this.name, ['adapters', 'chunks'], 'readwrite', `save adapter "${rec.id}"`, (tx) => {
      const requests = queueBlobWrite(
        tx.objectStore('chunks'),
        ADAPTER_OWNER + rec.id,
        ADAPTER_WEIGHTS_NAME,
        weights,
        chunkBytes,
      );
      queue(requests, tx.objectStore('adapters').put(meta));
      return Promise.all(requests);
    });
    return meta;
  }

  /** All saved adapters without their weights, newest first. */
  async listAdapters(): Promise<AdapterMeta[]> {
    const rows = await inTx(this.name, ['adapters'], 'readonly', 'list adapters', (tx) =>
      tx.objectStore('adapters').index('by-createdAt').getAll(),
    );
    return newestFirst(rows);
  }

  /** Adapters trained on one base model, newest first, without weights. */
  async listAdaptersForModel(baseModel: string): Promise<AdapterMeta[]> {
    const rows = await inTx(this.name, ['adapters'], 'readonly', `list adapters of "${baseModel}"`, (tx) =>
      tx.objectStore('adapters').index('by-baseModel').getAll(baseModel),
    );
    return rows.sort((a, b) => b.createdAt - a.createdAt);
  }

  /** One adapter with its weights, or undefined when there is none with that id. */
  async getAdapter(id: string): Promise<AdapterRecord | undefined> {
    return inTx(this.name, ['adapters', 'chunks'], 'readonly', `read adapter "${id}"`, async (tx) => {
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
  async deleteAdapter(id: string): Promise<boolean> {
    return inTx(this.name, ['adapters', 'chunks'], 'readwrite', `delete adapter "${id}"`, async (tx) => {
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
  async renameAdapter(id: string, name: string): Promise<AdapterMeta> {
    const trimmed = name.trim();
    if (!trimmed) throw new StorageError(`adapter name is empty: give adapter "${id}" a name`);
    return inTx(this.name, ['adapters'], 'readwrite', `rename adapter "${id}"`, async (tx) => {
      const store = tx.objectStore('adapters');
      const meta = await store.get(id);
      if (!meta) throw new StorageError(`no saved adapter with id "${id}": it may have been deleted`);
      const renamed = { ...meta, name: trimmed };
      await store.put(renamed);
      return renamed;
    });
  }

  // -- cached models

  /** Caches a model folder (replacing one with the same id), all files in one transaction. */
  async saveModel(rec: ModelInput, opts: BlobOptions = {}): Promise<ModelMeta> {
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
    await inTx(this.name, ['models', 'chunks'], 'readwrite', `cache model "${rec.id}"`, (tx) => {
      const chunks = tx.objectStore('chunks');
      const requests: Promise<unknown>[] = [];
      queue(requests, chunks.delete(ownerRange(owner)));
      for (const [file, data] of Object.entries(rec.files)) {
        requests.push(...queueBlobWrite(chunks, owner, file, data, chunkBytes));
      }
      queue(requests, tx.objectStore('models').put(meta));
      return Promise.all(requests);
    });
    return meta;
  }

  /** Cached models without their bytes, newest first. */
  async listModels(): Promise<ModelMeta[]> {
    const rows = await inTx(this.name, ['models'], 'readonly', 'list cached models', (tx) =>
      tx.objectStore('models').index('by-addedAt').getAll(),
    );
    return newestFirst(rows);
  }

  /** A cached model with every file's bytes, or undefined. */
  async getModel(id: string): Promise<ModelRecord | undefined> {
    return inTx(this.name, ['models', 'chunks'], 'readonly', `read cached model "${id}"`, async (tx) => {
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
  async getModelFile(id: string, file: string): Promise<ArrayBuffer | undefined> {
    return inTx(this.name, ['chunks'], 'readonly', `read ${file} of cached model "${id}"`, (tx) =>
      readBlob(tx.objectStore('chunks'), MODEL_OWNER + id, file),
    );
  }

  /** Deletes a cached model and its files; false when there was none. */
  async deleteModel(id: string): Promise<boolean> {
    return inTx(this.name, ['models', 'chunks'], 'readwrite', `delete cached model "${id}"`, async (tx) => {
      const models = tx.objectStore('models');
      const [key] = await Promise.all([
        models.getKey(id),
        models.delete(id),
        tx.objectStore('chunks').delete(ownerRange(MODEL_OWNER + id)),
      ]);
      return key !== undefined;
    });
  }

  // -- imported data sets

  /**
   * Stores an imported data set: its metadata and split files (name -> bytes) in one transaction,
   * so a failure (a full disk, say) leaves every data set saved before exactly as it was.
   */
  async saveDataset(
    rec: DatasetInput,
    files: Record<string, ArrayBuffer | ArrayBufferView>,
    opts: BlobOptions = {},
  ): Promise<DatasetMeta> {
    const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    checkChunkBytes(chunkBytes);
    const fileSizes: Record<string, number> = {};
    let sizeBytes = 0;
    for (const [file, data] of Object.entries(files)) {
      fileSizes[file] = data.byteLength;
      sizeBytes += data.byteLength;
    }
    const meta: DatasetMeta = { ...rec, fileSizes, sizeBytes };
    const owner = DATASET_OWNER + rec.id;
    await inTx(this.name, ['datasets', 'chunks'], 'readwrite', `save data set "${rec.name}"`, (tx) => {
      const chunks = tx.objectStore('chunks');
      const requests: Promise<unknown>[] = [];
      queue(requests, chunks.delete(ownerRange(owner)));
      for (const [file, data] of Object.entries(files)) {
        requests.push(...queueBlobWrite(chunks, owner, file, data, chunkBytes));
      }
      queue(requests, tx.objectStore('datasets').put(meta));
      return Promise.all(requests);
    });
    return meta;
  }

  /** Imported data sets (metadata only), newest first. */
  async listDatasets(): Promise<DatasetMeta[]> {
    const rows = await inTx(this.name, ['datasets'], 'readonly', 'list data sets', (tx) =>
      tx.objectStore('datasets').index('by-addedAt').getAll(),
    );
    return newestFirst(rows);
  }

  /** One data set's metadata, or undefined. */
  async getDataset(id: string): Promise<DatasetMeta | undefined> {
    return inTx(this.name, ['datasets'], 'readonly', `read data set "${id}"`, (tx) =>
      tx.objectStore('datasets').get(id),
    );
  }

  /** One split file of a data set, or undefined when the data set or the file is not there. */
  async getDatasetFile(id: string, file: string): Promise<ArrayBuffer | undefined> {
    return inTx(this.name, ['chunks'], 'readonly', `read ${file} of data set "${id}"`, (tx) =>
      readBlob(tx.objectStore('chunks'), DATASET_OWNER + id, file),
    );
  }

  /** Deletes a data set and its files; false when there was none. */
  async deleteDataset(id: string): Promise<boolean> {
    return inTx(this.name, ['datasets', 'chunks'], 'readwrite', `delete data set "${id}"`, async (tx) => {
      const datasets = tx.objectStore('datasets');
      const [key] = await Promise.all([
        datasets.getKey(id),
        datasets.delete(id),
        tx.objectStore('chunks').delete(ownerRange(DATASET_OWNER + id)),
      ]);
      return key !== undefined;
    });
  }

  // -- blobs (offload pages, checkpoints, ...)

  /**
   * Stores `bytes` as blob (ownerId, name), split into records of at most `chunkBytes`; replaces
   * any blob of that name atomically. Owner ids starting "adapter:" or "model:" are reserved.
   */
  async putBlob(
    ownerId: string,
    name: string,
    bytes: ArrayBuffer | ArrayBufferView,
    opts: BlobOptions = {},
  ): Promise<void> {
    checkOwner(ownerId);
    const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    checkChunkBytes(chunkBytes);
    await inTx(this.name, ['chunks'], 'readwrite', `save "${ownerId}/${name}"`, (tx) =>
      Promise.all(queueBlobWrite(tx.objectStore('chunks'), ownerId, name, bytes, chunkBytes)),
    );
  }

  /** The bytes of blob (ownerId, name), or undefined when there is none. */
  async getBlob(ownerId: string, name: string): Promise<ArrayBuffer | undefined> {
    return inTx(this.name, ['chunks'], 'readonly', `read "${ownerId}/${name}"`, (tx) =>
      readBlob(tx.objectStore('chunks'), ownerId, name),
    );
  }

  /** Deletes blob (ownerId, name); nothing happens when there is none. */
  async deleteBlob(ownerId: string, name: string): Promise<void> {
    checkOwner(ownerId);
    await inTx(this.name, ['chunks'], 'readwrite', `delete "${ownerId}/${name}"`, (tx) =>
      tx.objectStore('chunks').delete(blobRange(ownerId, name)),
    );
  }

  /** Deletes every blob of `ownerId`. */
  async deleteBlobs(ownerId: string): Promise<void> {
    checkOwner(ownerId);
    await inTx(this.name, ['chunks'], 'readwrite', `delete the data of "${ownerId}"`, (tx) =>
      tx.objectStore('chunks').delete(ownerRange(ownerId)),
    );
  }

  /**
   * Bytes held by the blobs of each owner whose id starts with `prefix` (e.g. "offload:"), for the
   * Storage screen. Walks the chunk keys and reads only each blob's first chunk (it carries the blob's
   * total size), so a listing reads at most one chunk record per blob.
   */
  async blobUsage(prefix: string): Promise<BlobUsage[]> {
    return inTx(this.name, ['chunks'], 'readonly', `measure the data of "${prefix}*"`, async (tx) => {
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

  // -- settings

  /** A setting, or undefined when unset. The caller vouches for T (settings are ours to write). */
  async getSetting<T extends JsonValue = JsonValue>(key: string): Promise<T | undefined> {
    const v = await inTx(this.name, ['kv'], 'readonly', `read setting "${key}"`, (tx) =>
      tx.objectStore('kv').get(key),
    );
    return v as T | undefined;
  }

  async setSetting(key: string, value: JsonValue): Promise<void> {
    await inTx(this.name, ['kv'], 'readwrite', `save setting "${key}"`, (tx) =>
      tx.objectStore('kv').put(value, key),
    );
  }

  async deleteSetting(key: string): Promise<void> {
    await inTx(this.name, ['kv'], 'readwrite', `delete setting "${key}"`, (tx) =>
      tx.objectStore('kv').delete(key),
    );
  }
}

const handles = new Map<string, LabDb>();

/** Opens (once per name, then cached) the database, running any upgrades; rejects with StorageError. */
export async function openLabDb(name = DEFAULT_DB_NAME): Promise<LabDb> {
  await connect(name);
  let h = handles.get(name);
  if (!h) {
    h = new LabDb(name);
    handles.set(name, h);
  }
  return h;
}

// ---------------------------------------------------------------------------------------------
// The default database as plain functions

const defaultDb = new LabDb(DEFAULT_DB_NAME);
handles.set(DEFAULT_DB_NAME, defaultDb);
/** The default handle; it connects (and reconnects after closeLabDb) on each call's first use. */
const db = (): LabDb => defaultDb;

export const saveAdapterRecord = (rec: AdapterInput, opts?: BlobOptions): Promise<AdapterMeta> =>
  db().saveAdapterRecord(rec, opts);
export const listAdapters = (): Promise<AdapterMeta[]> => db().listAdapters();
export const listAdaptersForModel = (baseModel: string): Promise<AdapterMeta[]> =>
  db().listAdaptersForModel(baseModel);
export const getAdapter = (id: string): Promise<AdapterRecord | undefined> => db().getAdapter(id);
export const deleteAdapter = (id: string): Promise<boolean> => db().deleteAdapter(id);
export const renameAdapter = (id: string, name: string): Promise<AdapterMeta> => db().renameAdapter(id, name);

export const saveModel = (rec: ModelInput, opts?: BlobOptions): Promise<ModelMeta> =>
  db().saveModel(rec, opts);
export const listModels = (): Promise<ModelMeta[]> => db().listModels();
export const getModel = (id: string): Promise<ModelRecord | undefined> => db().getModel(id);
export const getModelFile = (id: string, file: string): Promise<ArrayBuffer | undefined> =>
  db().getModelFile(id, file);
export const deleteModel = (id: string): Promise<boolean> => db().deleteModel(id);

export const saveDataset = (
  rec: DatasetInput,
  files: Record<string, ArrayBuffer | ArrayBufferView>,
  opts?: BlobOptions,
): Promise<DatasetMeta> => db().saveDataset(rec, files, opts);
export const listDatasets = (): Promise<DatasetMeta[]> => db().listDatasets();
export const getDataset = (id: string): Promise<DatasetMeta | undefined> => db().getDataset(id);
export const getDatasetFile = (id: string, file: string): Promise<ArrayBuffer | undefined> =>
  db().getDatasetFile(id, file);
export const deleteDataset = (id: string): Promise<boolean> => db().deleteDataset(id);

export const putBlob = (
  ownerId: string,
  name: string,
  bytes: ArrayBuffer | ArrayBufferView,
  opts?: BlobOptions,
): Promise<void> => db().putBlob(ownerId, name, bytes, opts);
export const getBlob = (ownerId: string, name: string): Promise<ArrayBuffer | undefined> =>
  db().getBlob(ownerId, name);
export const deleteBlobs = (ownerId: string): Promise<void> => db().deleteBlobs(ownerId);
export const blobUsage = (prefix: string): Promise<BlobUsage[]> => db().blobUsage(prefix);

export const getSetting = <T extends JsonValue = JsonValue>(key: string): Promise<T | undefined> =>
  db().getSetting<T>(key);
export const setSetting = (key: string, value: JsonValue): Promise<void> => db().setSetting(key, value);
export const deleteSetting = (key: string): Promise<void> => db().deleteSetting(key);

// ---------------------------------------------------------------------------------------------
// Quota and persistence (no database needed)

/** navigator.storage.estimate() in bytes, or null where the browser (or Node) has none. */
export async function storageEstimate(): Promise<StorageEstimate | null> {
  try {
    const storage = typeof navigator === 'undefined' ? undefined : navigator.storage;
    if (!storage || typeof storage.estimate !== 'function') return null;
    const { usage, quota } = await storage.estimate();
    if (usage === undefined || quota === undefined) return null;
    return { usageBytes: usage, quotaBytes: quota };
  } catch {
    return null;
  }
}

/** Whether the browser has made our storage persistent (never evicted); false where unknown. */
export async function isPersisted(): Promise<boolean> {
  try {
    const storage = typeof navigator === 'undefined' ? undefined : navigator.storage;
    if (!storage || typeof storage.persisted !== 'function') return false;
    return await storage.persisted();
  } catch {
    return false;
  }
}

/**
 * Asks the browser not to evict our data under storage pressure. True when storage is (now)
 * persistent; false when refused or unsupported (headless Chromium always refuses).
 */
export async function requestPersistence(): Promise<boolean> {
  try {
    const storage = typeof navigator === 'undefined' ? undefined : navigator.storage;
    if (!storage || typeof storage.persist !== 'function') return false;
    if (typeof storage.persisted === 'function' && (await storage.persisted())) return true;
    return await storage.persist();
  } catch {
    return false;
  }
}
