import 'fake-indexeddb/auto';
import { describe, it, expect } from 'vitest';
import { IdbPageStore } from './idb-page-store';
import { MemoryPageStore } from './page-store';
import { runPageStore } from './run-store';

describe("a run's page store", () => {
  it('is IndexedDB by default (cleared of an earlier run), the page memory on request', async () => {
    const first = await runPageStore('layers', 'test');
    expect(first).toBeInstanceOf(IdbPageStore);
    await first.put('a#0', new Uint8Array([1, 2, 3]));
    const again = await runPageStore('layers', 'test', 'indexeddb');
    await expect(again.get('a#0')).rejects.toThrow();
    expect(await runPageStore('layers', 'test', 'memory')).toBeInstanceOf(MemoryPageStore);
  });
});
