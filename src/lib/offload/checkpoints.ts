/**
 * Checkpoints of a training run in IndexedDB, written so that a reload, a crash or a closed tab
 * at any moment leaves the last complete checkpoint readable:
 *   1. the new generation's blobs (trainable weights + AdamW moments as safetensors, and the
 *      step, RNG state and run settings as JSON; src/lib/train/checkpoint.ts) are written under
 *      names no manifest points to yet;
 *   2. the run's manifest (one settings record) is switched to the new generation in one put;
 *   3. only then are the previous generation's blobs deleted.
 * A failure in 1 (a full disk included) leaves the old manifest and its blobs as they were; stray
 * blobs of an unfinished generation are removed by the next successful write.
 * The RNG state is the data position too: the trainer draws its batches and dropout seeds from it,
 * so a resumed run sees exactly the batches an uninterrupted one would.
 */
import { StorageError } from '../errors';
import type { JsonValue } from '../storage/db';
import type { LabDb } from '../storage/handle';
import { loadCheckpoint, saveCheckpoint } from '../train/checkpoint';
import type { Trainer } from '../train/trainer';

export interface CheckpointManifest {
  runId: string;
  generation: number;
  step: number;
  savedAt: number;
  bytes: number;
  /** What the caller needs to rebuild the run (model, method, config, task, settings). */
  meta: JsonValue;
}

const MANIFEST = (runId: string): string => `checkpoint:${runId}`;
const INDEX = 'checkpoints';
const owner = (runId: string): string => `checkpoint:${runId}`;
const blob = (generation: number, part: 'tensors' | 'state'): string => `g${generation}/${part}`;

async function index(db: LabDb): Promise<string[]> {
  return ((await db.getSetting<string[]>(INDEX)) ?? []).filter((x) => typeof x === 'string');
}

/** Writes a new checkpoint of the trainer's run and makes it the one resume reads. */
export async function writeCheckpoint(
  db: LabDb,
  runId: string,
  trainer: Trainer,
  meta: JsonValue,
): Promise<CheckpointManifest> {
  const previous = await readManifest(db, runId);
  const generation = (previous?.generation ?? 0) + 1;
  const files = await saveCheckpoint(trainer);
  const state = new TextEncoder().encode(files.state);
  try {
    await db.putBlob(owner(runId), blob(generation, 'tensors'), files.tensors);
    await db.putBlob(owner(runId), blob(generation, 'state'), state);
  } catch (e) {
    const why = e instanceof StorageError ? e.message : (e as Error).message;
    throw new StorageError(
      `checkpoint at step ${trainer.step} was not saved (${why}); ` +
        (previous ? `the checkpoint of step ${previous.step} is intact` : 'there is no earlier checkpoint'),
    );
  }
  const manifest: CheckpointManifest = {
    runId,
    generation,
    step: trainer.step,
    savedAt: Date.now(),
    bytes: files.tensors.byteLength + state.byteLength,
    meta,
  };
  await db.setSetting(MANIFEST(runId), manifest as unknown as JsonValue);
  const runs = await index(db);
  if (!runs.includes(runId)) await db.setSetting(INDEX, [...runs, runId]);
  // The old generation, and any unfinished one, can go now that the manifest points past them.
  for (let g = 1; g < generation; g++) {
    await db.deleteBlob(owner(runId), blob(g, 'tensors'));
    await db.deleteBlob(owner(runId), blob(g, 'state'));
  }
  return manifest;
}

export async function readManifest(db: LabDb, runId: string): Promise<CheckpointManifest | null> {
  return ((await db.getSetting(MANIFEST(runId))) as unknown as CheckpointManifest | undefined) ?? null;
}

/** Every run with a checkpoint, newest first. */
export async function listCheckpoints(db: LabDb): Promise<CheckpointManifest[]> {
  const out: CheckpointManifest[] = [];
  for (const runId of await index(db)) {
    const m = await readManifest(db, runId);
    if (m) out.push(m);
  }
  return out.sort((a, b) => b.savedAt - a.savedAt);
}

/**
 * Restores the run's last complete checkpoint into a trainer built with the same settings (same
 * model, method, config and seed); returns its manifest, or null when the run has none.
 */
export async function resumeFromCheckpoint(
  db: LabDb,
  runId: string,
  trainer: Trainer,
): Promise<CheckpointManifest | null> {
  const m = await readManifest(db, runId);
  if (!m) return null;
  const [tensors, state] = await Promise.all([
    db.getBlob(owner(runId), blob(m.generation, 'tensors')),
    db.getBlob(owner(runId), blob(m.generation, 'state')),
  ]);
  if (!tensors || !state) {
    throw new StorageError(
      `the checkpoint of ${runId} at step ${m.step} is incomplete in this browser: start the run again`,
    );
  }
  loadCheckpoint(
    trainer,
    { tensors: new Uint8Array(tensors), state: new TextDecoder().decode(state) },
    runId,
  );
  return m;
}

export async function deleteCheckpoint(db: LabDb, runId: string): Promise<void> {
  await db.deleteBlobs(owner(runId));
  await db.deleteSetting(MANIFEST(runId));
  await db.setSetting(
    INDEX,
    (await index(db)).filter((r) => r !== runId),
  );
}
