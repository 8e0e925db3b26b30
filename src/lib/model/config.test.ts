import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseGpt2Config } from './config';
import { ModelConfigError } from '../errors';
import { deepValue } from '../fuzz/gen';

const VALID = JSON.parse(
  readFileSync(join(import.meta.dirname, 'fixtures/tiny-gpt2/config.json'), 'utf8'),
) as Record<string, unknown>;

describe('parseGpt2Config: fuzzing findings (src/lib/fuzz)', () => {
  it('reads the tiny fixture', () => {
    expect(parseGpt2Config(VALID).nLayer).toBe(2);
  });

  it('refuses a field nested thousands deep with ModelConfigError, not RangeError from printing it', () => {
    for (const key of ['n_embd', 'model_type', 'activation_function', 'eos_token_id', 'layer_norm_epsilon']) {
      const bad = { ...VALID, [key]: deepValue(10_000, 'array') };
      expect(() => parseGpt2Config(bad), key).toThrow(ModelConfigError);
    }
  });

  it('refuses sizes no model has before anything is sized by them (n_layer 1318900331 listed 10^10 weights)', () => {
    expect(() => parseGpt2Config({ ...VALID, n_layer: 1318900331 })).toThrow(
      /"n_layer" must be an integer from 1 to 1024/,
    );
    expect(() => parseGpt2Config({ ...VALID, vocab_size: 2 ** 40 })).toThrow(ModelConfigError);
    expect(() => parseGpt2Config({ ...VALID, n_inner: 2 ** 53 })).toThrow(ModelConfigError);
  });
});
