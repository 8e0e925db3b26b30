/**
 * Checks the files scripts/prepare-tasks.ts wrote to public/data/ against their manifests, the task
 * registry and the split rules (rerun the script if this fails after a change to the rules).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isHeldOut } from '../holdout';
import { fnv1a } from '../../util/hash';
import { brownDocumentSplits, readBrownCategories } from './brown';
import { GENRE_OF } from './genre';
import { SPLIT_NAMES, TASKS, type SplitName, type TaskInfo, type TaskManifest } from './registry';

const publicDir = fileURLToPath(new URL('../../../../public/', import.meta.url));
const nodeModules = fileURLToPath(new URL('../../../../node_modules/', import.meta.url));

interface Example {
  text?: string;
  label?: string;
  words?: string[];
  tags?: string[];
  doc?: string;
  id?: string;
}

function task(id: string): TaskInfo {
  const t = TASKS.find((x) => x.id === id);
  if (!t) throw new Error(id);
  return t;
}

function manifestOf(t: TaskInfo): TaskManifest {
  return JSON.parse(readFileSync(`${publicDir}${t.dataDir}/manifest.json`, 'utf8')) as TaskManifest;
}

function splitText(t: TaskInfo, name: SplitName): string {
  return readFileSync(`${publicDir}${t.dataDir}/${t.files[name]}`, 'utf8');
}

const cache = new Map<string, Record<SplitName, Example[]>>();
function examples(t: TaskInfo): Record<SplitName, Example[]> {
  let got = cache.get(t.id);
  if (!got) {
    got = Object.fromEntries(
      SPLIT_NAMES.map((name) => [
        name,
        splitText(t, name)
          .split('\n')
          .filter((line) => line !== '')
          .map((line) => JSON.parse(line) as Example),
      ]),
    ) as Record<SplitName, Example[]>;
    cache.set(t.id, got);
  }
  return got;
}

const classification = TASKS.filter((t) => t.taskType !== 'CAUSAL_LM');

describe('prepared task data', () => {
  it('moby-dick (CAUSAL_LM) has its manifest and text files', () => {
    const t = task('moby-dick');
    expect(manifestOf(t).taskType).toBe('CAUSAL_LM');
    for (const name of SPLIT_NAMES) expect(splitText(t, name).length).toBeGreaterThan(10_000);
  });

  it.each(classification.map((t) => [t.id, t] as const))(
    '%s: manifest matches registry and files',
    (_, t) => {
      const manifest = manifestOf(t);
      expect(manifest).toMatchObject({
        id: t.id,
        title: t.title,
        taskType: t.taskType,
        labels: [...t.labels],
        metrics: [...t.metrics],
        format: t.format,
      });
      for (const key of ['source', 'licence', 'splitRule', 'preprocessing', 'caps'] as const) {
        expect(manifest[key].length).toBeGreaterThan(20);
      }
      const all = examples(t);
      for (const name of SPLIT_NAMES) {
        const split = manifest.splits[name];
        const list = all[name];
        expect(split.examples).toBe(list.length);
        expect(split.available).toBeGreaterThanOrEqual(list.length);
        expect(split.bytes).toBe(Buffer.byteLength(splitText(t, name)));
        const counts: Record<string, number> = Object.fromEntries(t.labels.map((l) => [l, 0]));
        for (const e of list) {
          const labels = t.taskType === 'TOKEN_CLS' ? e.tags! : [e.label!];
          if (t.taskType === 'TOKEN_CLS') {
            expect(e.words!.length).toBeGreaterThan(0);
            expect(e.tags!.length).toBe(e.words!.length);
          } else {
            expect(e.text!.trim().length).toBeGreaterThan(0);
          }
          for (const l of labels) counts[l] = (counts[l] ?? 0) + 1;
        }
        expect(Object.keys(counts)).toEqual([...t.labels]); // no label outside the label set
        expect(split.labels).toEqual(counts);
        if (t.taskType === 'SEQ_CLS') for (const l of t.labels) expect(counts[l]).toBeGreaterThan(0);
        if (t.taskType === 'TOKEN_CLS')
          expect(split.tokens).toBe(list.reduce((n, e) => n + e.words!.length, 0));
      }
    },
  );

  it.each(['brown-genre', 'brown-pos'])('%s: splits are disjoint by document; test is held out', (id) => {
    const t = task(id);
    const manifest = manifestOf(t);
    const categories = readBrownCategories(nodeModules);
    const rule = brownDocumentSplits(categories);
    const seen = new Map<string, SplitName>();
    for (const name of SPLIT_NAMES) {
      const docs = new Set(examples(t)[name].map((e) => e.doc!));
      expect(manifest.splits[name].documents).toEqual([...docs].sort());
      for (const doc of docs) {
        expect(seen.get(doc) ?? name).toBe(name);
        seen.set(doc, name);
        expect(rule.get(doc)).toBe(name);
        expect(isHeldOut('brown', doc)).toBe(name === 'test');
      }
    }
    expect(new Set([...seen.values()])).toEqual(new Set(SPLIT_NAMES));
    if (id === 'brown-genre') {
      for (const name of SPLIT_NAMES) {
        for (const e of examples(t)[name]) expect(e.label).toBe(GENRE_OF[categories.get(e.doc!)!]);
      }
    }
  });

  it('spam: split by the hash of the message id, labels from the group, no repeated text', () => {
    const t = task('spam');
    const texts = new Set<string>();
    const ids = new Set<string>();
    for (const name of SPLIT_NAMES) {
      for (const e of examples(t)[name]) {
        const bucket = fnv1a(`spam-assassin/${e.id!}`) % 10;
        expect(bucket === 0 ? 'test' : bucket === 1 ? 'validation' : 'train').toBe(name);
        expect(e.label).toBe(e.id!.startsWith('spam-') ? 'spam' : 'ham');
        expect(e.text!.length).toBeLessThanOrEqual(1000);
        expect(e.text!.startsWith('Subject: ')).toBe(true);
        expect(ids.has(e.id!) || texts.has(e.text!)).toBe(false);
        ids.add(e.id!);
        texts.add(e.text!);
      }
    }
  });

  it('the three tasks stay under 8 MB together', () => {
    let bytes = 0;
    for (const t of classification) {
      for (const name of SPLIT_NAMES) bytes += Buffer.byteLength(splitText(t, name));
    }
    expect(bytes).toBeLessThan(8 * 1024 * 1024);
  });
});
