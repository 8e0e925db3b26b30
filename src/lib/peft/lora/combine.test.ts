/**
 * add_weighted_adapter on saved LoRA state dicts: `cat` gives exactly the weighted sum of the
 * updates s_i B_i A_i; `linear` follows PEFT's task arithmetic; bad inputs are named.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StateDict } from '../state';
import { lora } from '.';
import type { LoraConfig } from './config';
import { addWeightedAdapter } from './combine';
import type { CombinationType, CombineOptions, SavedLora } from './combine';

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

interface Fixture {
  weights: number[];
  scaling: Record<'a' | 'b', number>;
  inputs: Record<string, Record<'a' | 'b', { A: number[][]; B: number[][] }>>;
  results: Record<string, Record<string, { A: number[][]; B: number[][]; delta?: number[][] }>>;
}

/** PEFT 0.21's add_weighted_adapter on two LoRA adapters of the tiny GPT-2 (make_combine_fixtures.py). */
const FIX = JSON.parse(
  readFileSync(join(import.meta.dirname, '../fixtures/peft-0.21-combine/add_weighted_adapter.json'), 'utf8'),
) as Fixture;

function fromFixture(which: 'a' | 'b'): SavedLora {
  const state: StateDict = new Map();
  for (const [name, io] of Object.entries(FIX.inputs)) {
    const { A, B } = io[which];
    state.set(`base_model.model.${name}.lora_A.weight`, {
      shape: [A.length, A[0]!.length],
      data: Float32Array.from(A.flat()),
    });
    state.set(`base_model.model.${name}.lora_B.weight`, {
      shape: [B.length, B[0]!.length],
      data: Float32Array.from(B.flat()),
    });
  }
  const config: LoraConfig = {
    ...lora.defaults('CAUSAL_LM'),
    r: 2,
    loraAlpha: FIX.scaling[which] * 2,
    targetModules: ['c_attn', 'mlp.c_fc'],
  };
  return { config, state };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** B A [out, in] of a result (its scaling is 1). */
function product(s: StateDict, name: string): Float64Array {
  const A = s.get(`base_model.model.${name}.lora_A.weight`)!;
  const B = s.get(`base_model.model.${name}.lora_B.weight`)!;
  const [r, inDim] = A.shape as [number, number];
  const outDim = B.shape[0]!;
  const d = new Float64Array(outDim * inDim);
  for (let o = 0; o < outDim; o++)
    for (let k = 0; k < r; k++)
      for (let i = 0; i < inDim; i++)
        d[o * inDim + i] = d[o * inDim + i]! + B.data[o * r + k]! * A.data[k * inDim + i]!;
  return d;
}

describe("add_weighted_adapter's combination types against PEFT 0.21", () => {
  const inputs = [fromFixture('a'), fromFixture('b')];
  const opts: Record<string, [CombinationType, CombineOptions]> = {
    linear: ['linear', {}],
    cat: ['cat', {}],
    ties: ['ties', { density: 0.5 }],
    ties_frequency: ['ties', { density: 0.5, majoritySignMethod: 'frequency' }],
    magnitude_prune: ['magnitude_prune', { density: 0.5 }],
  };

  it.each(Object.keys(opts))("%s gives PEFT's A and B", (combo) => {
    const [type, o] = opts[combo]!;
    const got = addWeightedAdapter(inputs, FIX.weights, type, o);
    for (const [name, want] of Object.entries(FIX.results[combo]!)) {
      expect(
        maxDiff(got.state.get(`base_model.model.${name}.lora_A.weight`)!.data, want.A.flat()),
      ).toBeLessThan(1e-5);
      expect(
        maxDiff(got.state.get(`base_model.model.${name}.lora_B.weight`)!.data, want.B.flat()),
      ).toBeLessThan(1e-5);
    }
  });

  it.each([
    ['svd', {} as CombineOptions],
    ['svd_rank3', { svdRank: 3 } as CombineOptions],
  ])("%s gives PEFT's update B A (A and B up to each singular pair's sign)", (combo, o) => {
    const got = addWeightedAdapter(inputs, FIX.weights, 'svd', o);
    expect(got.config.r).toBe(o.svdRank ?? 2);
    expect(got.config.loraAlpha).toBe(got.config.r);
    for (const [name, want] of Object.entries(FIX.results[combo]!)) {
      expect(maxDiff(product(got.state, name), want.delta!.flat())).toBeLessThan(1e-4);
      // Each row of A is PEFT's row or its negative.
      const A = got.state.get(`base_model.model.${name}.lora_A.weight`)!;
      const inDim = A.shape[1]!;
      want.A.forEach((row, k) => {
        const ours = A.data.slice(k * inDim, (k + 1) * inDim);
        const sign = Math.sign(ours.reduce((s, x, i) => s + x * row[i]!, 0));
        expect(
          maxDiff(
            ours.map((x) => x * sign),
            row,
          ),
        ).toBeLessThan(1e-4);
      });
    }
  });

  it('svd with svdClamp clamps every entry to the quantile and keeps the update close', () => {
    const plain = addWeightedAdapter(inputs, FIX.weights, 'svd', { svdRank: 3 });
    const got = addWeightedAdapter(inputs, FIX.weights, 'svd', { svdRank: 3, svdClamp: 0.9 });
    for (const [name, want] of Object.entries(FIX.results.svd_clamp!)) {
      const A = got.state.get(`base_model.model.${name}.lora_A.weight`)!.data;
      const B = got.state.get(`base_model.model.${name}.lora_B.weight`)!.data;
      const hi = Math.max(...[...A, ...B].map(Math.abs));
      // PEFT's bound is the 0.9 quantile of its signed entries, which a pair's sign can move: ours
      // clamps at our own quantile, so the bound is checked, and that clamping cut something.
      const peftHi = Math.max(...[...want.A.flat(), ...want.B.flat()].map(Math.abs));
      expect(hi).toBeLessThan(
        Math.max(...[...plain.state.get(`base_model.model.${name}.lora_B.weight`)!.data].map(Math.abs)) +
          1e-9,
      );
      expect(Math.abs(hi - peftHi) / peftHi).toBeLessThan(0.5);
    }
  });

  it('dare keeps about density of the entries, rescaled by 1 / density, and is seeded', () => {
    const one = [inputs[0]!];
    // One adapter is combined linearly in PEFT whatever the type: test dare on two equal ones.
    const twins = [inputs[0]!, inputs[0]!];
    const lin = addWeightedAdapter(twins, [1, 0], 'linear');
    const dare = addWeightedAdapter(twins, [1, 0], 'dare_linear', { density: 0.5, seed: 3 });
    let kept = 0;
    let total = 0;
    for (const [k, v] of dare.state) {
      const full = lin.state.get(k)!.data;
      v.data.forEach((x, i) => {
        total++;
        if (x !== 0) {
          kept++;
          // The only contribution is adapter 1's entry over density.
          expect(x).toBeCloseTo(full[i]! / 0.5, 5);
        }
      });
    }
    expect(Math.abs(kept / total - 0.5)).toBeLessThan(0.05);
    const again = addWeightedAdapter(twins, [1, 0], 'dare_linear', { density: 0.5, seed: 3 });
    for (const [k, v] of again.state) expect(maxDiff(v.data, dare.state.get(k)!.data)).toBe(0);
    // density 1 prunes nothing: dare_ties is then ties at density 1.
    const dt = addWeightedAdapter(inputs, FIX.weights, 'dare_ties', { density: 1 });
    const t = addWeightedAdapter(inputs, FIX.weights, 'ties', { density: 1 });
    for (const [k, v] of dt.state) expect(maxDiff(v.data, t.state.get(k)!.data)).toBe(0);
    expect(addWeightedAdapter(one, [2], 'dare_ties', { density: 0.1 }).config.r).toBe(2);
  });

  it('refuses a bad density, sign method or type, naming it', () => {
    expect(() => addWeightedAdapter(inputs, FIX.weights, 'ties', { density: 1.5 })).toThrow(/density/);
    expect(() =>
      addWeightedAdapter(inputs, FIX.weights, 'ties', { majoritySignMethod: 'mean' as never }),
    ).toThrow(/majoritySignMethod/);
    expect(() => addWeightedAdapter(inputs, FIX.weights, 'nope' as never)).toThrow(/combination type/);
  });
});
