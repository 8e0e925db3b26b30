/**
 * What this browser holds for PEFT Lab, and deleting it (the Storage screen): IndexedDB's cached models,
 * saved adapters, imported data sets, run checkpoints, offload pages and saved races (all through
 * lib/storage/db.ts and the modules that own each kind), and Cache Storage's caches (the service
 * worker's precache of the app and its runtime cache of Hub downloads). No Svelte here: storage.test.ts
 * runs it in Node with fake-indexeddb and a Map-backed Cache Storage.
 */
import { StorageError } from '../lib/errors';
import { deleteAdapter, listAdapters } from '../lib/storage/adapters';
import { blobUsage, deleteBlobs } from '../lib/storage/blobs';
import { deleteDataset, listDatasets } from '../lib/storage/datasets';
import { openLabDb } from '../lib/storage/handle';
import { deleteModel, listModels } from '../lib/storage/models';
import { isPersisted, storageEstimate } from '../lib/storage/quota';
import { getSetting } from '../lib/storage/settings';
import type { StorageEstimate } from '../lib/storage/quota';
import { deleteCheckpoint, listCheckpoints } from '../lib/offload/checkpoint-manifest';
import { deleteSavedRace, listSavedRaces } from './compare-saved';

export type StorageKind = 'models' | 'adapters' | 'datasets' | 'checkpoints' | 'offload' | 'races' | 'caches';

export interface StorageItem {
  kind: StorageKind;
  /** What deleting it needs: the record id, run id, blob owner, race key or cache name. */
  key: string;
  name: string;
  /** One line on what it is (e.g. "LoRA on peftlab-s, 40 steps"). */
  detail: string;
  sizeBytes: number;
  /** Said before deleting, when deleting it costs more than its bytes. */
  warning?: string;
}

export interface StorageGroup {
  kind: StorageKind;
  title: string;
  /** Where it lives and how it gets there again. */
  note: string;
  items: StorageItem[];
  sizeBytes: number;
}

export interface StorageReport {
  groups: StorageGroup[];
  /** The sum of every item listed. */
  totalBytes: number;
  /** The browser's own count for this origin (includes what the app does not list, e.g. overheads). */
  estimate: StorageEstimate | null;
  persisted: boolean;
}

/** The parts of Cache Storage used here (window.caches; tests pass a Map-backed one). */
export interface CacheStorageLike {
  keys(): Promise<string[]>;
  open(name: string): Promise<{
    keys(): Promise<readonly Request[]>;
    match(request: Request): Promise<Response | undefined>;
  }>;
  delete(name: string): Promise<boolean>;
}

const browserCaches = (): CacheStorageLike | null => (typeof caches === 'undefined' ? null : caches);

/** Workbox names its precache `workbox-precache-v2-<scope>`; vite.config.ts names the Hub cache. */
export const isPrecache = (cacheName: string): boolean => cacheName.startsWith('workbox-precache');
export const HUB_CACHE = 'hub-downloads';
export const PRECACHE_WARNING =
  'The app then needs the network once to work offline again: until it has fetched its files anew, opening it offline fails.';

const OFFLOAD_PREFIX = 'offload:';
const OFFLOAD_NAMES: Record<string, string> = {
  'offload:layers': 'Layer weight pages',
  'offload:optimizer': 'Optimizer state pages',
};

const GROUPS: Record<StorageKind, { title: string; note: string }> = {
  models: { title: 'Cached models', note: 'Hub and local models kept in IndexedDB (Models screen).' },
  adapters: { title: 'Saved adapters', note: 'Adapters saved in the Lab.' },
  datasets: { title: 'Imported data sets', note: 'Files imported on the Data screen.' },
  checkpoints: {
    title: 'Checkpoints',
    note: 'Runs that can be resumed: weights, optimizer moments and data position.',
  },
  offload: {
    title: 'Offload pages',
    note: 'Pages an offloaded run moved out of memory; the next offloaded run clears them anyway.',
  },
  races: { title: 'Saved races', note: 'Finished races saved on the Compare screen.' },
  caches: {
    title: 'Cached downloads',
    note: 'Cache Storage: the service worker’s offline copy of the app and its Hub downloads.',
  },
};

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;
const utf8Length = (s: string): number => new TextEncoder().encode(s).byteLength;

async function cacheItems(cs: CacheStorageLike | null): Promise<StorageItem[]> {
  if (!cs) return [];
  const out: StorageItem[] = [];
  for (const name of await cs.keys()) {
    const cache = await cs.open(name);
    const requests = await cache.keys();
    let sizeBytes = 0;
    for (const req of requests) {
      const res = await cache.match(req);
      // A cached body is a blob on disk: its size is known without reading it.
      if (res) sizeBytes += (await res.blob()).size;
    }
    const files = plural(requests.length, 'file');
    if (isPrecache(name)) {
      out.push({
        kind: 'caches',
        key: name,
        name: 'App for offline use',
        detail: `${files}: the app, its wasm, bundled models and data (${name})`,
        sizeBytes,
        warning: PRECACHE_WARNING,
      });
    } else {
      out.push({
        kind: 'caches',
        key: name,
        name: name === HUB_CACHE ? 'Hub downloads' : name,
        detail: name === HUB_CACHE ? `${files} downloaded from huggingface.co, kept for retries` : files,
        sizeBytes,
      });
    }
  }
  return out;
}

async function raceItems(): Promise<StorageItem[]> {
  const out: StorageItem[] = [];
  for (const r of await listSavedRaces()) {
    const race = await getSetting(r.key);
    out.push({
      kind: 'races',
      key: r.key,
      name: r.title,
      detail: `${r.methods.join(', ')} on ${r.model}, ${r.task}`,
      // Kept by structured clone; its JSON text is a close measure.
      sizeBytes: race === undefined ? 0 : utf8Length(JSON.stringify(race)),
    });
  }
  return out;
}

/** Everything listed, by kind, with the browser's estimate and persistence. */
export async function readStorage(cs: CacheStorageLike | null = browserCaches()): Promise<StorageReport> {
  const db = await openLabDb();
  const [models, adapters, datasets, checkpoints, offload, races, cached, estimate, persisted] =
    await Promise.all([
      listModels(),
      listAdapters(),
      listDatasets(),
      listCheckpoints(db),
      blobUsage(OFFLOAD_PREFIX),
      raceItems(),
      cacheItems(cs),
      storageEstimate(),
      isPersisted(),
    ]);
  const items: Record<StorageKind, StorageItem[]> = {
    models: models.map((m) => ({
      kind: 'models',
      key: m.id,
      name: m.id,
      detail: `${m.source === 'hub' ? 'from the Hub' : 'from a local folder'}, ${plural(Object.keys(m.fileSizes).length, 'file')}`,
      sizeBytes: m.sizeBytes,
    })),
    adapters: adapters.map((a) => ({
      kind: 'adapters',
      key: a.id,
      name: a.name,
      detail: `${a.method} on ${a.baseModel}, ${plural(a.steps, 'step')}`,
      sizeBytes: a.sizeBytes,
    })),
    datasets: datasets.map((d) => ({
      kind: 'datasets',
      key: d.id,
      name: d.name,
      detail: `from ${d.source.fileName}, ${plural(d.records, d.taskType === 'CAUSAL_LM' ? 'document' : 'example')}`,
      sizeBytes: d.sizeBytes,
    })),
    checkpoints: checkpoints.map((c) => ({
      kind: 'checkpoints',
      key: c.runId,
      name: c.runId,
      detail: `step ${c.step}, saved ${new Date(c.savedAt).toLocaleString()}`,
      sizeBytes: c.bytes,
    })),
    offload: offload.map((u) => ({
      kind: 'offload',
      key: u.ownerId,
      name: OFFLOAD_NAMES[u.ownerId] ?? u.ownerId,
      detail: `${plural(u.blobs, 'page')} (${u.ownerId})`,
      sizeBytes: u.bytes,
    })),
    races: races,
    caches: cached,
  };
  const groups = (Object.keys(GROUPS) as StorageKind[]).map((kind) => ({
    kind,
    ...GROUPS[kind],
    items: items[kind],
    sizeBytes: items[kind].reduce((s, i) => s + i.sizeBytes, 0),
  }));
  return {
    groups,
    totalBytes: groups.reduce((s, g) => s + g.sizeBytes, 0),
    estimate,
    persisted,
  };
}

/** Deletes one item; throws (a StorageError from IndexedDB, say) and changes nothing on failure. */
export async function deleteStorageItem(
  item: Pick<StorageItem, 'kind' | 'key'>,
  cs: CacheStorageLike | null = browserCaches(),
): Promise<void> {
  switch (item.kind) {
    case 'models':
      await deleteModel(item.key);
      return;
    case 'adapters':
      await deleteAdapter(item.key);
      return;
    case 'datasets':
      await deleteDataset(item.key);
      return;
    case 'checkpoints':
      await deleteCheckpoint(await openLabDb(), item.key);
      return;
    case 'offload':
      await deleteBlobs(item.key);
      return;
    case 'races':
      await deleteSavedRace(item.key);
      return;
    case 'caches':
      if (!cs) throw new StorageError('Cache Storage is not available here');
      if (!(await cs.delete(item.key)))
        throw new StorageError(`the cache "${item.key}" was not there to delete`);
      return;
  }
}
