/**
 * Test helper (Node only): the tiny random GPT-2 checkpoint of the fixtures (2 layers, width 16,
 * 4 heads, 32 positions), loaded through the real folder reader.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpt2Model } from './gpt2';
import { loadGpt2 } from './load';

export const TINY_GPT2_DIR = join(import.meta.dirname, 'fixtures/tiny-gpt2');

export function tinyGpt2(): Gpt2Model {
  return loadGpt2({
    config: JSON.parse(readFileSync(join(TINY_GPT2_DIR, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(TINY_GPT2_DIR, 'model.safetensors'))),
    source: 'tiny-gpt2',
  });
}
