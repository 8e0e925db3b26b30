/**
 * Where checkpoints lie in IndexedDB (an index of runs, one manifest per run, blobs per generation)
 * and what reads or removes them without their tensors: listing and deleting. Apart from
 * checkpoints.ts, which writes and restores them through TensorFlow.js, so the Storage screen can
 * list and delete checkpoints on the main thread without loading tfjs.
 */
import type { JsonValue } from '../storage/db';
import type { LabDb } from '../storage/handle';

export interface CheckpointManifest {
  runId: string;
  generation: number;
  step: number;
  savedAt: number;
  bytes: number;
  /** What the caller needs to rebuild the run (model, method, config, task, settings). */
  meta: JsonValue;
}

export const manifestKey = (runId: string): string => `checkpoint:${runId}`;
export const INDEX_KEY = 'checkpoints';
export const blobOwner = (runId: string): string => `checkpoint:${runId}`;
export const blobName = (generation: number, part: 'tensors' | 'state'): string => `g${generation}/${part}`;

export async function checkpointRuns(db: LabDb): Promise<string[]> {
  return ((await db.getSetting<string[]>(INDEX_KEY)) ?? []).filter((x) => typeof x === 'string');
}

export async function readManifest(db: LabDb, runId: string): Promise<CheckpointManifest | null> {
  return ((await db.getSetting(manifestKey(runId))) as unknown as CheckpointManifest | undefined) ?? null;
}

/** Every run with a checkpoint, newest first. */
export async function listCheckpoints(db: LabDb): Promise<CheckpointManifest[]> {
  const out: CheckpointManifest[] = [];
  for (const runId of await checkpointRuns(db)) {
    const m = await readManifest(db, runId);
    if (m) out.push(m);
  }
  return out.sort((a, b) => b.savedAt - a.savedAt);
}

export async function deleteCheckpoint(db: LabDb, runId: string): Promise<void> {
  await db.deleteBlobs(blobOwner(runId));
  await db.deleteSetting(manifestKey(runId));
  await db.setSetting(
    INDEX_KEY,
    (await checkpointRuns(db)).filter((r) => r !== runId),
  );
}
