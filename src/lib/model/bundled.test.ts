/**
 * The bundled base models load in our engine and match PyTorch, which trained them, to 1e-4
 * (fixtures written by scripts/pretrain/reference_logits.py: for GPT-2 folders its own torch GPT, for
 * Llama folders transformers' reading of the folder), and their tokenizers load. Every fixture names a
 * bundled folder; either family loads through loadModel, as the app loads them.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import { loadModel } from './load';
import { lmLogits } from './heads';
import { loadTokenizer } from '../tokenizer/tokenizer';

const FIX = join(import.meta.dirname, 'fixtures');
const MODELS = join(process.cwd(), 'public/models');
const withReference = readdirSync(FIX)
  .filter((f) => f.endsWith('-torch-logits.json'))
  .map((f) => f.replace('-torch-logits.json', ''));

describe.each(withReference)('bundled model %s', (id) => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('has a config, weights, tokenizer and model card', () => {
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'README.md']) {
      expect(existsSync(join(MODELS, id, f)), f).toBe(true);
    }
  });

  it("matches PyTorch's (or transformers') logits within 1e-4", () => {
    const ref = JSON.parse(readFileSync(join(FIX, `${id}-torch-logits.json`), 'utf8')) as {
      input_ids: number[];
      vocab_slice: number;
      logits_slice: number[][];
      argmax: number[];
    };
    const model = loadModel({
      config: JSON.parse(readFileSync(join(MODELS, id, 'config.json'), 'utf8')),
      weights: new Uint8Array(readFileSync(join(MODELS, id, 'model.safetensors'))),
      source: id,
    });
    const logits = tf.tidy(() =>
      lmLogits(
        model,
        model.forward({ ids: tf.tensor2d([ref.input_ids], undefined, 'int32') }).hidden,
      ).arraySync(),
    )[0]!;
    let maxDiff = 0;
    ref.logits_slice.forEach((row, t) =>
      row.forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(logits[t]![j]! - v)))),
    );
    expect(maxDiff).toBeLessThan(1e-4);
    expect(logits.map((row) => row.indexOf(Math.max(...row)))).toEqual(ref.argmax);
    model.dispose();
  });

  it('tokenizes and detokenizes English exactly', () => {
    const tok = loadTokenizer(JSON.parse(readFileSync(join(MODELS, id, 'tokenizer.json'), 'utf8')));
    const text = 'Call me Ishmael. Some years ago—never mind how long precisely—I thought I would sail.';
    expect(tok.decode(tok.encode(text))).toBe(text);
    expect(tok.eosTokenId).toBe(tok.vocabSize - 1);
  });
});
