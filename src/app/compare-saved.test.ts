import { describe, expect, it } from 'vitest';
import type { JsonValue } from '../lib/storage/db';
import type { RaceSnapshot } from '../lib/protocol/compare-protocol';
import { defaultSetup } from './compare-hash';
import { INDEX_KEY, deleteSavedRace, listSavedRaces, loadSavedRace, saveRace } from './compare-saved';
import type { SettingsStore } from './compare-saved';

function mapStore(): SettingsStore & { map: Map<string, unknown> } {
  const map = new Map<string, unknown>();
  return {
    map,
    get: async (k) => structuredClone(map.get(k)),
    set: async (k, v: JsonValue) => void map.set(k, structuredClone(v)),
    delete: async (k) => void map.delete(k),
  };
}

const snapshot = (names: string[]): RaceSnapshot =>
  ({
    task: 'spam',
    taskType: 'SEQ_CLS',
    metric: 'accuracy',
    lanes: names.map((name, i) => ({ id: `lane-${i + 1}`, name })),
    results: { metric: 'accuracy', target: NaN, rows: [], verdicts: [] },
  }) as unknown as RaceSnapshot;

describe('saved races', () => {
  it('saves under race:<time>, lists newest first, loads and deletes', async () => {
    const store = mapStore();
    const setup = defaultSetup('peftlab-s', 'spam', 'SEQ_CLS');
    const base = { setup, backend: 'wasm', maps: [], ranks: [], nearest: [] };
    const a = await saveRace({ ...base, title: 'first', snapshot: snapshot(['LoRA']) }, 1000, store);
    const b = await saveRace({ ...base, title: 'second', snapshot: snapshot(['IA3', 'LoRA']) }, 1000, store);
    expect(a.key).toBe('race:1000');
    expect(b.key).toBe('race:1001');
    expect((await listSavedRaces(store)).map((e) => [e.title, e.methods])).toEqual([
      ['second', ['IA3', 'LoRA']],
      ['first', ['LoRA']],
    ]);
    const got = await loadSavedRace(b.key, store);
    expect(got.snapshot.lanes).toHaveLength(2);
    expect(got.setup).toEqual(setup);
    expect(Number.isNaN(got.snapshot.results.target)).toBe(true);

    await deleteSavedRace(a.key, store);
    expect((await listSavedRaces(store)).map((e) => e.key)).toEqual([b.key]);
    expect(store.map.has(a.key)).toBe(false);
    await expect(loadSavedRace(a.key, store)).rejects.toThrow(/no longer in this browser/);
    expect(store.map.has(INDEX_KEY)).toBe(true);
  });
});

describe('saved races read back: fuzzing findings (src/lib/fuzz)', () => {
  it('lists only entries shaped as saveRace writes them', async () => {
    const store = mapStore();
    const good = { key: 'race:1', savedAt: 1, title: 'a', model: 'm', task: 't', methods: ['LoRA'] };
    store.map.set(INDEX_KEY, [good, { ...good, methods: { a: 1 } }, null, 7, { ...good, key: 'other' }]);
    expect(await listSavedRaces(store)).toEqual([good]);
  });

  it('refuses a damaged race with StorageError that says to delete it, instead of handing it to the screen', async () => {
    const store = mapStore();
    const { key } = await saveRace(
      {
        title: 'x',
        setup: defaultSetup('peftlab-s', 'spam', 'SEQ_CLS'),
        backend: 'wasm',
        snapshot: snapshot(['LoRA']),
        maps: [],
        ranks: [],
        nearest: [],
      },
      1,
      store,
    );
    const race = store.map.get(key) as Record<string, unknown>;
    for (const damaged of [
      7,
      'x',
      { ...race, snapshot: { lanes: {} } },
      { ...race, title: null },
      { ...race, snapshot: { lanes: [null] } },
    ]) {
      store.map.set(key, damaged);
      await expect(loadSavedRace(key, store)).rejects.toThrow(/is damaged .*delete it/);
    }
  });
});
