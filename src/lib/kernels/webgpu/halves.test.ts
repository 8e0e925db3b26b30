import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { SettingsError } from '../../errors';
import { countDispatches } from './dispatch-counter';
import {
  HALF_MAX,
  frozenLinear,
  fromHalfBits,
  packHalves,
  roundToHalves,
  toHalfBits,
  unpackHalves,
} from './halves';
import { loraLinear, loraLinearStock } from './lora-linear';
import { maxRelError, onBackend, randomValues, webgpuForTests, weightedSum } from './testing';

const gpu = await webgpuForTests();

describe('f16 rounding in JavaScript', () => {
  it('gives the nearest half, ties to even, with subnormals, infinities and NaN', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [HALF_MAX, 0x7bff],
      [65520, 0x7c00], // halfway to the next binade rounds to even: infinity
      [65519, 0x7bff],
      [1 / 3, 0x3555],
      [2 ** -24, 0x0001], // the smallest subnormal
      [2 ** -25, 0x0000], // halfway to it: ties to even (0)
      [3 * 2 ** -25, 0x0002], // halfway between 1 and 2 subnormal units: even (2)
      [2 ** -14, 0x0400], // the smallest normal
      [1 + 2 ** -11, 0x3c00], // a tie between 1 and 1 + 2^-10: even (1)
      [1 + 3 * 2 ** -11, 0x3c02], // a tie between 1 + 2^-10 and 1 + 2^-9: even
      [Infinity, 0x7c00],
    ];
    for (const [x, bits] of cases) expect(toHalfBits(x), `${x}`).toBe(bits);
    expect(Number.isNaN(fromHalfBits(toHalfBits(NaN)))).toBe(true);
    expect(fromHalfBits(0x3555)).toBe(0.333251953125);
    expect(fromHalfBits(0x0001)).toBe(2 ** -24);
  });

  it('round-trips every half exactly, and rounds within half a unit in the last place', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = fromHalfBits(h);
      if (Number.isNaN(x)) continue;
      // -0 and +0 are distinct bits but equal values.
      expect(toHalfBits(x) === h || x === 0).toBe(true);
    }
    const v = randomValues(10000, 5).map((x) => x * 4);
    const r = roundToHalves(v);
    for (let i = 0; i < v.length; i++) {
      const ulp = 2 ** (Math.floor(Math.log2(Math.max(Math.abs(v[i]!), 2 ** -14))) - 10);
      expect(Math.abs(r[i]! - v[i]!)).toBeLessThanOrEqual(ulp / 2);
    }
  });

  it('refuses a value f16 cannot hold, naming it', () => {
    expect(() => packHalves(Float32Array.from([1, 7e4]), [1, 2], 'h.0.mlp.c_fc.weight')).toThrow(
      SettingsError,
    );
    expect(() => packHalves(Float32Array.from([1, 7e4]), [1, 2], 'h.0.mlp.c_fc.weight')).toThrow(
      /h\.0\.mlp\.c_fc\.weight holds 70000 at element 1/,
    );
  });
});

// Odd sizes: not multiples of the tiles, and an odd element count (a half-empty last word).
const [n, din, dout, r, scale] = [20, 25, 19, 4, 2];

function data() {
  // Weights of a trained model's size (about N(0, 0.02)); inputs of order 1.
  const w = randomValues(din * dout, 2).map((v) => v * 0.05);
  return {
    x: randomValues(n * din, 1),
    w,
    wHalf: roundToHalves(w),
    bias: randomValues(dout, 3),
    a: randomValues(din * r, 4).map((v) => v * 0.1),
    b: randomValues(r * dout, 5).map((v) => v * 0.1),
  };
}

describe.skipIf(!gpu)('f16 halves on webgpu', () => {
  it('unpacks to exactly the values JavaScript rounded (one dispatch)', async () => {
    await tf.setBackend('webgpu');
    const { w, wHalf } = data();
    const h = packHalves(w, [din, dout]);
    expect(h.bytes).toBe(Math.ceil((din * dout) / 2) * 4);
    const { result, counts } = await countDispatches(() => unpackHalves(h));
    const got = (await result.data()) as Float32Array;
    expect(counts.dispatches).toBe(1);
    expect(maxRelError(got, wHalf)).toBe(0);
    tf.dispose([result]);
    h.dispose();
  });

  it('frozenLinear: x W + b and dx match the stock f32 ops on cpu with the same halves, and f32 weights within f16 rounding', async () => {
    const d = data();
    const run = (half: boolean, weights: Float32Array) => () => {
      const x = tf.tensor2d(d.x, [n, din]);
      const bias = tf.tensor1d(d.bias);
      const hw = half ? packHalves(weights, [din, dout]) : null;
      const wt = tf.tensor2d(weights, [din, dout]);
      const f = (xi: tf.Tensor2D) => (hw ? frozenLinear(xi, hw, bias) : tf.add(tf.matMul(xi, wt), bias));
      const y = f(x);
      const [dx] = tf.grads((xi) => weightedSum(f(xi as tf.Tensor2D), 9))([x]);
      hw?.dispose();
      return [y, dx!];
    };
    const stockHalf = await onBackend('cpu', run(false, d.wHalf));
    const stockF32 = await onBackend('cpu', run(false, d.w));
    const ours = await onBackend('webgpu', run(true, d.w));
    // frozenLinear also takes an f32 W (the frozen layers without an adapter when weightsF16 is off).
    const oursF32 = await onBackend('webgpu', () => {
      const x = tf.tensor2d(d.x, [n, din]);
      const bias = tf.tensor1d(d.bias);
      const w = tf.tensor2d(d.w, [din, dout]);
      const f = (xi: tf.Tensor2D) => frozenLinear(xi, w, bias);
      return [f(x), tf.grads((xi) => weightedSum(f(xi as tf.Tensor2D), 9))([x])[0]!];
    });
    for (let i = 0; i < 2; i++)
      expect(maxRelError(oursF32[i]!, stockF32[i]!), ['y', 'dx'][i]).toBeLessThan(1e-5);
    for (let i = 0; i < 2; i++) {
      // Same weights, f32 arithmetic on both sides: only the order of the sums differs.
      expect(maxRelError(ours[i]!, stockHalf[i]!), ['y', 'dx'][i]).toBeLessThan(1e-5);
      // Against the unrounded weights: each weight is off by at most 2^-11 of itself, so a sum of
      // din products by at most 2^-11 sum |x w| (here about 25 * 0.5 * 0.025 * 2^-11 = 1.5e-4).
      expect(maxRelError(ours[i]!, stockF32[i]!), ['y', 'dx'][i]).toBeLessThan(3e-4);
    }
  });

  it('loraLinear with W as halves matches the stock composition with the rounded W: values and the gradients of x, A and B', async () => {
    const d = data();
    const run = (half: boolean) => () => {
      const x = tf.tensor2d(d.x, [n, din]);
      const bias = tf.tensor1d(d.bias);
      const a = tf.tensor2d(d.a, [din, r]);
      const b = tf.tensor2d(d.b, [r, dout]);
      const hw = half ? packHalves(d.w, [din, dout]) : null;
      const wt = tf.tensor2d(d.wHalf, [din, dout]);
      const f = (xi: tf.Tensor2D, ai: tf.Tensor2D, bi: tf.Tensor2D) =>
        hw ? loraLinear(xi, hw, bias, ai, bi, scale) : loraLinearStock(xi, wt, bias, ai, bi, scale);
      const y = f(x, a, b);
      const g = tf.grads((xi, ai, bi) =>
        weightedSum(f(xi as tf.Tensor2D, ai as tf.Tensor2D, bi as tf.Tensor2D), 9),
      )([x, a, b]);
      hw?.dispose();
      return [y, ...g];
    };
    const want = await onBackend('cpu', run(false));
    const got = await onBackend('webgpu', run(true));
    const names = ['y', 'dx', 'dA', 'dB'];
    for (let i = 0; i < 4; i++) expect(maxRelError(got[i]!, want[i]!), names[i]).toBeLessThan(1e-5);
  });

  it('costs the same dispatches as f32 (frozenLinear 1 + 1, loraLinear 2 + 4) and leaks nothing', async () => {
    await tf.setBackend('webgpu');
    const d = data();
    const x = tf.tensor2d(d.x, [n, din]);
    const bias = tf.tensor1d(d.bias);
    const a = tf.tensor2d(d.a, [din, r]);
    const b = tf.tensor2d(d.b, [r, dout]);
    const hw = packHalves(d.w, [din, dout]);
    const before = tf.memory().numTensors;
    const fl = await countDispatches(() => tf.grads((xi) => frozenLinear(xi as tf.Tensor2D, hw, bias))([x]));
    // dy's seed of ones is uploaded, not a dispatch: the product forward and dx backward.
    expect(fl.counts.dispatches).toBe(1 + 1);
    tf.dispose(fl.result);
    const ll = await countDispatches(() =>
      tf.grads((xi, ai, bi) =>
        loraLinear(xi as tf.Tensor2D, hw, bias, ai as tf.Tensor2D, bi as tf.Tensor2D, scale),
      )([x, a, b]),
    );
    expect(ll.counts.dispatches).toBe(2 + 4);
    tf.dispose(ll.result);
    expect(tf.memory().numTensors).toBe(before);
    hw.dispose();
    tf.dispose([x, bias, a, b]);
  });
});
