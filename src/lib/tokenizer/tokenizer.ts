/**
 * Loads a HuggingFace `tokenizer.json` with @huggingface/tokenizers and exposes the few calls the
 * engine needs. Two kinds of BPE are read: byte-level (GPT-2, Llama 3, Qwen2, SmolLM2) and
 * SentencePiece-style with byte fallback (Llama 2, Mistral: `▁` for spaces, `<0xNN>` byte tokens),
 * so every text has an encoding. Anything else is refused with a TokenizerError that says what
 * was found.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from '../errors';

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
      `${source}: model type is ${JSON.stringify(type ?? null)}, but PEFT Lab needs byte-level BPE (GPT-2's "BPE")`,
    );
  }
  if (typeof t.model?.vocab !== 'object' || t.model.vocab === null || !Array.isArray(t.model.merges)) {
    throw new TokenizerError(`${source}: the BPE model has no vocab object or no merges list`);
  }
  const pre = t.pre_tokenizer?.type;
  const byteLevel =
    pre === 'ByteLevel' || (pre === 'Sequence' && JSON.stringify(t.pre_tokenizer).includes('"ByteLevel"'));
  if (!byteLevel && t.model.byte_fallback !== true) {
    throw new TokenizerError(
      `${source}: pre_tokenizer is ${JSON.stringify(pre ?? null)} and the BPE model has no byte_fallback, so some text has no tokens; PEFT Lab reads byte-level BPE ("ByteLevel") or SentencePiece-style BPE with "byte_fallback": true`,
    );
  }
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
