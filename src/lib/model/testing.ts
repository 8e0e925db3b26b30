/**
 * Test helpers (Node only): the tiny random checkpoints of the fixtures, loaded through the real
 * folder readers. GPT-2: 2 layers, width 16, 4 heads, 32 positions.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DecoderModel } from './decoder';
import type { Gpt2Model } from './gpt2';
import type { ModelFiles } from './load';
import { loadGpt2, loadModel } from './load';
import { shardNames } from './shards';

export const TINY_GPT2_DIR = join(import.meta.dirname, 'fixtures/tiny-gpt2');

export function tinyGpt2(): Gpt2Model {
  return loadGpt2({
    config: JSON.parse(readFileSync(join(TINY_GPT2_DIR, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(TINY_GPT2_DIR, 'model.safetensors'))),
    source: 'tiny-gpt2',
  });
}

/** The tiny Llama-family fixtures written by transformers (scripts/reference/make_tiny_llama.py). */
export const TINY_LLAMA_FIXTURES = [
  'tiny-llama',
  'tiny-qwen2',
  'tiny-mistral',
  'tiny-llama-bf16',
  'tiny-qwen2-sharded',
  // scripts/reference/make_tiny_rope.py: the length-dependent and attention-scaled rope types.
  'tiny-qwen2-yarn',
  'tiny-llama-dynamic',
  'tiny-llama-longrope',
] as const;

/** The fixtures whose expected.json also has a row past the (original) context: long_input_ids, long_logits. */
export const TINY_ROPE_FIXTURES = ['tiny-qwen2-yarn', 'tiny-llama-dynamic', 'tiny-llama-longrope'] as const;

export interface TinyExpected {
  input_ids: number[][];
  logits: number[][][];
  prompt: number[];
  greedy: number[];
  long_input_ids?: number[][];
  long_logits?: number[][][];
}

/** A fixture folder's files as the loaders take them: one model.safetensors or the index's shards. */
export function readFixtureFolder(name: string): ModelFiles & { tokenizerJson: unknown } {
  const dir = join(import.meta.dirname, 'fixtures', name);
  const json = (f: string): unknown => JSON.parse(readFileSync(join(dir, f), 'utf8'));
  const bytes = (f: string): Uint8Array => new Uint8Array(readFileSync(join(dir, f)));
  const sharded = existsSync(join(dir, 'model.safetensors.index.json'));
  const names = sharded ? shardNames(json('model.safetensors.index.json')) : ['model.safetensors'];
  return {
    config: json('config.json'),
    weights: sharded ? names.map(bytes) : bytes('model.safetensors'),
    weightFileNames: names,
    source: name,
    tokenizerJson: existsSync(join(dir, 'tokenizer.json')) ? json('tokenizer.json') : null,
  };
}

export function tinyExpected(name: string): TinyExpected {
  return JSON.parse(
    readFileSync(join(import.meta.dirname, 'fixtures', name, 'expected.json'), 'utf8'),
  ) as TinyExpected;
}

/** A tiny Llama-family model loaded through the real folder reader. */
export function tinyLlama(name: (typeof TINY_LLAMA_FIXTURES)[number] = 'tiny-llama'): DecoderModel {
  return loadModel(readFixtureFolder(name));
}
