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
import { CheckpointError, StorageError } from '../errors';
import type { JsonValue } from '../storage/db';
import type { LabDb } from '../storage/handle';
import {
  blobName,
  blobOwner,
  checkpointRuns,
  INDEX_KEY,
  manifestKey,
  readManifest,
} from './checkpoint-manifest';
import type { CheckpointManifest } from './checkpoint-manifest';
import { loadCheckpoint, saveCheckpoint } from '../train/checkpoint';
import type { Trainer } from '../train/trainer';

/** Writes a new checkpoint of the trainer's run and makes it the one resume reads. */
export async function writeCheckpoint(
  db: LabDb,
  runId: string,
  trainer: Trainer,
  meta: JsonValue,
): Promise<CheckpointManifest> {
  // A damaged manifest does not block new checkpoints: its blobs go, and numbering starts again.
  const previous = await readManifest(db, runId).catch(async (e: unknown) => {
    if (!(e instanceof CheckpointError)) throw e;
    await db.deleteBlobs(blobOwner(runId));
    return null;
  });
  const generation = (previous?.generation ?? 0) + 1;
  const files = await saveCheckpoint(trainer);
  const state = new TextEncoder().encode(files.state);
  try {
    await db.putBlob(blobOwner(runId), blobName(generation, 'tensors'), files.tensors);
    await db.putBlob(blobOwner(runId), blobName(generation, 'state'), state);
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
  await db.setSetting(manifestKey(runId), manifest as unknown as JsonValue);
  const runs = await checkpointRuns(db);
  if (!runs.includes(runId)) await db.setSetting(INDEX_KEY, [...runs, runId]);
  // The old generation, and any unfinished one, can go now that the manifest points past them.
  for (let g = 1; g < generation; g++) {
    await db.deleteBlob(blobOwner(runId), blobName(g, 'tensors'));
    await db.deleteBlob(blobOwner(runId), blobName(g, 'state'));
  }
  return manifest;
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
    db.getBlob(blobOwner(runId), blobName(m.generation, 'tensors')),
    db.getBlob(blobOwner(runId), blobName(m.generation, 'state')),
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

export { deleteCheckpoint, listCheckpoints, readManifest } from './checkpoint-manifest';
export type { CheckpointManifest } from './checkpoint-manifest';
