/**
 * Where one run's pages go: IndexedDB in a browser (under `<prefix>:<kind>`, cleared first: pages of
 * an earlier run are stale) unless the run asks for memory; memory where there is no IndexedDB (Node).
 */
import { IdbPageStore } from './idb-page-store';
import { MemoryPageStore } from './page-store';
import type { PageKind, PageStore } from './page-store';
import type { OffloadDevice } from './session';

export async function runPageStore(
  kind: PageKind,
  prefix = 'offload',
  device: OffloadDevice = 'indexeddb',
): Promise<PageStore> {
  if (device === 'memory' || typeof indexedDB === 'undefined') return new MemoryPageStore();
  const store = await IdbPageStore.open(`${prefix}:${kind}`);
  await store.clear();
  return store;
}
