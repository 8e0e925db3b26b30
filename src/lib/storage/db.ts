/**
 * The one owner of IndexedDB (ARCHITECTURE.md, habit 4): the schema, its versioned upgrades, the
 * one connection per database name, and the transaction every store module runs through. Each
 * store has its module beside this one (adapters.ts, models.ts, datasets.ts, blobs.ts for offload
 * pages and checkpoints, settings.ts for `kv`), and handle.ts gives a named database's narrow
 * handle; no idb type leaves storage/.
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
  type IDBPTransaction,
  type StoreNames,
} from 'idb';
import { InternalError, StorageError } from '../errors';
import type { DatasetMeta } from '../data/imported';
import type { AdapterMeta } from './adapters';
import type { ModelMeta } from './models';
import { storageEstimate } from './quota';

export const DEFAULT_DB_NAME = 'peft-lab';
/** Bump when a store or index is added, and add a `case` to `upgradeFrom` below. */
export const LAB_DB_VERSION = 2;
/** Default size of one chunk record: well under the 64 MiB cap, large enough to keep counts small. */
export const DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024;
/** No record may exceed this (ENVIRONMENT.md: 128 MiB records fail; we keep a 2x margin). */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface BlobOptions {
  /** Bytes per chunk record (tests use a small value); default DEFAULT_CHUNK_BYTES. */
  chunkBytes?: number;
}

// ---------------------------------------------------------------------------------------------
// Schema

export interface ChunkRecord {
  ownerId: string;
  name: string;
  index: number;
  /** How many chunks the blob has, and its total size: lets a read tell a torn blob from a whole one. */
  count: number;
  totalBytes: number;
  bytes: ArrayBuffer;
}

export interface LabSchema extends DBSchema {
  adapters: {
    key: string;
    value: AdapterMeta;
    indexes: { 'by-createdAt': number; 'by-baseModel': string };
  };
  models: {
    key: string;
    value: ModelMeta;
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

export type StoreName = StoreNames<LabSchema>;
type Conn = IDBPDatabase<LabSchema>;

// ---------------------------------------------------------------------------------------------
// Upgrades, connections, errors

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
        throw new InternalError(`no upgrade step from database version ${v}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Connections, cached per database name

const connections = new Map<string, Promise<Conn>>();

export function connect(name: string): Promise<Conn> {
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

/**
 * `store` reads like 'store "adapters"' or 'stores "adapters", "chunks"'; `bytes` is what the write
 * that failed was storing, so a full disk says how much room it needs.
 */
export async function toStorageError(
  e: unknown,
  store: string,
  op: string,
  bytes?: number,
): Promise<StorageError> {
  if (e instanceof StorageError) return e;
  let err: StorageError;
  if (isQuotaError(e)) {
    const est = await storageEstimate();
    const used = est ? ` (used ${formatMb(est.usageBytes)} of ${formatMb(est.quotaBytes)} MB)` : '';
    const size =
      bytes === undefined ? '' : bytes < MiB ? `${Math.ceil(bytes / 1024)} KB` : `${formatMb(bytes)} MB`;
    const need = size ? ` to ${op}, which needs ${size}` : '';
    err = new StorageError(
      `storage is full${used}${need}: delete saved adapters (Lab), cached models (Models) or imported data sets (Data), then try again; nothing already saved was changed`,
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
 * is aborted (nothing it wrote is kept) and the error comes out as a StorageError. A write passes
 * `bytes`, what it stores, for the message when storage is full.
 */
export async function inTx<const Names extends readonly StoreName[], Mode extends IDBTransactionMode, T>(
  dbName: string,
  stores: Names,
  mode: Mode,
  op: string,
  fn: (tx: IDBPTransaction<LabSchema, Names, Mode>) => Promise<T>,
  bytes?: number,
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
    throw await toStorageError(e, where, op, bytes);
  }
}

/** Rows read in ascending index order, newest first. */
export function newestFirst<T>(rows: T[]): T[] {
  return rows.reverse();
}

/**
 * Adds a request to `list`, observing its rejection: if a later request throws and the transaction
 * is aborted, requests already queued reject with AbortError, and those rejections must not surface
 * as unhandled. (The first real error still reaches the caller through Promise.all or the tx.)
 */
export function queue(list: Promise<unknown>[], request: Promise<unknown>): void {
  request.catch(() => undefined);
  list.push(request);
}
