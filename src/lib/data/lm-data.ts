/**
 * Causal-LM batches from a token stream: random windows for training (drawn from a seeded RNG, so
 * the same seed gives the same batches) and fixed, non-overlapping windows for evaluation.
 */
import type { Rng } from '../util/rng';
import { FileLoadError } from '../errors';

export interface LmBatch {
  /** [B * T] input ids, row-major. */
  ids: Int32Array;
  /** [B * T] next-token labels; -100 is ignored. */
  labels: Int32Array;
  batch: number;
  seqLen: number;
}

export type TokenStream = Uint16Array | Int32Array | number[];

export function randomLmBatch(tokens: TokenStream, batch: number, seqLen: number, rng: Rng): LmBatch {
  if (tokens.length < seqLen + 1) {
    throw new FileLoadError(
      `the corpus has ${tokens.length} tokens, fewer than one window of ${seqLen + 1}: lower the sequence length or use a longer text`,
    );
  }
  const ids = new Int32Array(batch * seqLen);
  const labels = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    const start = rng.int(tokens.length - seqLen);
    for (let t = 0; t < seqLen; t++) {
      ids[b * seqLen + t] = tokens[start + t]!;
      labels[b * seqLen + t] = tokens[start + t + 1]!;
    }
  }
  return { ids, labels, batch, seqLen };
}

/** Consecutive windows covering the stream (at most maxBatches batches). */
export function evalLmBatches(
  tokens: TokenStream,
  batch: number,
  seqLen: number,
  maxBatches = Infinity,
): LmBatch[] {
  const out: LmBatch[] = [];
  const windows = Math.floor((tokens.length - 1) / seqLen);
  for (let w0 = 0; w0 < windows && out.length < maxBatches; w0 += batch) {
    const b = Math.min(batch, windows - w0);
    const ids = new Int32Array(b * seqLen);
    const labels = new Int32Array(b * seqLen);
    for (let i = 0; i < b; i++) {
      const start = (w0 + i) * seqLen;
      for (let t = 0; t < seqLen; t++) {
        ids[i * seqLen + t] = tokens[start + t]!;
        labels[i * seqLen + t] = tokens[start + t + 1]!;
      }
    }
    out.push({ ids, labels, batch: b, seqLen });
  }
  return out;
}
