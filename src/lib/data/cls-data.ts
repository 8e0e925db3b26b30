/**
 * Classification batches: examples tokenized once, then drawn into padded batches.
 * - Truncation to `maxLength` tokens (HF's truncation=True, max_length).
 * - Right padding with eos (GPT-2 has no pad token; the usual recipe sets pad_token = eos_token) to
 *   the longest row of the batch (DataCollatorWithPadding), with an attention mask of 1s over the
 *   real tokens: the mask, not the token id, says what is padding.
 * - TOKEN_CLS: each word is encoded on its own with a leading space, as HF's GPT-2 tokenizer does
 *   with is_split_into_words=True and add_prefix_space=True (every word, the first included, gets
 *   its "Ġ"); alignWordLabels labels the first sub-token and gives -100 to the rest and to padding.
 */
import type { TextTokenizer } from '../tokenizer/tokenizer';
import type { Rng } from '../util/rng';
import { IGNORE_INDEX, alignWordLabels } from './tasks/align';
import { InternalError, PeftConfigError } from '../errors';

export type ClsTaskType = 'SEQ_CLS' | 'TOKEN_CLS';

/** One tokenized example: ids, and one label (SEQ_CLS) or one label per id (TOKEN_CLS, -100 skipped). */
export interface EncodedExample {
  ids: number[];
  label: number | number[];
}

export interface EncodedSet {
  task: ClsTaskType;
  examples: EncodedExample[];
  padId: number;
}

/** A padded batch: everything [B * T] row-major, labels [B] (SEQ_CLS) or [B * T] (TOKEN_CLS). */
export interface ClsBatch {
  task: ClsTaskType;
  ids: Int32Array;
  /** 1 on real tokens, 0 on padding. */
  mask: Float32Array;
  labels: Int32Array;
  batch: number;
  seqLen: number;
}

export const DEFAULT_MAX_LENGTH = 128;

/** Tokenizes {text, label} examples (label ids). */
export function encodeSeqCls(
  tok: TextTokenizer,
  examples: readonly { text: string; label: number }[],
  padId: number,
  maxLength = DEFAULT_MAX_LENGTH,
  template?: PromptTemplate,
): EncodedSet {
  if (!template) {
    return {
      task: 'SEQ_CLS',
      padId,
      examples: examples.map((e) => ({ ids: tok.encode(e.text).slice(0, maxLength), label: e.label })),
    };
  }
  // A manual prompt around the input (P-tuning's MP): the input is cut, never the prompt, so the
  // words the classifier reads last (the suffix) are always there.
  const before = template.before ? tok.encode(template.before) : [];
  const after = template.after ? tok.encode(template.after) : [];
  const room = maxLength - before.length - after.length;
  if (room < 1) {
    throw new PeftConfigError(
      `the prompt template takes ${before.length + after.length} tokens, leaving no room for the input in ${maxLength}: shorten it or raise the sequence length`,
    );
  }
  return {
    task: 'SEQ_CLS',
    padId,
    examples: examples.map((e) => ({
      ids: [...before, ...tok.encode(e.text).slice(0, room), ...after],
      label: e.label,
    })),
  };
}

/** A manual prompt: text before and after the input (`"Mail: {text} This mail is"`). */
export interface PromptTemplate {
  before: string;
  after: string;
}

/** Splits a template at its one `{text}`; a template without exactly one is refused. */
export function parseTemplate(template: string): PromptTemplate {
  const parts = template.split('{text}');
  if (parts.length !== 2) {
    throw new PeftConfigError(
      `a prompt template needs exactly one {text} where the input goes; "${template}" has ${parts.length - 1}`,
    );
  }
  return { before: parts[0]!, after: parts[1]! };
}

/** Tokenizes {words, tags} examples (tag ids, one per word), first-sub-token labelling. */
export function encodeTokenCls(
  tok: TextTokenizer,
  examples: readonly { words: readonly string[]; tags: readonly number[] }[],
  padId: number,
  maxLength = DEFAULT_MAX_LENGTH,
): EncodedSet {
  return {
    task: 'TOKEN_CLS',
    padId,
    examples: examples.map((e) => {
      const aligned = alignWordLabels(
        e.words.map((w) => tok.encode(' ' + w)),
        e.tags,
      );
      return { ids: aligned.ids.slice(0, maxLength), label: aligned.labels.slice(0, maxLength) };
    }),
  };
}

/** Pads the chosen examples into one batch (T = the longest of them, at least 1). */
export function padBatch(set: EncodedSet, indices: readonly number[]): ClsBatch {
  const B = indices.length;
  const rows = indices.map((i) => {
    const e = set.examples[i];
    if (!e) throw new InternalError(`example ${i} is outside 0..${set.examples.length - 1}`);
    return e;
  });
  const T = Math.max(1, ...rows.map((e) => e.ids.length));
  const ids = new Int32Array(B * T).fill(set.padId);
  const mask = new Float32Array(B * T);
  const tokenLevel = set.task === 'TOKEN_CLS';
  const labels = new Int32Array(tokenLevel ? B * T : B).fill(IGNORE_INDEX);
  rows.forEach((e, b) => {
    e.ids.forEach((id, t) => {
      ids[b * T + t] = id;
      mask[b * T + t] = 1;
    });
    if (tokenLevel) (e.label as number[]).forEach((l, t) => (labels[b * T + t] = l));
    else labels[b] = e.label as number;
  });
  return { task: set.task, ids, mask, labels, batch: B, seqLen: T };
}

/** n example indices drawn uniformly with replacement (so a checkpoint's RNG state is the whole sampler state). */
export function sampleIndices(count: number, n: number, rng: Rng): number[] {
  // Internal: loading refuses a split with no examples (FileLoadError).
  if (count < 1) throw new InternalError('the classification set has no examples');
  return Array.from({ length: n }, () => rng.int(count));
}

/** Consecutive batches covering the set in order (evaluation). */
export function* evalClsBatches(set: EncodedSet, batchSize: number): Generator<ClsBatch> {
  for (let i = 0; i < set.examples.length; i += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, set.examples.length - i) }, (_, k) => i + k);
    yield padBatch(set, idx);
  }
}
