/**
 * A database written by every earlier schema version opens in the current code, is upgraded to
 * LAB_DB_VERSION, and reads back what the old code read from it. The fixtures are dumps of databases
 * that the storage code of those commits wrote itself (scripts/make-db-fixtures.ts, run from `git
 * show <commit>:src/lib/storage/db.ts`), with what its own readers returned; fake-indexeddb holds them.
 */
import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_DB_VERSION, closeLabDb, deleteLabDb } from './db';
import { dumpDatabase, restoreDatabase } from './db-dump';
import type { DbDump } from './db-dump';
import { openLabDb } from './handle';

const DIR = join(process.cwd(), 'src/lib/storage/fixtures');

interface Fixture extends DbDump {
  commit: string;
  expected: {
    adapters: unknown[];
    adapterWeights: string;
    models: unknown[];
    modelFiles: Record<string, string>;
    blob: string;
    settings: { backend: unknown; lab: unknown };
    datasets?: unknown[];
    datasetTrain?: string;
  };
}

const fixtures: [string, Fixture][] = readdirSync(DIR)
  .filter((f) => /^db-v\d+-\w+\.json$/.test(f))
  .sort()
  .map((f) => [f, JSON.parse(readFileSync(join(DIR, f), 'utf8')) as Fixture]);

const sha256 = (b: ArrayBuffer | undefined): string | null =>
  b ? createHash('sha256').update(new Uint8Array(b)).digest('hex') : null;

const opened: string[] = [];
afterEach(async () => {
  for (const name of opened.splice(0)) await deleteLabDb(name);
  await closeLabDb();
});

describe('schema upgrades from every earlier version', () => {
  it('has a fixture written by each version before the current one', () => {
    const versions = new Set(fixtures.map(([, f]) => f.version));
    for (let v = 1; v < LAB_DB_VERSION; v++) {
      expect(
        versions.has(v),
        `no fixture written by schema version ${v}: see scripts/make-db-fixtures.ts`,
      ).toBe(true);
    }
  });

  it.each(fixtures)('%s opens, upgrades, and reads back as the old code read it', async (file, fx) => {
    const name = `upgrade-${fx.commit}`;
    opened.push(name);
    await restoreDatabase(indexedDB, name, fx);
    const db = await openLabDb(name);

    const e = fx.expected;
    expect(await db.listAdapters()).toEqual(e.adapters);
    expect(sha256((await db.getAdapter('adapter-1'))?.weights)).toBe(e.adapterWeights);
    expect(await db.listModels()).toEqual(e.models);
    const model = await db.getModel('hub: peftlab/peftlab-s');
    expect(Object.fromEntries(Object.entries(model?.files ?? {}).map(([k, v]) => [k, sha256(v)]))).toEqual(
      e.modelFiles,
    );
    expect(sha256(await db.getBlob('checkpoint:run-1', 'state'))).toBe(e.blob);
    expect(await db.getSetting('backend')).toEqual(e.settings.backend);
    expect(await db.getSetting('lab')).toEqual(e.settings.lab);
    if (e.datasets) {
      expect(await db.listDatasets()).toEqual(e.datasets);
      expect(sha256(await db.getDatasetFile('imported:abc123', 'train.csv'))).toBe(e.datasetTrain);
    } else {
      // Stores added since that version start empty.
      expect(await db.listDatasets()).toEqual([]);
    }

    // The upgraded database is a current one, and it takes new writes beside the old records.
    await db.saveAdapterRecord({
      ...(e.adapters[0] as Parameters<typeof db.saveAdapterRecord>[0]),
      id: 'adapter-2',
      weights: new Uint8Array([1, 2, 3]).buffer,
    });
    expect((await db.listAdapters()).map((a) => a.name).sort()).toEqual(['my lora', 'my lora (2)']);
    await closeLabDb(name);
    const after = await dumpDatabase(indexedDB, name);
    expect(after.version, file).toBe(LAB_DB_VERSION);
    // Every store and record of the old version is still there (the new adapter's beside them).
    for (const old of fx.stores) {
      const now = after.stores.find((s) => s.name === old.name)!;
      expect(now, old.name).toBeDefined();
      expect(now.keyPath).toEqual(old.keyPath);
      const keys = new Set(now.records.map(([k]) => JSON.stringify(k)));
      for (const [k] of old.records)
        expect(keys.has(JSON.stringify(k)), `${old.name} ${JSON.stringify(k)}`).toBe(true);
    }
  });
});
