/**
 * Word labels -> BPE-token labels for token classification, as Hugging Face's token-classification
 * recipe does it: the first sub-token of each word carries the word's label, the others carry
 * IGNORE_INDEX, so the loss and tokenAccuracy see each word exactly once.
 */

/** The label the loss and the metrics skip (PyTorch's CrossEntropyLoss ignore_index). */
export const IGNORE_INDEX = -100;

export interface AlignedTokens {
  /** BPE ids of all words, in order. */
  ids: number[];
  /** One label per id: the word's label on its first sub-token, IGNORE_INDEX on the rest. */
  labels: number[];
}

/**
 * @param wordIds the BPE ids of each word (a word the tokenizer turns into no ids is skipped, and
 *   its label with it)
 * @param labels one label id per word
 */
export function alignWordLabels(
  wordIds: readonly (readonly number[])[],
  labels: readonly number[],
): AlignedTokens {
  if (wordIds.length !== labels.length) {
    // Internal: task data refuses rows whose words and tags differ in length (FileLoadError).
    throw new RangeError(`alignWordLabels: ${wordIds.length} words but ${labels.length} labels`);
  }
  const out: AlignedTokens = { ids: [], labels: [] };
  wordIds.forEach((ids, w) => {
    ids.forEach((id, i) => {
      out.ids.push(id);
      out.labels.push(i === 0 ? labels[w]! : IGNORE_INDEX);
    });
  });
  return out;
}
