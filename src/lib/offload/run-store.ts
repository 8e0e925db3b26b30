/**
 * Where one run's pages go: IndexedDB in a browser (under `<prefix>:layers` / `<prefix>:optimizer`,
 * cleared first: pages of an earlier run are stale), memory where there is no IndexedDB (Node tests).
 */
import { IdbPageStore } from './idb-page-store';
import { MemoryPageStore } from './page-store';
import type { PageKind, PageStore } from './page-store';

export async function runPageStore(kind: PageKind, prefix = 'offload'): Promise<PageStore> {
  if (typeof indexedDB === 'undefined') return new MemoryPageStore();
  const store = await IdbPageStore.open(`${prefix}:${kind}`);
  await store.clear();
  return store;
}
