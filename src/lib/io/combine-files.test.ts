import { describe, expect, it } from 'vitest';
import { AdapterCombineError, PeftConfigError, rebuildError, serializeError } from '../errors';
import { COMBINATION_TYPES } from '../peft/lora/combine-types';
import { combineAdapterFiles } from './combine-files';
import { loraFiles } from './combine-testing';
import { readAdapterConfig, readAdapterWeights } from './peft-format';

const spec = { base: 'peftlab-s', nLayer: 2, nEmbd: 8, r: 2 };
const a = { name: 'a', ...loraFiles({ ...spec, seed: 1 }) };
const b = { name: 'b', ...loraFiles({ ...spec, seed: 2 }) };

/** The error `f` throws (it must throw). */
function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

describe('combineAdapterFiles (the CLI and the Lab worker)', () => {
  it('writes PEFT files for every combination type, on the inputs base, with its rank', () => {
    for (const type of COMBINATION_TYPES) {
      const out = combineAdapterFiles([a, b], [0.6, 0.4], type, { density: 0.5, seed: 3 });
      const config = readAdapterConfig(out.config, type);
      expect(config).toMatchObject({ peftType: 'LORA', baseModelNameOrPath: 'peftlab-s', r: out.r });
      expect(out.r).toBe(type === 'cat' ? 4 : 2);
      const state = readAdapterWeights(out.weights, type);
      expect(state.get('base_model.model.transformer.h.1.attn.c_attn.lora_A.weight')?.shape).toEqual([
        out.r,
        8,
      ]);
      expect(state.size).toBe(4);
    }
  });

  it('names incompatible adapters with AdapterCombineError and its reason, which survives the worker', () => {
    const other = { name: 'other', ...loraFiles({ ...spec, base: 'peftlab-m', seed: 3 }) };
    const base = thrown(() => combineAdapterFiles([a, other], [1, 1], 'cat'));
    expect(base).toBeInstanceOf(AdapterCombineError);
    expect(base.message).toMatch(
      /other was made on peftlab-m and a on peftlab-s: combine adapters made on the same base/,
    );
    const wire = rebuildError(serializeError(base));
    expect(wire).toBeInstanceOf(AdapterCombineError);
    expect((wire as AdapterCombineError).reason).toBe('base');

    const r4 = { name: 'r4', ...loraFiles({ ...spec, r: 4, seed: 4 }) };
    const rank = thrown(() => combineAdapterFiles([a, r4], [1, 1], 'dare_ties', { density: 0.5 }));
    expect((rank as AdapterCombineError).reason).toBe('rank');
    expect(rank.message).toMatch(/needs equal ranks, got r = 2, 4: use "cat" or "svd"/);
    // cat and svd take different ranks.
    expect(combineAdapterFiles([a, r4], [1, 1], 'cat').r).toBe(6);
    expect(combineAdapterFiles([a, r4], [1, 1], 'svd').r).toBe(4);

    const proj = { name: 'proj', ...loraFiles({ ...spec, targets: ['c_proj'], seed: 5 }) };
    expect((thrown(() => combineAdapterFiles([a, proj], [1, 1], 'cat')) as AdapterCombineError).reason).toBe(
      'targets',
    );
    const dora = { name: 'dora', ...loraFiles({ ...spec, seed: 6, config: { useDora: true } }) };
    const d = thrown(() => combineAdapterFiles([a, dora], [1, 1], 'linear'));
    expect(d).toBeInstanceOf(AdapterCombineError);
    expect(d.message).toMatch(/DoRA/);
  });

  it('keeps bad options a PeftConfigError naming the option', () => {
    expect(thrown(() => combineAdapterFiles([a, b], [1, 1], 'ties', { density: 2 }))).toBeInstanceOf(
      PeftConfigError,
    );
    expect(thrown(() => combineAdapterFiles([a, b], [1], 'ties')).message).toMatch(
      /2 adapters but 1 weights/,
    );
  });
});
