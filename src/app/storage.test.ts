import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it } from 'vitest';
import { listAdapters, saveAdapterRecord } from '../lib/storage/adapters';
import { blobUsage, putBlob } from '../lib/storage/blobs';
import { saveDataset } from '../lib/storage/datasets';
import { deleteLabDb } from '../lib/storage/db';
import { saveModel } from '../lib/storage/models';
import { setSetting } from '../lib/storage/settings';
import type { RaceSnapshot } from '../lib/protocol/compare-protocol';
import { defaultSetup } from './compare-hash';
import { listSavedRaces, saveRace } from './compare-saved';
import { HUB_CACHE, PRECACHE_WARNING, deleteStorageItem, readStorage } from './storage';
import type { CacheStorageLike, StorageKind, StorageReport } from './storage';

/** Cache Storage as a Map of cache name -> (url -> body). */
function fakeCaches(init: Record<string, Record<string, number>>): CacheStorageLike & {
  names: () => string[];
} {
  const caches = new Map(
    Object.entries(init).map(([name, files]) => [
      name,
      new Map(Object.entries(files).map(([url, n]) => [url, new Uint8Array(n)])),
    ]),
  );
  return {
    names: () => [...caches.keys()],
    keys: async () => [...caches.keys()],
    open: async (name) => {
      const files = caches.get(name) ?? new Map<string, Uint8Array<ArrayBuffer>>();
      caches.set(name, files);
      return {
        keys: async () => [...files.keys()].map((u) => new Request(u)),
        match: async (req) => {
          const body = files.get(req.url);
          return body ? new Response(body) : undefined;
        },
      };
    },
    delete: async (name) => caches.delete(name),
  };
}

const sizes = (r: StorageReport, kind: StorageKind): [string, number][] =>
  r.groups.find((g) => g.kind === kind)!.items.map((i) => [i.name, i.sizeBytes]);

async function fill(): Promise<void> {
  await saveModel({
    id: 'someone/tiny-gpt2',
    source: 'hub',
    files: { 'config.json': new Uint8Array(100), 'model.safetensors': new Uint8Array(5000) },
  });
  await saveAdapterRecord({
    id: 'a1',
    name: 'my lora',
    createdAt: 1,
    baseModel: 'peftlab-s',
    peftType: 'LORA',
    taskType: 'CAUSAL_LM',
    method: 'lora',
    trainableParams: 10,
    steps: 8,
    finalLoss: 3,
    configJson: '{"r":8}',
    weights: new Uint8Array(2000).buffer,
  });
  await saveDataset(
    {
      id: 'data-x',
      name: 'my mail',
      addedAt: 2,
      taskType: 'SEQ_CLS',
      source: { fileName: 'mail.csv', format: 'csv', bytes: 900 },
      labels: ['a', 'b'],
      files: { train: 'train.jsonl', validation: 'validation.jsonl', test: 'test.jsonl' },
      splits: {
        train: { count: 8, bytes: 600 },
        validation: { count: 1, bytes: 100 },
        test: { count: 1, bytes: 100 },
      },
      records: 10,
      skippedRows: 0,
      preview: [],
    } as unknown as Parameters<typeof saveDataset>[0],
    {
      'train.jsonl': new Uint8Array(600),
      'validation.jsonl': new Uint8Array(100),
      'test.jsonl': new Uint8Array(100),
    },
  );
  // A checkpoint as lib/offload/checkpoints.ts lays it out: index, manifest, blobs of its generation.
  await setSetting('checkpoints', ['run-7']);
  await setSetting('checkpoint:run-7', {
    runId: 'run-7',
    generation: 1,
    step: 4,
    savedAt: 3,
    bytes: 1500,
    meta: null,
  });
  await putBlob('checkpoint:run-7', 'g1/tensors', new Uint8Array(1400));
  await putBlob('checkpoint:run-7', 'g1/state', new Uint8Array(100));
  // Offload pages, one split over several chunks: its size is still counted once, whole.
  await putBlob('offload:layers', 'h.0', new Uint8Array(3000), { chunkBytes: 1024 });
  await putBlob('offload:layers', 'h.1', new Uint8Array(1000));
  await putBlob('offload:optimizer', 'm.0', new Uint8Array(700));
  const snapshot = { lanes: [{ id: 'lane-1', name: 'LoRA' }] } as unknown as RaceSnapshot;
  await saveRace({
    title: 'lora vs nothing',
    setup: defaultSetup('peftlab-s', 'spam', 'SEQ_CLS'),
    backend: 'cpu',
    snapshot,
    maps: [],
    ranks: [],
    nearest: [],
  });
}

afterEach(async () => {
  await deleteLabDb();
});

describe('readStorage', () => {
  it('lists every kind with the size of each item, and their total', async () => {
    await fill();
    const cs = fakeCaches({
      'workbox-precache-v2-http://localhost:4173/': { 'http://x/index.html': 400, 'http://x/a.js': 600 },
      [HUB_CACHE]: { 'https://huggingface.co/m/resolve/main/model.safetensors': 2500 },
    });
    const r = await readStorage(cs);
    expect(sizes(r, 'models')).toEqual([['someone/tiny-gpt2', 5100]]);
    expect(sizes(r, 'adapters')).toEqual([['my lora', 2000 + '{"r":8}'.length]]);
    expect(sizes(r, 'datasets')).toEqual([['my mail', 800]]);
    expect(sizes(r, 'checkpoints')).toEqual([['run-7', 1500]]);
    expect(sizes(r, 'offload')).toEqual([
      ['Layer weight pages', 4000],
      ['Optimizer state pages', 700],
    ]);
    const [race] = sizes(r, 'races');
    expect(race?.[0]).toBe('lora vs nothing');
    expect(race?.[1]).toBeGreaterThan(100);
    expect(sizes(r, 'caches')).toEqual([
      ['App for offline use', 1000],
      ['Hub downloads', 2500],
    ]);
    const precache = r.groups.find((g) => g.kind === 'caches')!.items[0]!;
    expect(precache.warning).toBe(PRECACHE_WARNING);
    expect(precache.detail).toMatch(/^2 files/);
    expect(r.totalBytes).toBe(r.groups.reduce((s, g) => s + g.sizeBytes, 0));
    expect(r.totalBytes).toBe(5100 + 2007 + 800 + 1500 + 4700 + race![1] + 3500);
    // Node has no navigator.storage: no estimate, not persistent.
    expect(r.estimate).toBeNull();
    expect(r.persisted).toBe(false);
  });

  it('lists empty groups when nothing is stored, and no caches where there is no Cache Storage', async () => {
    const r = await readStorage(null);
    expect(r.groups.map((g) => [g.kind, g.items.length])).toEqual([
      ['models', 0],
      ['adapters', 0],
      ['datasets', 0],
      ['checkpoints', 0],
      ['offload', 0],
      ['races', 0],
      ['caches', 0],
    ]);
    expect(r.totalBytes).toBe(0);
  });
});

describe('deleteStorageItem', () => {
  it('deletes each kind, all of it and nothing else, and the total drops by its size', async () => {
    await fill();
    const cs = fakeCaches({
      'workbox-precache-v2-x': { 'http://x/index.html': 400 },
      [HUB_CACHE]: { 'https://huggingface.co/m/resolve/main/f': 2500 },
    });
    let before = await readStorage(cs);
    for (const kind of before.groups.map((g) => g.kind)) {
      const group = before.groups.find((g) => g.kind === kind)!;
      for (const item of group.items) {
        await deleteStorageItem(item, cs);
        const after = await readStorage(cs);
        expect(after.totalBytes, `${kind} ${item.key}`).toBe(before.totalBytes - item.sizeBytes);
        const left = after.groups.find((g) => g.kind === kind)!.items.map((i) => i.key);
        expect(left).not.toContain(item.key);
        before = after;
      }
    }
    expect(before.totalBytes).toBe(0);
    // The blobs went with their records: no checkpoint or offload bytes are left behind.
    expect(await blobUsage('checkpoint:')).toEqual([]);
    expect(await blobUsage('offload:')).toEqual([]);
    expect(await listSavedRaces()).toEqual([]);
    expect(cs.names()).toEqual([]);
  });

  it('a failed delete throws a message and changes nothing', async () => {
    await fill();
    const cs = fakeCaches({ [HUB_CACHE]: { 'https://huggingface.co/m/resolve/main/f': 10 } });
    const before = await readStorage(cs);
    await expect(deleteStorageItem({ kind: 'caches', key: 'gone-already' }, cs)).rejects.toThrow(
      'the cache "gone-already" was not there to delete',
    );
    await expect(deleteStorageItem({ kind: 'caches', key: HUB_CACHE }, null)).rejects.toThrow(
      'Cache Storage is not available here',
    );
    // Blob owners of adapters are reserved: an offload delete aimed at one is refused, and the adapter stays.
    await expect(deleteStorageItem({ kind: 'offload', key: 'adapter:a1' }, cs)).rejects.toThrow(/reserved/);
    expect((await listAdapters()).map((a) => a.id)).toEqual(['a1']);
    expect(await readStorage(cs)).toEqual(before);
  });
});
