import { describe, expect, it } from 'vitest';
import { DEFAULT_GEN, genFromParams, genProblem, genToParams, hashWithGen } from './gen-settings';

describe('generation settings in the address', () => {
  it('round-trips every setting off its default, and writes nothing for the defaults', () => {
    const gen = {
      maxNewTokens: 64,
      temperature: 0.8,
      topK: 40,
      topP: 0.9,
      repetitionPenalty: 1.3,
      sampleSeed: 7,
    };
    const params = new URLSearchParams(genToParams(gen));
    expect(params.toString()).toBe(
      'maxNewTokens=64&temperature=0.8&topK=40&topP=0.9&repetitionPenalty=1.3&sampleSeed=7',
    );
    expect(genFromParams(params)).toEqual({ gen, problems: [] });
    expect(genToParams({ ...DEFAULT_GEN })).toEqual([]);
  });

  it('names a value out of range and keeps the default for it', () => {
    const { gen, problems } = genFromParams(
      new URLSearchParams('topP=0&repetitionPenalty=abc&topK=2.5&temperature=0.5'),
    );
    expect(gen).toEqual({ ...DEFAULT_GEN, temperature: 0.5 });
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/topK=2.5 is out of range: give the top-k/);
    expect(problems[1]).toMatch(/topP=0 is out of range/);
    expect(problems[2]).toMatch(/repetitionPenalty=abc/);
    expect(genProblem('repetitionPenalty', 1.2)).toBeNull();
    expect(genProblem('maxNewTokens', 0)).toMatch(/new tokens/);
  });

  it('writes the settings into the hash beside the task and method, replacing old ones', () => {
    const hash = '#/lab?task=spam&temperature=0.3&method=ia3';
    expect(hashWithGen(hash, { ...DEFAULT_GEN, topK: 5 })).toBe('#/lab?task=spam&method=ia3&topK=5');
    expect(hashWithGen('#/lab?temperature=0.3', DEFAULT_GEN)).toBe('#/lab');
    expect(hashWithGen('', { ...DEFAULT_GEN, sampleSeed: 2 })).toBe('#/lab?sampleSeed=2');
  });
});
