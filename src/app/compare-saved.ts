/**
 * Saved races: a finished race's snapshot, its set-up and what was read back from it (where the
 * parameters live, AdaLoRA's ranks, soft prompts' nearest tokens), kept in the settings store of
 * lib/storage/db.ts under `race:<timestamp>`, with a list of them under `races` (newest first), so
 * the Compare screen lists them without reading every race.
 */
import { NotReadyError, StorageError } from '../lib/errors';
import { showValue } from '../lib/util/show';
import { deleteSetting, getSetting, setSetting } from '../lib/storage/settings';
import type { JsonValue } from '../lib/storage/db';
import type {
  NearestTokens,
  ParameterMap,
  RaceSnapshot,
  RankHistory,
} from '../lib/protocol/compare-protocol';
import type { CompareSetup } from './compare-hash';

export interface SavedRace {
  key: string;
  savedAt: number;
  title: string;
  setup: CompareSetup;
  /** The tfjs backend the race ran on. */
  backend: string | null;
  snapshot: RaceSnapshot;
  maps: ParameterMap[];
  ranks: RankHistory[];
  nearest: NearestTokens[];
}

export interface SavedRaceEntry {
  key: string;
  savedAt: number;
  title: string;
  model: string;
  task: string;
  methods: string[];
}

/** The three calls of the settings store this needs (tests pass a Map-backed one). */
export interface SettingsStore {
  get(key: string): Promise<unknown>;
  set(key: string, value: JsonValue): Promise<void>;
  delete(key: string): Promise<void>;
}

const idbStore: SettingsStore = {
  get: (key) => getSetting(key),
  set: (key, value) => setSetting(key, value),
  delete: (key) => deleteSetting(key),
};

export const INDEX_KEY = 'races';
const PREFIX = 'race:';

// IndexedDB stores these by structured clone, so NaN (a metric not yet measured) survives; the
// store's type is JSON-shaped, hence the casts at its edge.
const asJson = (v: unknown): JsonValue => v as JsonValue;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** An index entry as saveRace writes it; anything else (a hand edit, a damaged record) is not one. */
function isEntry(e: unknown): e is SavedRaceEntry {
  return (
    isObject(e) &&
    typeof e.key === 'string' &&
    e.key.startsWith(PREFIX) &&
    typeof e.savedAt === 'number' &&
    typeof e.title === 'string' &&
    typeof e.model === 'string' &&
    typeof e.task === 'string' &&
    isStrings(e.methods)
  );
}

/** The saved races, newest first; entries that are not what saveRace writes are left out. */
export async function listSavedRaces(store: SettingsStore = idbStore): Promise<SavedRaceEntry[]> {
  const list = await store.get(INDEX_KEY);
  return Array.isArray(list) ? list.filter(isEntry) : [];
}

/** What is wrong with a stored race record, or null when the screens can show it. */
function raceProblem(r: Record<string, unknown>): string | null {
  if (typeof r.title !== 'string') return `its title is ${showValue(r.title)}`;
  const setup = r.setup;
  if (
    !isObject(setup) ||
    typeof setup.model !== 'string' ||
    typeof setup.task !== 'string' ||
    !isStrings(setup.methods)
  )
    return `its set-up is ${showValue(setup)}`;
  const snapshot = r.snapshot;
  if (!isObject(snapshot) || !Array.isArray(snapshot.lanes)) return `its results are ${showValue(snapshot)}`;
  const lane = snapshot.lanes.find((l) => !isObject(l) || typeof l.name !== 'string');
  if (lane !== undefined) return `a lane is ${showValue(lane)}`;
  for (const k of ['maps', 'ranks', 'nearest'] as const) {
    if (r[k] !== undefined && !Array.isArray(r[k])) return `its ${k} are ${showValue(r[k])}`;
  }
  return null;
}

/** Saves a race and lists it first; returns its entry. */
export async function saveRace(
  race: Omit<SavedRace, 'key' | 'savedAt'>,
  now = Date.now(),
  store: SettingsStore = idbStore,
): Promise<SavedRaceEntry> {
  const list = await listSavedRaces(store);
  // Two saves in the same millisecond still get two keys.
  let savedAt = now;
  while (list.some((e) => e.key === `${PREFIX}${savedAt}`)) savedAt++;
  const key = `${PREFIX}${savedAt}`;
  await store.set(key, asJson({ ...race, key, savedAt }));
  const entry: SavedRaceEntry = {
    key,
    savedAt,
    title: race.title,
    model: race.setup.model,
    task: race.setup.task,
    methods: race.snapshot.lanes.map((l) => l.name),
  };
  await store.set(INDEX_KEY, asJson([entry, ...list]));
  return entry;
}

export async function loadSavedRace(key: string, store: SettingsStore = idbStore): Promise<SavedRace> {
  const race = await store.get(key);
  if (race === undefined || race === null) {
    throw new NotReadyError(`the saved race ${key} is no longer in this browser: the list was refreshed`);
  }
  const problem = isObject(race) ? raceProblem(race) : `it is ${showValue(race)}`;
  if (problem) {
    throw new StorageError(`the saved race ${key} is damaged (${problem}): delete it and run the race again`);
  }
  const r = race as unknown as SavedRace;
  // Races saved before these were kept have none.
  return { ...r, maps: r.maps ?? [], ranks: r.ranks ?? [], nearest: r.nearest ?? [] };
}

export async function deleteSavedRace(key: string, store: SettingsStore = idbStore): Promise<void> {
  await store.delete(key);
  const list = await listSavedRaces(store);
  await store.set(INDEX_KEY, asJson(list.filter((e) => e.key !== key)));
}
