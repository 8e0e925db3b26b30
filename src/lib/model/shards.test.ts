/** model.safetensors.index.json: the fuzzing findings kept as cases (src/lib/fuzz). */
import { describe, expect, it } from 'vitest';
import { WeightsMismatchError } from '../errors';
import { deepValue } from '../fuzz/gen';
import { shardNames } from './shards';

describe('shardNames', () => {
  it('lists shard files in order of first appearance', () => {
    expect(
      shardNames({ weight_map: { a: 'm-2.safetensors', b: 'm-1.safetensors', c: 'm-2.safetensors' } }),
    ).toEqual(['m-2.safetensors', 'm-1.safetensors']);
  });

  it('refuses paths and non-names, naming a deep value briefly instead of overflowing the stack', () => {
    expect(() => shardNames({ weight_map: { a: '../x.safetensors' } })).toThrow(WeightsMismatchError);
    // Before: JSON.stringify of the value threw RangeError: Maximum call stack size exceeded.
    expect(() => shardNames({ weight_map: { a: deepValue(20_000, 'array') } })).toThrow(
      /tensor "a" maps to \[+\.\.\.\]+, not a \.safetensors file name/,
    );
    expect(() => shardNames({ weight_map: [] })).toThrow(WeightsMismatchError);
    expect(() => shardNames(null)).toThrow(WeightsMismatchError);
  });

  it('stays linear in the number of distinct shards', () => {
    const map: Record<string, string> = {};
    for (let i = 0; i < 100_000; i++) map[`t${i}`] = `model-${i}.safetensors`;
    const t0 = performance.now();
    expect(shardNames({ weight_map: map })).toHaveLength(100_000);
    // An array's includes() made this quadratic: about 5 x 10^9 comparisons.
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});
