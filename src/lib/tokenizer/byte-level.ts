/**
 * GPT-2's byte-level pieces: every byte maps to a printable unicode character so BPE merges
 * work on strings (openai/gpt-2 encoder.py `bytes_to_unicode`), and text is first split by
 * GPT-2's pre-tokenizer pattern so merges never cross word boundaries.
 */

/** GPT-2's pre-tokenizer pattern (the `use_regex` of HF's ByteLevel pre-tokenizer). */
export const GPT2_SPLIT_PATTERN =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

function buildByteToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const table: string[] = new Array<string>(256);
  const keep = new Set(printable);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    // Printable bytes stand for themselves; the rest are shifted past 255 so none is whitespace/control.
    table[b] = String.fromCharCode(keep.has(b) ? b : 256 + n++);
  }
  return table;
}

/** byte value -> the single character that stands for it. */
export const BYTE_TO_UNICODE: readonly string[] = buildByteToUnicode();

/** character -> byte value (inverse of BYTE_TO_UNICODE). */
export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((c, b) => [c, b]));

const encoder = new TextEncoder();

/** Splits text into GPT-2 pre-tokens, each already mapped to byte-level characters. */
export function preTokenize(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(GPT2_SPLIT_PATTERN)) {
    let s = '';
    for (const b of encoder.encode(m[0])) s += BYTE_TO_UNICODE[b];
    out.push(s);
  }
  return out;
}
