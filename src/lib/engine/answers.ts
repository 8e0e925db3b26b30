/**
 * One input answered by a model with an adapter and its head, as the Lab's Try it and the Compare
 * screen's side-by-side both need: class probabilities for a text (SEQ_CLS) and a tag per word
 * (TOKEN_CLS, read at each word's first sub-token, the position HF labels). Readbacks are async
 * (WebGPU).
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors';
import { encodeSeqCls, encodeTokenCls, padBatch } from '../data/cls-data';
import { IGNORE_INDEX } from '../data/tasks/align';
import type { DecoderModel } from '../model/decoder';
import type { TaskHead } from '../model/heads';
import { reservedPositions } from '../peft/forward';
import type { Adapter } from '../peft/types';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import { clsLogits } from '../train/classification';

export function softmax(row: ArrayLike<number>): number[] {
  const max = Math.max(...Array.from(row));
  const e = Array.from(row, (x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

/** Class probabilities (label-id order) of one text. */
export async function classifyText(
  model: DecoderModel,
  tokenizer: TextTokenizer,
  adapter: Adapter,
  head: TaskHead,
  text: string,
): Promise<number[]> {
  const set = encodeSeqCls(
    tokenizer,
    [{ text, label: 0 }],
    tokenizer.eosTokenId ?? 0,
    model.config.nPositions - reservedPositions(adapter),
  );
  if (set.examples[0]!.ids.length === 0) throw new InputError('the text is empty: type some text first');
  const logits = tf.tidy(() => clsLogits(model, adapter, head, padBatch(set, [0]), false, 0)); // [1, L]
  const row = await logits.data();
  logits.dispose();
  return softmax(row);
}

/** The text split on whitespace and a predicted label id per word. */
export async function tagWords(
  model: DecoderModel,
  tokenizer: TextTokenizer,
  adapter: Adapter,
  head: TaskHead,
  text: string,
): Promise<{ words: string[]; ids: number[] }> {
  const words = text.split(/\s+/).filter((w) => w !== '');
  if (words.length === 0) throw new InputError('the text is empty: type a sentence first');
  const max = model.config.nPositions - reservedPositions(adapter);
  const set = encodeTokenCls(
    tokenizer,
    [{ words, tags: words.map(() => 0) }],
    tokenizer.eosTokenId ?? 0,
    Infinity,
  );
  const ex = set.examples[0]!;
  if (ex.ids.length > max) {
    throw new InputError(
      `the sentence is ${ex.ids.length} tokens; this model reads at most ${max}: shorten it`,
    );
  }
  const pred = tf.tidy(() =>
    tf.argMax(
      tf.reshape(clsLogits(model, adapter, head, padBatch(set, [0]), false, 0), [-1, head.numLabels]),
      -1,
    ),
  );
  const got = await pred.data();
  pred.dispose();
  const ids: number[] = [];
  (ex.label as number[]).forEach((l, t) => {
    if (l !== IGNORE_INDEX) ids.push(got[t]!);
  });
  return { words, ids };
}
