/**
 * The Llama-family config reader's bounds and messages, and the fuzzing findings kept as cases
 * (src/lib/fuzz: a deep value in a message, an inherited key taken for an architecture, no bounds).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelConfigError } from '../errors';
import { deepValue } from '../fuzz/gen';
import { countParameters, parseModelConfig } from './family';
import { parseLlamaConfig } from './llama-config';

const llama = (): Record<string, unknown> =>
  JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures/tiny-llama/config.json'), 'utf8')) as Record<
    string,
    unknown
  >;

const refuses = (json: unknown, pattern: RegExp): void => {
  let err: unknown;
  try {
    parseModelConfig(json);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ModelConfigError);
  expect((err as Error).message).toMatch(pattern);
};

describe('parseLlamaConfig bounds', () => {
  it('reads the tiny fixtures of all three families', () => {
    for (const d of ['tiny-llama', 'tiny-qwen2', 'tiny-mistral']) {
      const json = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', d, 'config.json'), 'utf8'));
      expect(countParameters(parseModelConfig(json))).toBeGreaterThan(1000);
    }
  });

  it('refuses sizes that would size a huge loop or allocation, naming the field, its value and the bound', () => {
    // Before: 2^40 layers was accepted, and counting the parameters listed 2^40 x 9 weights.
    refuses(
      { ...llama(), num_hidden_layers: 2 ** 40 },
      /"num_hidden_layers" must be an integer from 1 to 1024, got 1099511627776/,
    );
    refuses({ ...llama(), hidden_size: 2 ** 31 }, /"hidden_size" must be an integer from 1 to 65536/);
    refuses({ ...llama(), vocab_size: 2 ** 53 }, /"vocab_size" must be an integer from 1 to 1048576/);
    refuses({ ...llama(), intermediate_size: 2 ** 19 }, /"intermediate_size"/);
    refuses({ ...llama(), head_dim: 2 ** 13 }, /"head_dim"/);
    refuses({ ...llama(), num_key_value_heads: 2 ** 13 }, /"num_key_value_heads"/);
    refuses({ ...llama(), max_position_embeddings: 2 ** 21 }, /"max_position_embeddings"/);
    refuses({ ...llama(), model_type: 'mistral', sliding_window: 2 ** 30 }, /"sliding_window"/);
  });

  it('refuses an infinite rope_theta, factor or epsilon (JSON 1e999 parses to Infinity)', () => {
    refuses(
      { ...llama(), rms_norm_eps: JSON.parse('1e999') as unknown },
      /"rms_norm_eps" must be a positive number, got Infinity/,
    );
    const j = llama();
    (j.rope_parameters as Record<string, unknown>).rope_theta = Infinity;
    refuses(j, /"rope_theta" must be a positive number, got Infinity/);
    (j.rope_parameters as Record<string, unknown>).rope_theta = 1e4;
    (j.rope_parameters as Record<string, unknown>).factor = Infinity;
    refuses(j, /"factor"/);
  });

  it('names a deeply nested value briefly instead of overflowing the stack (fuzz finding)', () => {
    // Before: JSON.stringify in the message threw RangeError: Maximum call stack size exceeded.
    refuses(
      { ...llama(), hidden_act: deepValue(20_000, 'array') },
      /hidden_act \[+\.\.\.\]+ is not supported/,
    );
    refuses({ ...llama(), bos_token_id: deepValue(20_000, 'object') }, /"bos_token_id" \{"a":/);
    refuses({ model_type: deepValue(20_000, 'array') }, /model_type \[+\.\.\./);
    refuses({ architectures: [deepValue(20_000, 'object')], model_type: 'bert' }, /not supported/);
  });

  it('does not take an inherited key ("toString") for an architecture (fuzz finding)', () => {
    const { model_type: _, ...j } = llama();
    void _;
    refuses(
      { ...j, architectures: ['toString'] },
      /model_type null \(architectures \["toString"\]\) is not supported/,
    );
    expect(() => parseLlamaConfig({ ...j, architectures: ['constructor'] })).toThrow(ModelConfigError);
  });
});
