/**
 * Loads a HuggingFace `tokenizer.json` with @huggingface/tokenizers and exposes the few calls the
 * engine needs. Two kinds of BPE are read: byte-level (GPT-2, Llama 3, Qwen2, SmolLM2) and
 * SentencePiece-style with byte fallback (Llama 2, Mistral: `▁` for spaces, `<0xNN>` byte tokens),
 * so every text has an encoding. Anything else is refused with a TokenizerError that says what
 * was found.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from '../errors';
import { showValue } from '../util/show';

/**
 * Refuses a BPE model that parses but cannot be right, before the library sees it: the library
 * takes any value as an id (a huge one makes it allocate or loop for minutes) and any merge
 * (a merge whose parts or result are not tokens loads and then encodes wrongly).
 */
function checkBpe(vocab: object, merges: unknown[], added: unknown, source: string): void {
  const fail = (msg: string): never => {
    throw new TokenizerError(
      `${source}: ${msg}; the file is damaged, use the tokenizer.json the model came with`,
    );
  };
  const entries = Object.entries(vocab as Record<string, unknown>);
  if (entries.length === 0) fail('the vocab is empty');
  const addedList = added === undefined || added === null ? [] : added;
  if (!Array.isArray(addedList)) return fail(`added_tokens is ${showValue(addedList)}, not a list`);
  // Ids are dense from 0: the vocab's, then the added tokens' (which may repeat vocab entries).
  const limit = entries.length + addedList.length;
  const ids = new Set<number>();
  for (const [token, id] of entries) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= limit) {
      fail(`vocab token ${showValue(token)} has id ${showValue(id)}, not an integer in 0..${limit - 1}`);
    }
    if (ids.has(id as number)) fail(`vocab id ${showValue(id)} is given to two tokens`);
    ids.add(id as number);
  }
  for (const [i, a] of addedList.entries()) {
    const { id, content } = (a ?? {}) as { id?: unknown; content?: unknown };
    if (
      typeof id !== 'number' ||
      !Number.isInteger(id) ||
      id < 0 ||
      id >= limit ||
      typeof content !== 'string'
    ) {
      fail(
        `added_tokens[${i}] is ${showValue(a)}, not {"id": an integer in 0..${limit - 1}, "content": text}`,
      );
    }
  }
  const has = (s: string): boolean => Object.prototype.hasOwnProperty.call(vocab, s);
  for (const [i, m] of merges.entries()) {
    // tokenizers writes merges as "a b" (before 0.20) or ["a", "b"] (since).
    let pair: unknown[] | undefined;
    if (typeof m === 'string') pair = m.split(' ');
    else if (Array.isArray(m)) pair = m;
    const [a, b] = pair ?? [];
    if (pair?.length !== 2 || typeof a !== 'string' || typeof b !== 'string' || a === '' || b === '') {
      return fail(`merge ${i + 1} is ${showValue(m)}, not two tokens ("a b" or ["a", "b"])`);
    }
    if (!has(a) || !has(b))
      fail(`merge ${i + 1} ${showValue(m)} joins ${showValue(has(a) ? b : a)}, which is not in the vocab`);
    if (!has(a + b))
      fail(`merge ${i + 1} ${showValue(m)} makes ${showValue(a + b)}, which is not in the vocab`);
  }
}

export interface TextTokenizer {
  readonly vocabSize: number;
  readonly eosTokenId: number | null;
  encode(text: string): number[];
  decode(ids: number[]): string;
  /** The token's text as stored in the vocabulary (byte-level characters). */
  idToToken(id: number): string | undefined;
}

export function loadTokenizer(json: unknown, source = 'tokenizer.json'): TextTokenizer {
  if (typeof json !== 'object' || json === null)
    throw new TokenizerError(`${source}: expected a JSON object`);
  const t = json as {
    model?: { type?: string; vocab?: unknown; merges?: unknown; byte_fallback?: boolean };
    pre_tokenizer?: { type?: string } | null;
    added_tokens?: { id: number; content: string }[];
  };
  const type = t.model?.type;
  if (type !== 'BPE') {
    throw new TokenizerError(
      `${source}: model type is ${showValue(type ?? null)}, but PEFT Lab needs byte-level BPE (GPT-2's "BPE")`,
    );
  }
  if (typeof t.model?.vocab !== 'object' || t.model.vocab === null || !Array.isArray(t.model.merges)) {
    throw new TokenizerError(`${source}: the BPE model has no vocab object or no merges list`);
  }
  const pre = t.pre_tokenizer?.type;
  const steps = (t.pre_tokenizer as { pretokenizers?: unknown } | null | undefined)?.pretokenizers;
  const byteLevel =
    pre === 'ByteLevel' ||
    (pre === 'Sequence' &&
      Array.isArray(steps) &&
      steps.some((p) => (p as { type?: unknown } | null)?.type === 'ByteLevel'));
  if (!byteLevel && t.model.byte_fallback !== true) {
    throw new TokenizerError(
      `${source}: pre_tokenizer is ${showValue(pre ?? null)} and the BPE model has no byte_fallback, so some text has no tokens; PEFT Lab reads byte-level BPE ("ByteLevel") or SentencePiece-style BPE with "byte_fallback": true`,
    );
  }
  checkBpe(t.model.vocab, t.model.merges, t.added_tokens, source);
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(json, {});
  } catch (e) {
    throw new TokenizerError(`${source}: ${(e as Error).message}`);
  }
  const vocab = tok.get_vocab(true);
  // The end-of-text token by the names these families give it (config.json's eos_token_id is the
  // model's own word on it; this is for a tokenizer read alone).
  const eos =
    ['<|endoftext|>', '</s>', '<|end_of_text|>'].map((n) => vocab.get(n)).find((id) => id !== undefined) ??
    null;
  return {
    vocabSize: vocab.size,
    eosTokenId: eos,
    encode: (text) => tok.encode(text, { add_special_tokens: false }).ids,
    decode: (ids) => tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }),
    idToToken: (id) => tok.id_to_token(id),
  };
}
