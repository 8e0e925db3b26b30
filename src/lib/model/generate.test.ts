import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../backend/node';
import { InputError } from '../errors';
import { Rng } from '../util/rng';
import { checkSampling, generate, penalizeRepeats, sampleToken } from './generate';
import { tinyGpt2 } from './testing';

describe('repetition penalty (transformers RepetitionPenaltyLogitsProcessor)', () => {
  it('divides a seen positive logit and multiplies a seen negative one, once per distinct token', () => {
    const row = Float32Array.from([2, -1, 0.5, 3]);
    const out = penalizeRepeats(row, [0, 1, 1, 0], 2);
    expect([...out]).toEqual([1, -2, 0.5, 3]);
    expect([...row]).toEqual([2, -1, 0.5, 3]); // the input row is left as it was
    expect(penalizeRepeats(row, [0], 1)).toBe(row);
  });

  it('turns greedy away from a token already seen', () => {
    // Token 0 leads by a little; once seen, a penalty of 1.5 drops it to 2/1.5 < 1.9.
    const row = Float32Array.from([2, 1.9, 0]);
    expect(sampleToken(row, { temperature: 0 }, new Rng(0), [0])).toBe(0);
    expect(sampleToken(row, { temperature: 0, repetitionPenalty: 1.5 }, new Rng(0), [0])).toBe(1);
  });

  it('applies before top-k, so a penalised token can fall out of the k kept', () => {
    const row = Float32Array.from([5, 4, -10]);
    const opts = { temperature: 1, topK: 1, repetitionPenalty: 2 };
    for (let s = 0; s < 5; s++) expect(sampleToken(row, opts, new Rng(s), [0])).toBe(1);
  });

  it('names the setting and the value it refuses', () => {
    expect(() => checkSampling({ repetitionPenalty: 0 })).toThrow(InputError);
    expect(() => checkSampling({ repetitionPenalty: 0 })).toThrow(/repetition penalty must be above 0/);
    expect(() => checkSampling({ topP: 1.5 })).toThrow(/top-p/);
    expect(() => checkSampling({ topK: 2.5 })).toThrow(/top-k/);
    expect(() => checkSampling({ temperature: -1 })).toThrow(/temperature/);
    expect(() => checkSampling({ temperature: 0.7, topK: 0, topP: 1, repetitionPenalty: 1.2 })).not.toThrow();
  });
});

describe('generate', () => {
  beforeAll(async () => {
    await initNodeBackend('cpu');
  });

  it('awaits onToken between tokens and stops when it resolves to false', async () => {
    const model = tinyGpt2();
    const got: number[] = [];
    const ids = await generate(model, [1, 2, 3], {
      maxNewTokens: 10,
      onToken: async (id) => {
        got.push(id);
        await new Promise((r) => setTimeout(r, 0));
        return got.length < 4;
      },
    });
    expect(ids).toHaveLength(4);
    expect(got).toEqual(ids);
    model.dispose();
  });

  it('with a repetition penalty repeats no more than greedy does, and is refused below 0', async () => {
    const model = tinyGpt2();
    const plain = await generate(model, [5], { maxNewTokens: 24 });
    const penalised = await generate(model, [5], { maxNewTokens: 24, repetitionPenalty: 10 });
    const distinct = (a: number[]): number => new Set(a).size;
    expect(distinct(penalised)).toBeGreaterThanOrEqual(distinct(plain));
    expect(penalised).not.toEqual(plain);
    await expect(generate(model, [5], { repetitionPenalty: -1 })).rejects.toThrow(InputError);
    model.dispose();
  });
});
