/**
 * A whole IndexedDB database as JSON and back, schema included (version, stores, key paths,
 * indexes), through the plain IndexedDB API: the schema-upgrade fixtures (fixtures/db-*.json, made
 * by scripts/make-db-fixtures.ts from the storage code of earlier commits) are dumps, and the test
 * restores each one as that version wrote it before the current code opens it. Bytes (ArrayBuffer)
 * are written as `{"$bytes": base64}`.
 */
import { InternalError } from '../errors';

export interface IndexDump {
  name: string;
  keyPath: string | string[];
  unique: boolean;
  multiEntry: boolean;
}

export interface StoreDump {
  name: string;
  keyPath: string | string[] | null;
  autoIncrement: boolean;
  indexes: IndexDump[];
  /** [key, value] in key order; values with bytes encoded. */
  records: [unknown, unknown][];
}

export interface DbDump {
  version: number;
  stores: StoreDump[];
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new InternalError('IndexedDB request failed'));
  });
}

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(s: string): ArrayBuffer {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

/** Values as JSON can hold them: ArrayBuffers become {"$bytes": base64}. */
export function encodeValue(v: unknown): unknown {
  if (v instanceof ArrayBuffer) return { $bytes: toBase64(new Uint8Array(v)) };
  if (ArrayBuffer.isView(v))
    throw new InternalError('typed arrays are not stored by PEFT Lab; store ArrayBuffers');
  if (Array.isArray(v)) return v.map(encodeValue);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encodeValue(x)]));
  }
  return v;
}

export function decodeValue(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decodeValue);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (typeof o.$bytes === 'string' && Object.keys(o).length === 1) return fromBase64(o.$bytes);
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, decodeValue(x)]));
  }
  return v;
}

/** Reads every store of database `name` (which must exist) with its schema and records. */
export async function dumpDatabase(factory: IDBFactory, name: string): Promise<DbDump> {
  const db = await request(factory.open(name));
  try {
    const names = [...db.objectStoreNames].sort();
    const tx = db.transaction(names, 'readonly');
    const stores: StoreDump[] = [];
    for (const s of names) {
      const store = tx.objectStore(s);
      const [keys, values] = await Promise.all([request(store.getAllKeys()), request(store.getAll())]);
      stores.push({
        name: s,
        keyPath: store.keyPath,
        autoIncrement: store.autoIncrement,
        indexes: [...store.indexNames].sort().map((i) => {
          const idx = store.index(i);
          return { name: i, keyPath: idx.keyPath, unique: idx.unique, multiEntry: idx.multiEntry };
        }),
        records: keys.map((k, i) => [encodeValue(k), encodeValue(values[i])]),
      });
    }
    return { version: db.version, stores };
  } finally {
    db.close();
  }
}

/** Creates database `name` (which must not exist) exactly as dumped: its version, stores, indexes, records. */
export async function restoreDatabase(factory: IDBFactory, name: string, dump: DbDump): Promise<void> {
  const open = factory.open(name, dump.version);
  open.onupgradeneeded = () => {
    const db = open.result;
    for (const s of dump.stores) {
      const store = db.createObjectStore(s.name, {
        ...(s.keyPath === null ? {} : { keyPath: s.keyPath }),
        autoIncrement: s.autoIncrement,
      });
      for (const i of s.indexes)
        store.createIndex(i.name, i.keyPath, { unique: i.unique, multiEntry: i.multiEntry });
      for (const [k, v] of s.records) {
        if (s.keyPath === null) store.put(decodeValue(v), decodeValue(k) as IDBValidKey);
        else store.put(decodeValue(v));
      }
    }
  };
  const db = await request(open);
  db.close();
}
