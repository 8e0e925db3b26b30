import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { openDB } from 'idb';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StorageError } from '../errors';
import {
  deleteAdapter,
  getAdapter,
  listAdapters,
  listAdaptersForModel,
  renameAdapter,
  saveAdapterRecord,
} from './adapters';
import type { AdapterInput } from './adapters';
import { deleteBlobs, getBlob, putBlob } from './blobs';
import { deleteDataset, getDataset, getDatasetFile, listDatasets, saveDataset } from './datasets';
import { DEFAULT_CHUNK_BYTES, DEFAULT_DB_NAME, LAB_DB_VERSION, closeLabDb, deleteLabDb } from './db';
import { openLabDb } from './handle';
import { deleteModel, getModel, getModelFile, listModels, saveModel } from './models';
import { requestPersistence, storageEstimate } from './quota';
import { deleteSetting, getSetting, setSetting } from './settings';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Deterministic, non-constant bytes (so a misplaced chunk shows). */
function bytes(n: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function adapter(id: string, createdAt: number, over: Partial<AdapterInput> = {}): AdapterInput {
  return {
    id,
    name: `adapter ${id}`,
    createdAt,
    baseModel: 'tiny-gpt2',
    peftType: 'LORA',
    taskType: 'CAUSAL_LM',
    method: 'lora',
    trainableParams: 1234,
    steps: 50,
    finalLoss: 2.5,
    configJson: '{"peft_type":"LORA","r":8}',
    weights: bytes(3000, createdAt).buffer,
    ...over,
  };
}

/** Every raw chunk record of the default database (to check sizes and leftovers). */
async function rawChunks(): Promise<{ ownerId: string; name: string; index: number; bytes: ArrayBuffer }[]> {
  const raw = await openDB(DEFAULT_DB_NAME);
  try {
    return (await raw.getAll('chunks')) as {
      ownerId: string;
      name: string;
      index: number;
      bytes: ArrayBuffer;
    }[];
  } finally {
    raw.close();
  }
}

type PutArgs = Parameters<IDBObjectStore['put']>;
const realPut = IDBObjectStore.prototype.put;
const realAdd = IDBObjectStore.prototype.add;

/** Makes the n-th IDBObjectStore.put from now on (1-based) do `fail` instead; earlier ones are real. */
function failNthPut(
  n: number,
  fail: (store: IDBObjectStore, args: PutArgs, firstArgs: PutArgs) => IDBRequest,
) {
  let calls = 0;
  let firstArgs: PutArgs | undefined;
  IDBObjectStore.prototype.put = function (this: IDBObjectStore, ...args: PutArgs): IDBRequest<IDBValidKey> {
    calls++;
    firstArgs ??= args;
    if (calls === n) return fail(this, args, firstArgs) as IDBRequest<IDBValidKey>;
    return realPut.apply(this, args);
  };
}

beforeEach(async () => {
  await closeLabDb();
  // A fresh, empty IndexedDB for every test.
  globalThis.indexedDB = new IDBFactory();
});

afterEach(async () => {
  IDBObjectStore.prototype.put = realPut;
  vi.unstubAllGlobals();
  await closeLabDb();
});

describe('adapters', () => {
  it('saves, lists (no weights, newest first), gets, renames and deletes', async () => {
    await saveAdapterRecord(adapter('b', 2000));
    await saveAdapterRecord(adapter('c', 3000, { baseModel: 'other' }));
    const a = adapter('a', 1000);
    const saved = await saveAdapterRecord({ ...a, sizeBytes: 1 }); // a given sizeBytes is recomputed
    expect(saved.sizeBytes).toBe(3000 + a.configJson.length);
    expect('weights' in saved).toBe(false);

    const list = await listAdapters();
    expect(list.map((m) => m.id)).toEqual(['c', 'b', 'a']);
    for (const m of list) expect('weights' in m).toBe(false);
    expect(list[2]).toEqual(saved);
    expect((await listAdaptersForModel('tiny-gpt2')).map((m) => m.id)).toEqual(['b', 'a']);

    const got = await getAdapter('a');
    expect(got).toBeDefined();
    expect(new Uint8Array(got!.weights)).toEqual(new Uint8Array(a.weights));
    expect(got!.configJson).toBe(a.configJson);
    expect(got!.peftType).toBe('LORA');
    expect(await getAdapter('nope')).toBeUndefined();

    const renamed = await renameAdapter('a', '  my adapter ');
    expect(renamed.name).toBe('my adapter');
    expect((await getAdapter('a'))!.name).toBe('my adapter');
    expect(new Uint8Array((await getAdapter('a'))!.weights)).toEqual(new Uint8Array(a.weights));
    await expect(renameAdapter('a', '   ')).rejects.toThrow(StorageError);
    await expect(renameAdapter('nope', 'x')).rejects.toThrow(/no saved adapter with id "nope"/);

    expect(await deleteAdapter('a')).toBe(true);
    expect(await deleteAdapter('a')).toBe(false);
    expect(await getAdapter('a')).toBeUndefined();
    expect((await listAdapters()).map((m) => m.id)).toEqual(['c', 'b']);
    expect((await rawChunks()).some((c) => c.ownerId === 'adapter:a')).toBe(false);
  });

  it('splits large weights into chunks and replaces them whole on re-save', async () => {
    const big = adapter('big', 1, { weights: bytes(10 * KiB + 7, 9).buffer });
    await saveAdapterRecord(big, { chunkBytes: 4 * KiB });
    expect((await rawChunks()).filter((c) => c.ownerId === 'adapter:big')).toHaveLength(3);
    expect(new Uint8Array((await getAdapter('big'))!.weights)).toEqual(new Uint8Array(big.weights));

    const smaller = { ...big, weights: bytes(100, 3).buffer };
    await saveAdapterRecord(smaller, { chunkBytes: 4 * KiB });
    expect((await rawChunks()).filter((c) => c.ownerId === 'adapter:big')).toHaveLength(1);
    expect(new Uint8Array((await getAdapter('big'))!.weights)).toEqual(new Uint8Array(smaller.weights));
  });

  it('a put that throws mid-write leaves the earlier record and weights intact', async () => {
    const old = adapter('x', 1, { name: 'old', weights: bytes(10 * KiB, 1).buffer });
    await saveAdapterRecord(old, { chunkBytes: 4 * KiB });

    // Overwrite: 3 chunk puts then the metadata put; the 2nd chunk put throws.
    failNthPut(2, () => {
      throw new Error('disk on fire');
    });
    const newer = adapter('x', 2, { name: 'new', weights: bytes(10 * KiB, 2).buffer });
    const err = await saveAdapterRecord(newer, { chunkBytes: 4 * KiB }).catch((e: unknown) => e);
    IDBObjectStore.prototype.put = realPut;

    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toBe(
      'could not save adapter "x" (IndexedDB stores "adapters", "chunks"): Error: disk on fire',
    );
    const got = await getAdapter('x');
    expect(got!.name).toBe('old');
    expect(got!.createdAt).toBe(1);
    expect(new Uint8Array(got!.weights)).toEqual(new Uint8Array(old.weights));
  });

  it('a request that fails inside IndexedDB aborts the whole write', async () => {
    const old = adapter('x', 1, { name: 'old', weights: bytes(10 * KiB, 1).buffer });
    await saveAdapterRecord(old, { chunkBytes: 4 * KiB });

    // The 2nd chunk put becomes an add of the 1st chunk again: a real ConstraintError, raised
    // asynchronously by the database, after the 1st chunk was already written in this transaction.
    failNthPut(2, (store, _args, first) => realAdd.apply(store, first));
    const newer = adapter('x', 2, { name: 'new', weights: bytes(10 * KiB, 2).buffer });
    const err = await saveAdapterRecord(newer, { chunkBytes: 4 * KiB }).catch((e: unknown) => e);
    IDBObjectStore.prototype.put = realPut;

    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(
      /^could not save adapter "x" \(IndexedDB stores "adapters", "chunks"\): ConstraintError/,
    );
    const got = await getAdapter('x');
    expect(got!.name).toBe('old');
    expect(new Uint8Array(got!.weights)).toEqual(new Uint8Array(old.weights));
    expect((await rawChunks()).filter((c) => c.ownerId === 'adapter:x')).toHaveLength(3);
  });

  it('a failed first save leaves no half-saved adapter behind', async () => {
    failNthPut(2, () => {
      throw new Error('nope');
    });
    await expect(
      saveAdapterRecord(adapter('y', 1, { weights: bytes(9 * KiB).buffer }), { chunkBytes: 4 * KiB }),
    ).rejects.toThrow(StorageError);
    IDBObjectStore.prototype.put = realPut;
    expect(await listAdapters()).toEqual([]);
    expect(await rawChunks()).toEqual([]);
  });
});

describe('quota', () => {
  const quotaPut = () =>
    Promise.reject(new DOMException('The quota has been exceeded.', 'QuotaExceededError'));

  it('maps QuotaExceededError to a StorageError that says how full storage is, and changes nothing', async () => {
    vi.stubGlobal('navigator', {
      storage: { estimate: () => Promise.resolve({ usage: 9500 * MiB, quota: 10240 * MiB }) },
    });
    const old = adapter('q', 1, { name: 'old', weights: bytes(10 * KiB, 4).buffer });
    await saveAdapterRecord(old, { chunkBytes: 4 * KiB });
    await setSetting('backend', 'wasm');

    failNthPut(3, quotaPut as unknown as () => IDBRequest);
    const err = await saveAdapterRecord(
      adapter('q', 2, { name: 'new', weights: bytes(10 * KiB, 5).buffer }),
      {
        chunkBytes: 4 * KiB,
      },
    ).catch((e: unknown) => e);
    IDBObjectStore.prototype.put = realPut;

    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toBe(
      'storage is full (used 9500 of 10240 MB) to save adapter "q", which needs 11 KB: delete saved adapters (Lab), cached models (Models) or imported data sets (Data), then try again; nothing already saved was changed',
    );
    const got = await getAdapter('q');
    expect(got!.name).toBe('old');
    expect(new Uint8Array(got!.weights)).toEqual(new Uint8Array(old.weights));
    expect(await getSetting('backend')).toBe('wasm');
  });

  it('says storage is full even where no estimate is available', async () => {
    failNthPut(1, quotaPut as unknown as () => IDBRequest);
    const err = await setSetting('backend', 'webgpu').catch((e: unknown) => e);
    IDBObjectStore.prototype.put = realPut;
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toBe(
      'storage is full: delete saved adapters (Lab), cached models (Models) or imported data sets (Data), then try again; nothing already saved was changed',
    );
    expect(await getSetting('backend')).toBeUndefined();
  });
});

describe('blobs', () => {
  it('round-trips a 130 MiB-equivalent file in 32 MiB-equivalent chunks (KiB for MiB)', async () => {
    expect(DEFAULT_CHUNK_BYTES).toBe(32 * MiB);
    const data = bytes(130 * KiB, 7);
    await putBlob('page', 'layer0.safetensors', data, { chunkBytes: 32 * KiB });

    const chunks = (await rawChunks()).filter((c) => c.ownerId === 'page');
    expect(chunks.map((c) => c.index)).toEqual([0, 1, 2, 3, 4]);
    expect(chunks.map((c) => c.bytes.byteLength)).toEqual([32, 32, 32, 32, 2].map((k) => k * KiB));

    const back = await getBlob('page', 'layer0.safetensors');
    expect(back).toBeInstanceOf(ArrayBuffer);
    expect(new Uint8Array(back!)).toEqual(data);
  });

  it('accepts views, keeps empty blobs, replaces atomically and deletes by owner only', async () => {
    const backing = bytes(100, 2);
    await putBlob('page', 'view', backing.subarray(10, 60), { chunkBytes: 16 });
    expect(new Uint8Array((await getBlob('page', 'view'))!)).toEqual(backing.slice(10, 60));

    await putBlob('page', 'empty', new ArrayBuffer(0));
    expect((await getBlob('page', 'empty'))!.byteLength).toBe(0);
    expect(await getBlob('page', 'missing')).toBeUndefined();

    await putBlob('page', 'view', bytes(5, 3), { chunkBytes: 16 });
    expect(new Uint8Array((await getBlob('page', 'view'))!)).toEqual(bytes(5, 3));
    expect((await rawChunks()).filter((c) => c.name === 'view')).toHaveLength(1);

    await putBlob('page2', 'view', bytes(5, 4));
    await deleteBlobs('page');
    expect(await getBlob('page', 'view')).toBeUndefined();
    expect(await getBlob('page', 'empty')).toBeUndefined();
    expect(new Uint8Array((await getBlob('page2', 'view'))!)).toEqual(bytes(5, 4));
  });

  it('refuses owner ids reserved for adapters and models, and bad chunk sizes', async () => {
    await expect(putBlob('adapter:a', 'w', bytes(4))).rejects.toThrow(/reserved/);
    await expect(deleteBlobs('model:m')).rejects.toThrow(/reserved/);
    await expect(putBlob('p', 'w', bytes(4), { chunkBytes: 0 })).rejects.toThrow(RangeError);
    await expect(putBlob('p', 'w', bytes(4), { chunkBytes: 65 * MiB })).rejects.toThrow(RangeError);
  });

  it('reports a blob with a missing chunk instead of returning wrong bytes', async () => {
    await putBlob('p', 'w', bytes(100), { chunkBytes: 30 });
    const raw = await openDB(DEFAULT_DB_NAME);
    await raw.delete('chunks', ['p', 'w', 2]);
    raw.close();
    await expect(getBlob('p', 'w')).rejects.toThrow(/incomplete \(3 of 4 chunks\)/);
  });
});

describe('models', () => {
  it('caches model folders with chunked files', async () => {
    const weights = bytes(5 * KiB, 11);
    const config = new TextEncoder().encode('{"n_layer":2}');
    const meta = await saveModel(
      {
        id: 'tiny',
        source: 'local',
        files: { 'model.safetensors': weights, 'config.json': config },
        addedAt: 5,
      },
      { chunkBytes: KiB },
    );
    expect(meta).toEqual({
      id: 'tiny',
      source: 'local',
      fileSizes: { 'model.safetensors': 5 * KiB, 'config.json': config.byteLength },
      sizeBytes: 5 * KiB + config.byteLength,
      addedAt: 5,
    });
    await saveModel({ id: 'hubby', source: 'hub', files: {}, addedAt: 9 });
    expect((await listModels()).map((m) => m.id)).toEqual(['hubby', 'tiny']);

    const got = await getModel('tiny');
    expect(new Uint8Array(got!.files['model.safetensors']!)).toEqual(weights);
    expect(new TextDecoder().decode(got!.files['config.json'])).toBe('{"n_layer":2}');
    expect(new Uint8Array((await getModelFile('tiny', 'config.json'))!)).toEqual(config);
    expect(await getModel('none')).toBeUndefined();

    // Re-caching with fewer files drops the old ones.
    await saveModel({ id: 'tiny', source: 'local', files: { 'config.json': config } });
    expect(await getModelFile('tiny', 'model.safetensors')).toBeUndefined();

    expect(await deleteModel('tiny')).toBe(true);
    expect(await deleteModel('tiny')).toBe(false);
    expect((await rawChunks()).filter((c) => c.ownerId === 'model:tiny')).toEqual([]);
  });

  it('a model download that fills storage caches nothing of it and keeps the model cached before', async () => {
    const old = bytes(3 * KiB, 21);
    await saveModel({ id: 'kept', source: 'hub', files: { 'model.safetensors': old } }, { chunkBytes: KiB });
    failNthPut(3, () => Promise.reject(new DOMException('quota', 'QuotaExceededError')) as never);
    const err = await saveModel(
      { id: 'big', source: 'hub', files: { 'model.safetensors': bytes(8 * KiB, 22) } },
      { chunkBytes: KiB },
    ).catch((e: unknown) => e);
    IDBObjectStore.prototype.put = realPut;
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(/storage is full/);
    expect(await getModel('big')).toBeUndefined();
    expect((await rawChunks()).filter((c) => c.ownerId === 'model:big')).toEqual([]);
    expect((await listModels()).map((m) => m.id)).toEqual(['kept']);
    expect(new Uint8Array((await getModelFile('kept', 'model.safetensors'))!)).toEqual(old);
  });
});

describe('settings', () => {
  it('gets, sets and deletes JSON values', async () => {
    expect(await getSetting('backend')).toBeUndefined();
    await setSetting('backend', 'webgpu');
    await setSetting('ui', { theme: 'dark', sizes: [1, 2], on: true, none: null });
    expect(await getSetting<string>('backend')).toBe('webgpu');
    expect(await getSetting('ui')).toEqual({ theme: 'dark', sizes: [1, 2], on: true, none: null });
    await deleteSetting('backend');
    expect(await getSetting('backend')).toBeUndefined();
  });
});

describe('database', () => {
  it('creates the version-2 stores and indexes', async () => {
    await openLabDb();
    const raw = await openDB(DEFAULT_DB_NAME);
    expect(raw.version).toBe(LAB_DB_VERSION);
    expect(LAB_DB_VERSION).toBe(2);
    expect([...raw.objectStoreNames].sort()).toEqual(['adapters', 'chunks', 'datasets', 'kv', 'models']);
    const tx = raw.transaction(['adapters', 'models', 'datasets']);
    expect([...tx.objectStore('adapters').indexNames].sort()).toEqual(['by-baseModel', 'by-createdAt']);
    expect([...tx.objectStore('models').indexNames]).toEqual(['by-addedAt']);
    expect([...tx.objectStore('datasets').indexNames]).toEqual(['by-addedAt']);
    raw.close();
  });

  it('upgrades a version-1 database to version 2 and keeps its adapters, models, blobs and settings', async () => {
    // A database as version 1 of the app made it (the same stores, no `datasets`), with data in it.
    const down = await openDB('peft-lab-v1-real', 1, {
      upgrade(db) {
        const adapters = db.createObjectStore('adapters', { keyPath: 'id' });
        adapters.createIndex('by-createdAt', 'createdAt');
        adapters.createIndex('by-baseModel', 'baseModel');
        db.createObjectStore('models', { keyPath: 'id' }).createIndex('by-addedAt', 'addedAt');
        db.createObjectStore('chunks', { keyPath: ['ownerId', 'name', 'index'] });
        db.createObjectStore('kv');
      },
    });
    await down.put('adapters', { id: 'v1', name: 'from v1', createdAt: 1, baseModel: 'm' });
    await down.put('kv', 'cpu', 'backend');
    await down.put('chunks', {
      ownerId: 'page',
      name: 'p',
      index: 0,
      count: 1,
      totalBytes: 3,
      bytes: new Uint8Array([1, 2, 3]).buffer,
    });
    down.close();
    const up = await openLabDb('peft-lab-v1-real');
    expect((await up.listAdapters()).map((a) => a.name)).toEqual(['from v1']);
    expect(await up.getSetting('backend')).toBe('cpu');
    expect(new Uint8Array((await up.getBlob('page', 'p'))!)).toEqual(new Uint8Array([1, 2, 3]));
    expect(await up.listDatasets()).toEqual([]);
    const raw = await openDB('peft-lab-v1-real');
    expect(raw.version).toBe(LAB_DB_VERSION);
    expect([...raw.objectStoreNames]).toContain('datasets');
    raw.close();
  });

  it('keeps data when a version-1 database is closed and opened again', async () => {
    const h = await openLabDb('peft-lab-reopen');
    await h.saveAdapterRecord(adapter('keep', 1));
    await h.putBlob('page', 'p0', bytes(50), { chunkBytes: 16 });
    await h.setSetting('backend', 'cpu');
    expect(await openLabDb('peft-lab-reopen')).toBe(h); // cached per name
    await closeLabDb('peft-lab-reopen');

    const again = await openLabDb('peft-lab-reopen');
    expect((await again.listAdapters()).map((m) => m.id)).toEqual(['keep']);
    expect(new Uint8Array((await again.getAdapter('keep'))!.weights)).toEqual(bytes(3000, 1));
    expect(new Uint8Array((await again.getBlob('page', 'p0'))!)).toEqual(bytes(50));
    expect(await again.getSetting('backend')).toBe('cpu');
    // The default database is a different one.
    expect(await listAdapters()).toEqual([]);
  });

  it('says so when the saved data comes from a newer version', async () => {
    const newer = await openDB('peft-lab-newer', LAB_DB_VERSION + 1);
    newer.close();
    const err = await openLabDb('peft-lab-newer').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(/written by a newer PEFT Lab.*reload the page/);
  });

  it('deletes the whole database', async () => {
    await saveAdapterRecord(adapter('gone', 1));
    await deleteLabDb();
    expect(await listAdapters()).toEqual([]);
  });

  it('gives null and false for estimate and persistence where navigator.storage is missing', async () => {
    vi.stubGlobal('navigator', {});
    expect(await storageEstimate()).toBeNull();
    expect(await requestPersistence()).toBe(false);
  });

  it('reads the estimate and asks for persistence where navigator.storage exists', async () => {
    const persist = vi.fn(() => Promise.resolve(true));
    vi.stubGlobal('navigator', {
      storage: {
        estimate: () => Promise.resolve({ usage: 1, quota: 2 }),
        persisted: () => Promise.resolve(false),
        persist,
      },
    });
    expect(await storageEstimate()).toEqual({ usageBytes: 1, quotaBytes: 2 });
    expect(await requestPersistence()).toBe(true);
    expect(persist).toHaveBeenCalledOnce();
  });
});

describe('datasets', () => {
  const meta = (id: string, addedAt: number) => ({
    id,
    name: `set ${id}`,
    addedAt,
    taskType: 'SEQ_CLS' as const,
    source: {
      fileName: 'a.csv',
      format: 'csv' as const,
      bytes: 99,
      textColumn: 'text',
      labelColumn: 'label',
    },
    labels: ['a', 'b'],
    files: { train: 'train.jsonl', validation: 'validation.jsonl', test: 'test.jsonl' },
    splits: {
      train: { examples: 8, bytes: 300, labelCounts: { a: 4, b: 4 } },
      validation: { examples: 1, bytes: 40, labelCounts: { a: 1, b: 0 } },
      test: { examples: 1, bytes: 10, labelCounts: { a: 0, b: 1 } },
    },
    records: 10,
    skippedRows: 0,
    preview: [{ text: 'hello', label: 'a' }],
  });
  const files = {
    'train.jsonl': bytes(300, 1),
    'validation.jsonl': bytes(40, 2),
    'test.jsonl': bytes(10, 3),
  };

  it('saves (in chunks), lists newest first, reads a file and deletes with its files', async () => {
    const saved = await saveDataset(meta('d1', 1), files, { chunkBytes: 64 });
    expect(saved.sizeBytes).toBe(350);
    expect(saved.fileSizes).toEqual({ 'train.jsonl': 300, 'validation.jsonl': 40, 'test.jsonl': 10 });
    await saveDataset(meta('d2', 2), files);
    expect((await listDatasets()).map((d) => d.id)).toEqual(['d2', 'd1']);
    expect(await getDataset('d1')).toEqual(saved);
    expect(new Uint8Array((await getDatasetFile('d1', 'train.jsonl'))!)).toEqual(bytes(300, 1));
    expect(await getDatasetFile('d1', 'nope.jsonl')).toBeUndefined();
    expect((await rawChunks()).filter((c) => c.ownerId === 'dataset:d1')).toHaveLength(5 + 1 + 1);

    expect(await deleteDataset('d1')).toBe(true);
    expect(await deleteDataset('d1')).toBe(false);
    expect(await getDataset('d1')).toBeUndefined();
    expect(await getDatasetFile('d1', 'train.jsonl')).toBeUndefined();
    expect((await rawChunks()).filter((c) => c.ownerId === 'dataset:d1')).toEqual([]);
    expect((await listDatasets()).map((d) => d.id)).toEqual(['d2']);
    await expect(putBlob('dataset:x', 'f', bytes(4))).rejects.toThrow(/reserved/);
  });

  it('keeps earlier data sets whole when a save fails half way', async () => {
    await saveDataset(meta('d1', 1), files, { chunkBytes: 64 });
    failNthPut(4, () => Promise.reject(new DOMException('quota', 'QuotaExceededError')) as never);
    const err = await saveDataset(meta('d2', 2), files, { chunkBytes: 64 }).catch((e: unknown) => e);
    IDBObjectStore.prototype.put = realPut;
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(/^storage is full/);
    expect((await listDatasets()).map((d) => d.id)).toEqual(['d1']);
    expect((await rawChunks()).filter((c) => c.ownerId === 'dataset:d2')).toEqual([]);
    expect(new Uint8Array((await getDatasetFile('d1', 'test.jsonl'))!)).toEqual(bytes(10, 3));
  });
});
