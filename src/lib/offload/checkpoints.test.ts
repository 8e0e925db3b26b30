import 'fake-indexeddb/auto';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { initNodeBackend } from '../backend/node';
import { CheckpointError, StorageError } from '../errors';
import { Gpt2Model } from '../model/gpt2';
import { methodByCliName } from '../peft/registry';
import type { Adapter } from '../peft/types';
import { deleteLabDb } from '../storage/db';
import { openLabDb } from '../storage/handle';
import type { LabDb } from '../storage/handle';
import { Trainer } from '../train/trainer';
import {
  deleteCheckpoint,
  listCheckpoints,
  readManifest,
  resumeFromCheckpoint,
  writeCheckpoint,
} from './checkpoints';

const DB = 'checkpoints-test';
const TOKENS = Int32Array.from({ length: 3000 }, (_, i) => (i * 11 + ((i * i) % 17)) % 50);
let model: Gpt2Model;
let db: LabDb;

beforeAll(async () => {
  await initNodeBackend('wasm');
  model = Gpt2Model.random(
    {
      vocabSize: 50,
      nPositions: 32,
      nEmbd: 16,
      nLayer: 2,
      nHead: 2,
      nInner: 64,
      layerNormEpsilon: 1e-5,
      bosTokenId: 0,
      eosTokenId: 0,
    },
    3,
  );
  db = await openLabDb(DB);
});
afterAll(async () => {
  await deleteLabDb(DB);
});

function run(method = 'lora'): { adapter: Adapter; trainer: Trainer } {
  const m = methodByCliName(method);
  // Dropout on, so the resumed run must also get the dropout seeds right.
  const adapter = m.create(model, { ...m.defaults('CAUSAL_LM'), loraDropout: 0.1 } as never, 5, {});
  const trainer = new Trainer(model, adapter, TOKENS, {
    steps: 8,
    lr: 1e-2,
    batchSize: 2,
    seqLen: 12,
    seed: 4,
  });
  return { adapter, trainer };
}

async function steps(t: Trainer, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await t.trainStep()).loss);
  return out;
}

describe('checkpoints in IndexedDB', () => {
  it.each(['lora', 'prompt-tuning'])(
    '%s: a resumed run gives the losses of an uninterrupted one',
    async (method) => {
      const a = run(method);
      await steps(a.trainer, 3);
      const manifest = await writeCheckpoint(db, `run-${method}`, a.trainer, { method });
      expect(manifest).toMatchObject({ step: 3, generation: 1, meta: { method } });
      const rest = await steps(a.trainer, 4);
      a.trainer.dispose();
      a.adapter.dispose();

      // "Reload": a fresh adapter and trainer with the same settings, then the checkpoint.
      const b = run(method);
      const m = await resumeFromCheckpoint(db, `run-${method}`, b.trainer);
      expect(m?.step).toBe(3);
      expect(b.trainer.step).toBe(3);
      expect(await steps(b.trainer, 4)).toEqual(rest);
      b.trainer.dispose();
      b.adapter.dispose();
    },
  );

  it('keeps the last complete checkpoint when a write fails half way or the disk is full', async () => {
    const a = run();
    await steps(a.trainer, 2);
    await writeCheckpoint(db, 'crash', a.trainer, null);
    await steps(a.trainer, 2);
    // The tab "closes" after the tensors are written but before the state: put fails the 2nd time.
    const put = db.putBlob.bind(db);
    let calls = 0;
    db.putBlob = async (...args: Parameters<LabDb['putBlob']>) => {
      if (++calls === 2) throw new DOMException('the quota has been exceeded', 'QuotaExceededError');
      return put(...args);
    };
    try {
      await expect(writeCheckpoint(db, 'crash', a.trainer, null)).rejects.toThrow(
        /checkpoint at step 4 was not saved .*the checkpoint of step 2 is intact/,
      );
      await expect(writeCheckpoint(db, 'crash', a.trainer, null)).resolves.toMatchObject({ step: 4 });
    } finally {
      db.putBlob = put;
    }
    const m = await readManifest(db, 'crash');
    expect(m).toMatchObject({ step: 4, generation: 2 });
    a.trainer.dispose();
    a.adapter.dispose();
    const b = run();
    await resumeFromCheckpoint(db, 'crash', b.trainer);
    expect(b.trainer.step).toBe(4);
    // Written again over the unfinished generation 2, then the older one removed: only one remains.
    expect(await db.getBlob('checkpoint:crash', 'g1/tensors')).toBeUndefined();
    expect((await listCheckpoints(db)).map((x) => x.runId)).toContain('crash');
    await deleteCheckpoint(db, 'crash');
    expect(await readManifest(db, 'crash')).toBeNull();
    await expect(resumeFromCheckpoint(db, 'crash', b.trainer)).resolves.toBeNull();
    b.trainer.dispose();
    b.adapter.dispose();
  });

  it('says so when a manifest points to blobs that are gone', async () => {
    const a = run();
    await steps(a.trainer, 1);
    await writeCheckpoint(db, 'gone', a.trainer, null);
    await db.deleteBlobs('checkpoint:gone');
    await expect(resumeFromCheckpoint(db, 'gone', a.trainer)).rejects.toThrow(StorageError);
    a.trainer.dispose();
    a.adapter.dispose();
  });
  it('refuses a damaged manifest by name, lists the others, and writes a new checkpoint over it (fuzz findings)', async () => {
    const a = run();
    await steps(a.trainer, 1);
    await writeCheckpoint(db, 'good', a.trainer, null);
    await writeCheckpoint(db, 'bad', a.trainer, null);
    await db.putBlob('checkpoint:bad', 'g7/tensors', new Uint8Array(4));
    // Before: a manifest was cast, not read; a NaN generation named blobs "gNaN/tensors".
    await db.setSetting('checkpoint:bad', { runId: 'bad', generation: 'NaN', step: 1, savedAt: 1, bytes: 0 });
    await expect(readManifest(db, 'bad')).rejects.toThrow(CheckpointError);
    await expect(readManifest(db, 'bad')).rejects.toThrow(/"generation" must be an integer >= 1, got "NaN"/);
    await expect(resumeFromCheckpoint(db, 'bad', a.trainer)).rejects.toThrow(CheckpointError);
    const listed = (await listCheckpoints(db)).map((m) => m.runId);
    expect(listed).toContain('good');
    expect(listed).not.toContain('bad');
    // A manifest naming another run is not this run's.
    await db.setSetting('checkpoint:bad', { runId: 'good', generation: 1, step: 1, savedAt: 1, bytes: 0 });
    await expect(readManifest(db, 'bad')).rejects.toThrow(/names run "good"/);
    // The damaged one's blobs go and numbering starts again.
    await expect(writeCheckpoint(db, 'bad', a.trainer, null)).resolves.toMatchObject({
      generation: 1,
      step: 1,
    });
    expect(await db.getBlob('checkpoint:bad', 'g7/tensors')).toBeUndefined();
    // Before: an index that was not an array threw TypeError (.filter is not a function).
    await db.setSetting('checkpoints', { runs: ['good'] });
    expect(await listCheckpoints(db)).toEqual([]);
    await db.setSetting('checkpoints', ['good', 'bad', 'gone', 'run-lora', 'run-prompt-tuning']);
    a.trainer.dispose();
    a.adapter.dispose();
  });
});
