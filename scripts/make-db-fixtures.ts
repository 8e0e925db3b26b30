/**
 * Schema-upgrade fixtures: for each commit below, the storage code as it was then (db.ts and the
 * errors it imports, from `git show <commit>:path`) writes a small database in fake-indexeddb
 * (an adapter, a cached model, a blob, settings, and from version 2 an imported data set), reads it
 * back through its own functions, and the database is dumped with what those functions returned:
 * src/lib/storage/fixtures/db-v<version>-<commit>.json. src/lib/storage/upgrade.test.ts restores each
 * and opens it with the current code. Run: `npx tsx scripts/make-db-fixtures.ts` (needs git history).
 * When LAB_DB_VERSION goes up, add the last commit of the old version here and run it again.
 */
import 'fake-indexeddb/auto';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { dumpDatabase } from '../src/lib/storage/db-dump';

/**
 * The first commit of each schema version. (The last commit of version 1, d4b267d, writes a dump
 * identical to 6f2d295's but for this name, so it is not kept.)
 */
const COMMITS = [
  { commit: '6f2d295', version: 1 },
  { commit: 'b492ff7', version: 2 },
];

const ROOT = process.cwd();
const WORK = join(ROOT, '.cache/db-history');
const OUT = join(ROOT, 'src/lib/storage/fixtures');

/** Deterministic bytes, different per seed. */
function bytes(n: number, seed: number): ArrayBuffer {
  const out = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out.buffer;
}

const sha256 = (b: ArrayBuffer | undefined): string | null =>
  b ? createHash('sha256').update(new Uint8Array(b)).digest('hex') : null;

/** The methods this script calls, as every version so far has them. */
interface OldLabDb {
  saveAdapterRecord(rec: Record<string, unknown>, opts?: { chunkBytes?: number }): Promise<unknown>;
  listAdapters(): Promise<Record<string, unknown>[]>;
  getAdapter(id: string): Promise<{ weights: ArrayBuffer } | undefined>;
  saveModel(rec: Record<string, unknown>, opts?: { chunkBytes?: number }): Promise<unknown>;
  listModels(): Promise<Record<string, unknown>[]>;
  getModel(id: string): Promise<{ files: Record<string, ArrayBuffer> } | undefined>;
  putBlob(owner: string, name: string, data: ArrayBuffer, opts?: { chunkBytes?: number }): Promise<void>;
  getBlob(owner: string, name: string): Promise<ArrayBuffer | undefined>;
  setSetting(key: string, value: unknown): Promise<void>;
  getSetting(key: string): Promise<unknown>;
  saveDataset?(
    rec: Record<string, unknown>,
    files: Record<string, ArrayBuffer>,
    opts?: { chunkBytes?: number },
  ): Promise<unknown>;
  listDatasets?(): Promise<Record<string, unknown>[]>;
  getDatasetFile?(id: string, file: string): Promise<ArrayBuffer | undefined>;
}

const text = (s: string): ArrayBuffer => new TextEncoder().encode(s).buffer as ArrayBuffer;
const SMALL = { chunkBytes: 1024 };

async function write(db: OldLabDb): Promise<void> {
  await db.saveAdapterRecord(
    {
      id: 'adapter-1',
      name: 'my lora',
      createdAt: 1_764_000_000_000,
      baseModel: 'peftlab-s',
      peftType: 'LORA',
      taskType: 'CAUSAL_LM',
      method: 'lora',
      trainableParams: 9216,
      steps: 40,
      finalLoss: 4.25,
      configJson: '{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["c_attn"]}',
      weights: bytes(2600, 1),
    },
    SMALL,
  );
  await db.saveModel(
    {
      id: 'hub: peftlab/peftlab-s',
      source: 'hub',
      files: { 'config.json': text('{"model_type": "gpt2"}'), 'model.safetensors': bytes(3100, 2) },
      addedAt: 1_764_000_001_000,
    },
    SMALL,
  );
  await db.putBlob('checkpoint:run-1', 'state', bytes(1500, 3), SMALL);
  await db.setSetting('backend', 'wasm');
  await db.setSetting('lab', { steps: 40, method: 'lora', task: 'moby-dick' });
  if (db.saveDataset) {
    const train = text('text,label\nwin cash now,spam\nsee you at noon,ham\n');
    const validation = text('text,label\nfree prize,spam\n');
    await db.saveDataset(
      {
        id: 'imported:abc123',
        name: 'my spam',
        addedAt: 1_764_000_002_000,
        taskType: 'SEQ_CLS',
        source: { fileName: 'spam.csv', format: 'csv', bytes: 80, textColumn: 'text', labelColumn: 'label' },
        labels: ['ham', 'spam'],
        files: { train: 'train.csv', validation: 'validation.csv', test: 'test.csv' },
        splits: {
          train: { examples: 2, bytes: train.byteLength, labelCounts: { ham: 1, spam: 1 } },
          validation: { examples: 1, bytes: validation.byteLength, labelCounts: { spam: 1 } },
          test: { examples: 0, bytes: 0, labelCounts: {} },
        },
        skippedRows: 0,
        preview: [{ text: 'free prize', label: 'spam' }],
      },
      { 'train.csv': train, 'validation.csv': validation, 'test.csv': new ArrayBuffer(0) },
      SMALL,
    );
  }
}

/** What the old code's own readers return: the upgrade test expects the current readers to agree. */
async function read(db: OldLabDb): Promise<Record<string, unknown>> {
  const model = await db.getModel('hub: peftlab/peftlab-s');
  return {
    adapters: await db.listAdapters(),
    adapterWeights: sha256((await db.getAdapter('adapter-1'))?.weights),
    models: await db.listModels(),
    modelFiles: Object.fromEntries(Object.entries(model?.files ?? {}).map(([k, v]) => [k, sha256(v)])),
    blob: sha256(await db.getBlob('checkpoint:run-1', 'state')),
    settings: { backend: await db.getSetting('backend'), lab: await db.getSetting('lab') },
    ...(db.listDatasets && db.getDatasetFile
      ? {
          datasets: await db.listDatasets(),
          datasetTrain: sha256(await db.getDatasetFile('imported:abc123', 'train.csv')),
        }
      : {}),
  };
}

rmSync(WORK, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
for (const { commit, version } of COMMITS) {
  const dir = join(WORK, commit);
  for (const file of ['src/lib/storage/db.ts', 'src/lib/errors.ts']) {
    mkdirSync(join(dir, file, '..'), { recursive: true });
    writeFileSync(join(dir, file), execFileSync('git', ['show', `${commit}:${file}`]));
  }
  const old = (await import(pathToFileURL(join(dir, 'src/lib/storage/db.ts')).href)) as {
    LAB_DB_VERSION: number;
    openLabDb(name: string): Promise<OldLabDb>;
    closeLabDb(name?: string): Promise<void>;
  };
  if (old.LAB_DB_VERSION !== version)
    throw new Error(`${commit} has version ${old.LAB_DB_VERSION}, not ${version}`);
  const name = `peft-lab-${commit}`;
  const db = await old.openLabDb(name);
  await write(db);
  const expected = await read(db);
  await old.closeLabDb(name);
  const dump = await dumpDatabase(indexedDB, name);
  const out = join(OUT, `db-v${version}-${commit}.json`);
  writeFileSync(out, `${JSON.stringify({ commit, ...dump, expected }, null, 1)}\n`);
  console.log(
    `${out}: version ${dump.version}, ${dump.stores.map((s) => `${s.name} ${s.records.length}`).join(', ')}`,
  );
}
rmSync(WORK, { recursive: true, force: true });
