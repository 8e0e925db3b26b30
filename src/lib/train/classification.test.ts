/**
 * Classification heads trained with LoRA (PEFT's modules_to_save) on the bundled peftlab-s and the
 * prepared tasks: the loss falls, train accuracy beats chance, the adapter saves the head under
 * PEFT's keys and loads back to identical logits, and a step leaks no tensor. Full fine-tuning with
 * a head is checked on the tiny checkpoint.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import { loadGpt2 } from '../model/load';
import type { Gpt2Model } from '../model/gpt2';
import { ClsHead } from '../model/heads';
import { loadTokenizer } from '../tokenizer/tokenizer';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import type { EncodedSet } from '../data/cls-data';
import { encodeSeqCls, encodeTokenCls, evalClsBatches, padBatch } from '../data/cls-data';
import { lora } from '../peft/lora';
import { full } from '../peft/full/full';
import type { Adapter } from '../peft/types';
import { loadAdapter, readAdapterWeights, saveAdapter } from '../io/peft-format';
import { Trainer } from './trainer';
import { clsBatchSource, clsLogits, evaluateClassification } from './classification';

const ROOT = process.cwd();
const MODEL = join(ROOT, 'public/models/peftlab-s');

function peftlabS(): Gpt2Model {
  return loadGpt2({
    config: JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(MODEL, 'model.safetensors'))),
  });
}

function jsonl<T>(task: string, n: number): T[] {
  const lines = readFileSync(join(ROOT, 'public/data', task, 'train.jsonl'), 'utf8').split('\n');
  return lines
    .filter((l) => l.trim())
    .slice(0, n)
    .map((l) => JSON.parse(l) as T);
}

function labelsOf(task: string): string[] {
  return (
    JSON.parse(readFileSync(join(ROOT, 'public/data', task, 'manifest.json'), 'utf8')) as { labels: string[] }
  ).labels;
}

async function logitsOf(model: Gpt2Model, adapter: Adapter, set: EncodedSet): Promise<number[]> {
  const head = adapter.head!;
  const t = tf.tidy(() => clsLogits(model, adapter, head, padBatch(set, [0, 1, 2, 3]), false, 0));
  const out = Array.from(await t.data());
  t.dispose();
  return out;
}

let tok: TextTokenizer;
const EOS = 2047;

describe('classification with LoRA on peftlab-s', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
    tok = loadTokenizer(JSON.parse(readFileSync(join(MODEL, 'tokenizer.json'), 'utf8')));
  });

  it('SEQ_CLS on spam: trains, beats chance, saves score.weight with the adapter, reloads exactly', async () => {
    const names = labelsOf('spam');
    const raw = jsonl<{ text: string; label: string }>('spam', 64);
    const set = encodeSeqCls(
      tok,
      raw.map((r) => ({ text: r.text, label: names.indexOf(r.label) })),
      EOS,
      40, // Subject, sender domain and the body's start: enough to learn from, and fast
    );
    const model = peftlabS();
    model.invalidateCaches();
    const before = tf.memory().numTensors;
    const config = lora.defaults('SEQ_CLS');
    expect(config.modulesToSave).toEqual(['classifier', 'score']);
    const adapter = lora.create(model, config, 1);
    adapter.attachHead!(new ClsHead('SEQ_CLS', model.config.nEmbd, names.length, 2));
    expect([...adapter.trainable().keys()]).toContain('base_model.model.score.weight');

    const start = await evaluateClassification(model, adapter, adapter.head!, set, { batchSize: 32 });
    const trainer = new Trainer(model, adapter, clsBatchSource(set), {
      steps: 30,
      lr: 5e-3,
      warmupSteps: 2,
      batchSize: 8,
      seqLen: 40,
      seed: 3,
    });
    const losses: number[] = [];
    let afterFirst = 0;
    for (let i = 0; i < 30; i++) {
      losses.push((await trainer.trainStep()).loss);
      if (i === 0) afterFirst = tf.memory().numTensors;
    }
    expect(tf.memory().numTensors).toBe(afterFirst);
    const end = await evaluateClassification(model, adapter, adapter.head!, set, { batchSize: 32 });
    const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;
    const majority = Math.max(...[0, 1].map((c) => set.examples.filter((e) => e.label === c).length)) / 64;
    console.log(
      `spam SEQ_CLS: loss ${mean(losses.slice(0, 5)).toFixed(3)} -> ${mean(losses.slice(-5)).toFixed(3)}; ` +
        `train accuracy ${start.accuracy.toFixed(3)} -> ${end.accuracy.toFixed(3)} (majority ${majority.toFixed(3)}), macro-F1 ${end.macroF1.toFixed(3)}`,
    );
    expect(mean(losses.slice(-5))).toBeLessThan(mean(losses.slice(0, 5)) * 0.8);
    expect(end.accuracy).toBeGreaterThan(majority);

    const trained = await logitsOf(model, adapter, set);
    const files = await saveAdapter(adapter, 'peftlab-s');
    const keys = [...readAdapterWeights(files.weights, 'saved').keys()];
    expect(keys).toContain('base_model.model.score.weight');
    expect(readAdapterWeights(files.weights, 'saved').get('base_model.model.score.weight')!.shape).toEqual([
      2, 96,
    ]);
    expect(JSON.parse(files.config)).toMatchObject({
      task_type: 'SEQ_CLS',
      modules_to_save: ['classifier', 'score'],
    });
    trainer.dispose();
    adapter.dispose();
    model.invalidateCaches();
    expect(tf.memory().numTensors).toBe(before);

    const loaded = loadAdapter(model, files, 'saved');
    expect(loaded.head?.numLabels).toBe(2);
    expect(await logitsOf(model, loaded, set)).toEqual(trained);
    loaded.dispose();
    model.dispose();
  });

  it('TOKEN_CLS on brown-pos: trains, beats the majority tag, saves classifier.*, reloads exactly', async () => {
    const tags = labelsOf('brown-pos');
    const raw = jsonl<{ words: string[]; tags: string[] }>('brown-pos', 32);
    const set = encodeTokenCls(
      tok,
      raw.map((r) => ({ words: r.words, tags: r.tags.map((t) => tags.indexOf(t)) })),
      EOS,
      48,
    );
    // Every word, the first included, is encoded with a leading space (HF add_prefix_space).
    expect(set.examples[0]!.ids.slice(0, 1)).toEqual(tok.encode(' All').slice(0, 1));
    const model = peftlabS();
    const adapter = lora.create(model, lora.defaults('TOKEN_CLS'), 1);
    adapter.attachHead!(new ClsHead('TOKEN_CLS', model.config.nEmbd, tags.length, 2));
    const trainer = new Trainer(model, adapter, clsBatchSource(set), {
      steps: 20,
      lr: 1e-2,
      warmupSteps: 2,
      batchSize: 8,
      seqLen: 48,
      seed: 4,
    });
    const losses: number[] = [];
    let afterFirst = 0;
    for (let i = 0; i < 20; i++) {
      losses.push((await trainer.trainStep()).loss);
      if (i === 0) afterFirst = tf.memory().numTensors;
    }
    expect(tf.memory().numTensors).toBe(afterFirst);
    const end = await evaluateClassification(model, adapter, adapter.head!, set, { batchSize: 32 });
    const gold = Array.from(end.gold);
    const majority = Math.max(...tags.map((_, c) => gold.filter((g) => g === c).length)) / gold.length;
    const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;
    console.log(
      `brown-pos TOKEN_CLS: loss ${mean(losses.slice(0, 3)).toFixed(3)} -> ${mean(losses.slice(-3)).toFixed(3)}; ` +
        `train token accuracy ${end.tokenAccuracy!.toFixed(3)} (majority tag ${majority.toFixed(3)}, ${gold.length} words)`,
    );
    expect(mean(losses.slice(-3))).toBeLessThan(mean(losses.slice(0, 3)) * 0.8);
    expect(end.tokenAccuracy!).toBeGreaterThan(majority);
    // Every word is scored once: gold labels = words (none truncated at 48 tokens here).
    const words = raw.reduce((n, r) => n + r.words.length, 0);
    expect(gold.length).toBeLessThanOrEqual(words);

    const trained = await logitsOf(model, adapter, set);
    const files = await saveAdapter(adapter, 'peftlab-s');
    const saved = readAdapterWeights(files.weights, 'saved');
    expect(saved.get('base_model.model.classifier.weight')!.shape).toEqual([12, 96]);
    expect(saved.get('base_model.model.classifier.bias')!.shape).toEqual([12]);
    trainer.dispose();
    adapter.dispose();
    const loaded = loadAdapter(model, files, 'saved');
    expect(await logitsOf(model, loaded, set)).toEqual(trained);
    loaded.dispose();
    model.dispose();
  });
});

describe('full fine-tuning with a head (tiny checkpoint)', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('trains the decoder and score together, saves score.weight at the top level, reloads exactly', async () => {
    const FIX = join(import.meta.dirname, '../model/fixtures/tiny-gpt2');
    const tiny = (): Gpt2Model =>
      loadGpt2({
        config: JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')),
        weights: new Uint8Array(readFileSync(join(FIX, 'model.safetensors'))),
      });
    // Label = whether token 7 occurs: learnable from the last position's view of the row.
    const set: EncodedSet = {
      task: 'SEQ_CLS',
      padId: 96,
      examples: Array.from({ length: 32 }, (_, i) => {
        const ids = Array.from({ length: 3 + (i % 5) }, (_, t) => ((i * 5 + t * 3) % 80) + 10);
        if (i % 2) ids[i % ids.length] = 7;
        return { ids, label: i % 2 };
      }),
    };
    const model = tiny();
    const adapter = full.create(model, full.defaults('SEQ_CLS'), 0);
    adapter.attachHead!(new ClsHead('SEQ_CLS', 16, 2, 9));
    const trainer = new Trainer(model, adapter, clsBatchSource(set), {
      steps: 25,
      lr: 1e-2,
      warmupSteps: 2,
      batchSize: 8,
      seqLen: 8,
      seed: 5,
    });
    const losses: number[] = [];
    for (let i = 0; i < 25; i++) losses.push((await trainer.trainStep()).loss);
    const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;
    expect(mean(losses.slice(-5))).toBeLessThan(mean(losses.slice(0, 5)));
    const trained = await logitsOf(model, adapter, set);
    const files = await saveAdapter(adapter, 'tiny');
    const saved = readAdapterWeights(files.weights, 'saved');
    expect(saved.get('score.weight')!.shape).toEqual([2, 16]);
    expect(saved.has('transformer.wte.weight')).toBe(true);
    trainer.dispose();
    adapter.dispose();
    const fresh = tiny();
    const loaded = loadAdapter(fresh, files, 'saved');
    expect(await logitsOf(fresh, loaded, set)).toEqual(trained);
    expect([...evalClsBatches(set, 10)].length).toBe(4);
    loaded.dispose();
    fresh.dispose();
    model.dispose();
  });
});
