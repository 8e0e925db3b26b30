/**
 * add_weighted_adapter on saved LoRA state dicts: `cat` gives exactly the weighted sum of the
 * updates s_i B_i A_i; `linear` follows PEFT's task arithmetic; bad inputs are named.
 */
import { describe, it, expect } from 'vitest';
import type { StateDict } from '../state';
import { lora } from '.';
import type { LoraConfig } from './config';
import { addWeightedAdapter } from './combine';

const KEY = 'base_model.model.transformer.h.0.attn.c_attn';
const IN = 3;
const OUT = 4;

function adapter(r: number, alpha: number, seed: number): { config: LoraConfig; state: StateDict } {
  let s = seed;
  const rnd = (): number => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
  return {
    config: { ...lora.defaults('CAUSAL_LM'), r, loraAlpha: alpha },
    state: new Map([
      [`${KEY}.lora_A.weight`, { shape: [r, IN], data: Float32Array.from({ length: r * IN }, rnd) }],
      [`${KEY}.lora_B.weight`, { shape: [OUT, r], data: Float32Array.from({ length: OUT * r }, rnd) }],
    ]),
  };
}

/** scaling * B A as [OUT, IN]. */
function delta(a: { config: LoraConfig; state: StateDict }): number[] {
  const A = a.state.get(`${KEY}.lora_A.weight`)!;
  const B = a.state.get(`${KEY}.lora_B.weight`)!;
  const r = A.shape[0]!;
  const s = a.config.loraAlpha / a.config.r;
  const d: number[] = [];
  for (let o = 0; o < OUT; o++)
    for (let i = 0; i < IN; i++) {
      let x = 0;
      for (let k = 0; k < r; k++) x += B.data[o * r + k]! * A.data[k * IN + i]!;
      d.push(s * x);
    }
  return d;
}

describe('add_weighted_adapter', () => {
  it('cat is exactly the weighted sum of the updates, with r summed and scaling 1', () => {
    const a = adapter(2, 4, 7);
    const b = adapter(3, 3, 11);
    const c = addWeightedAdapter([a, b], [0.7, -0.4], 'cat');
    expect(c.config).toMatchObject({ r: 5, loraAlpha: 5 });
    const want = delta(a).map((x, i) => 0.7 * x - 0.4 * delta(b)[i]!);
    delta(c).forEach((x, i) => expect(x).toBeCloseTo(want[i]!, 5));
  });

  it("linear is PEFT's task arithmetic: one adapter with weight w scales its update by w", () => {
    const a = adapter(2, 8, 3);
    const c = addWeightedAdapter([a], [0.5], 'linear');
    delta(c).forEach((x, i) => expect(x).toBeCloseTo(0.5 * delta(a)[i]!, 5));
  });

  it('refuses unequal ranks for linear, mismatched weights and other methods', () => {
    expect(() => addWeightedAdapter([adapter(2, 2, 1), adapter(3, 3, 2)], [1, 1], 'linear')).toThrow(
      /equal ranks, got r = 2, 3: use "cat"/,
    );
    expect(() => addWeightedAdapter([adapter(2, 2, 1)], [1, 1], 'cat')).toThrow(/1 adapters but 2 weights/);
    const other = {
      ...adapter(2, 2, 1),
      config: { ...adapter(2, 2, 1).config, peftType: 'ADALORA' as never },
    };
    expect(() => addWeightedAdapter([other], [1], 'cat')).toThrow(/only LoRA adapters combine/);
  });
});
