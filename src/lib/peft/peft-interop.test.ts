/**
 * Adapters written by Python PEFT 0.21 load here and give PEFT's own outputs. One case per folder
 * of fixtures/peft-0.21 (made by scripts/reference/peft_interop/make_fixtures.py, so CI needs no
 * Python): PEFT's `adapter_config.json` and `adapter_model.safetensors` as `save_pretrained` wrote
 * them for the tiny GPT-2 fixture, with every adapter parameter set to non-trivial random values,
 * and `expected.json`, the logits PEFT computed for one input in eval mode (real tokens only: the
 * virtual positions that prompt tuning and P-tuning put before them are dropped, as we drop them).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import type { Gpt2Model } from '../model/gpt2';
import { lmLogits } from '../model/heads';
import type { EncodedSet } from '../data/cls-data';
import { padBatch } from '../data/cls-data';
import { loadAdapter } from '../io/peft-format';
import { clsLogits } from '../train/classification';
import { adapterDecorator, virtualPositions } from './forward';
import type { Adapter } from './types';
import { tinyGpt2 } from '../model/testing';

const FIXTURES = join(import.meta.dirname, 'fixtures/peft-0.21');
/** Float32 on both sides, different kernels and summation orders: 1e-4 is far below any real mismatch. */
const TOLERANCE = 1e-4;

/** expected.json as make_fixtures.py writes it (the fields this test reads). */
interface Expected {
  case: string;
  peft_type: string;
  task_type: 'CAUSAL_LM' | 'SEQ_CLS' | 'TOKEN_CLS';
  input_ids: number[][];
  /** Shape of `logits`: [1, T, V], [1, numLabels] or [1, T, numLabels]. */
  shape: number[];
  /** PEFT's logits, row-major. */
  logits: number[];
  /** How far the adapter moves the logits from the plain model's (proof the fixture is not trivial). */
  adapter_effect_max_abs?: number;
}

/** Every folder that holds a fixture: the table this test runs. */
const CASES = readdirSync(FIXTURES)
  .filter((d) => existsSync(join(FIXTURES, d, 'expected.json')))
  .sort();

/** Our logits for the fixture's input, shaped as PEFT's real-token logits. */
function ourLogits(model: Gpt2Model, adapter: Adapter, exp: Expected): tf.Tensor {
  const row = exp.input_ids[0]!;
  if (exp.task_type === 'CAUSAL_LM') {
    const ids = tf.tensor2d(exp.input_ids, undefined, 'int32');
    let hidden = model.forward(adapterDecorator(model, adapter)({ ids }, true)).hidden; // [1, n + T, C]
    const n = virtualPositions(adapter);
    if (n > 0) hidden = tf.slice(hidden, [0, n, 0], [-1, -1, -1]); // [1, T, C]
    return lmLogits(model, hidden); // [1, T, V]
  }
  // One unpadded row: the last real token is position -1, where GPT-2's SEQ_CLS head pools too.
  const set: EncodedSet = {
    task: exp.task_type,
    examples: [{ ids: row, label: exp.task_type === 'SEQ_CLS' ? 0 : row.map(() => 0) }],
    padId: 96,
  };
  return clsLogits(model, adapter, adapter.head!, padBatch(set, [0]), false, 0);
}

const worst = new Map<string, number>();

describe('adapters saved by Python PEFT 0.21 load and give its outputs', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  afterAll(() => {
    const rows = [...worst].map(([c, d]) => `  ${c.padEnd(26)} ${d.toExponential(2)}`);
    console.log(`max |ours - PEFT| per case:\n${rows.join('\n')}`);
  });

  it('has a fixture for every method and head that PEFT can write for GPT-2', () => {
    expect(CASES).toEqual(
      expect.arrayContaining([
        'lora',
        'lora_seq_cls',
        'lora_dora',
        'lora_pissa',
        'lora_pissa_converted',
        'adalora',
        'ia3',
        'ln_tuning',
        'ln_tuning_seq_cls',
        'vera',
        'prompt_tuning',
        'prompt_tuning_token_cls',
        'p_tuning_mlp',
        'p_tuning_lstm',
        'prefix_tuning',
        'prefix_tuning_projection',
        'prefix_tuning_seq_cls',
      ]),
    );
  });

  it.each(CASES)('%s', (name) => {
    const dir = join(FIXTURES, name);
    const exp = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
    // A fixture whose adapter does nothing would prove nothing.
    expect(exp.adapter_effect_max_abs ?? 0, 'adapter effect in the fixture').toBeGreaterThan(0.1);

    const model = tinyGpt2();
    // The model's cached wte^T is model-owned, not a leak: drop it around each count.
    model.invalidateCaches();
    const before = tf.memory().numTensors;
    const adapter = loadAdapter(
      model,
      {
        config: readFileSync(join(dir, 'adapter_config.json'), 'utf8'),
        weights: new Uint8Array(readFileSync(join(dir, 'adapter_model.safetensors'))),
      },
      `peft-0.21/${name}`,
    );
    expect(adapter.config.peftType).toBe(exp.peft_type);
    expect(adapter.config.taskType).toBe(exp.task_type);

    const out = tf.tidy(() => ourLogits(model, adapter, exp));
    const shape = out.shape;
    const ours = out.dataSync();
    out.dispose();
    adapter.dispose();
    model.invalidateCaches();
    expect(tf.memory().numTensors, 'tensors left after dispose').toBe(before);
    model.dispose();

    expect(shape).toEqual(exp.shape);
    let maxDiff = 0;
    let at = 0;
    exp.logits.forEach((v, i) => {
      const d = Math.abs(ours[i]! - v);
      if (!(d <= maxDiff)) [maxDiff, at] = [d, i]; // NaN counts as the worst
    });
    worst.set(name, maxDiff);
    expect(maxDiff, `max |ours - PEFT| at flat index ${at}`).toBeLessThan(TOLERANCE);
  });
});
