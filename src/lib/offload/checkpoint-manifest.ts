/**
 * Where checkpoints lie in IndexedDB (an index of runs, one manifest per run, blobs per generation)
 * and what reads or removes them without their tensors: listing and deleting. Apart from
 * checkpoints.ts, which writes and restores them through TensorFlow.js, so the Storage screen can
 * list and delete checkpoints on the main thread without loading tfjs.
 */
import { CheckpointError } from '../errors';
import type { JsonValue } from '../storage/db';
import type { LabDb } from '../storage/handle';
import { showValue } from '../util/show';

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

/** The runs in the index; a damaged index (not an array) lists none rather than failing the screen. */
export async function checkpointRuns(db: LabDb): Promise<string[]> {
  const runs: unknown = await db.getSetting(INDEX_KEY);
  return Array.isArray(runs) ? runs.filter((x): x is string => typeof x === 'string') : [];
}

/**
 * A stored manifest, checked field by field: IndexedDB holds whatever an older build, another tab
 * or a damaged profile wrote, and `generation` names the blobs a resume reads.
 */
export function parseManifest(raw: unknown, runId: string): CheckpointManifest {
  const where = `the checkpoint manifest of run ${showValue(runId)}`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CheckpointError(`${where} is ${showValue(raw)}, not an object: delete the checkpoint`);
  }
  const m = raw as Record<string, unknown>;
  if (m.runId !== runId) {
    throw new CheckpointError(`${where} names run ${showValue(m.runId)}: delete the checkpoint`);
  }
  const count = (key: 'generation' | 'step' | 'bytes', min: number): number => {
    const v = m[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw new CheckpointError(
        `${where}: "${key}" must be an integer >= ${min}, got ${showValue(v)}; delete the checkpoint`,
      );
    }
    return v;
  };
  const savedAt = m.savedAt;
  if (typeof savedAt !== 'number' || !Number.isFinite(savedAt) || savedAt < 0) {
    throw new CheckpointError(
      `${where}: "savedAt" must be a time, got ${showValue(savedAt)}; delete the checkpoint`,
    );
  }
  return {
    runId,
    generation: count('generation', 1),
    step: count('step', 0),
    savedAt,
    bytes: count('bytes', 0),
    meta: (m.meta ?? null) as JsonValue,
  };
}

/** The run's manifest, or null when it has none; a damaged one is a CheckpointError. */
export async function readManifest(db: LabDb, runId: string): Promise<CheckpointManifest | null> {
  const raw: unknown = await db.getSetting(manifestKey(runId));
  return raw === undefined ? null : parseManifest(raw, runId);
}

/** Every run with a checkpoint, newest first. */
export async function listCheckpoints(db: LabDb): Promise<CheckpointManifest[]> {
  const out: CheckpointManifest[] = [];
  for (const runId of await checkpointRuns(db)) {
    // A damaged manifest is left out of the list (its run cannot resume); the others still show.
    const m = await readManifest(db, runId).catch((e: unknown) => {
      if (e instanceof CheckpointError) return null;
      throw e;
    });
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
