import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { newVariable } from '../../model/ops';
import { AdamW } from '../../train/adamw';
import { FusedAdamW } from './adamw';
import { countDispatches } from './dispatch-counter';
import { maxRelError, randomValues, webgpuForTests } from './testing';

const gpu = await webgpuForTests();

// Several ranks and sizes, one not a multiple of the 64-thread workgroup.
const SHAPES: Record<string, number[]> = { a: [3, 5], b: [7], c: [4, 2, 3], d: [130, 3] };
const STEPS = 4;
const GRAD_SCALES = [1e-7, 1e-2, 1, 1e2];
const decay = (name: string) => SHAPES[name]!.length >= 2;

function makeVars(): Map<string, tf.Variable> {
  return new Map(
    Object.entries(SHAPES).map(([k, s], i) => {
      const n = s.reduce((a, b) => a * b, 1);
      return [k, newVariable(tf.tensor(randomValues(n, 10 + i), s), true)];
    }),
  );
}

function makeGrads(step: number): Map<string, tf.Tensor> {
  return new Map(
    Object.entries(SHAPES).map(([k, s], i) => {
      const n = s.reduce((a, b) => a * b, 1);
      // Gradients of very different sizes per tensor; at 1e-7 the epsilon (1e-8) moves the update by
      // about a tenth, so its placement is tested too.
      return [k, tf.mul(tf.tensor(randomValues(n, 100 * step + i), s), GRAD_SCALES[i]!)];
    }),
  );
}

/** Runs STEPS updates; with a clip scale, stock gets g * scale (clipByGlobalNorm's output). */
async function run(
  backend: 'cpu' | 'webgpu',
  make: () => AdamW,
  fused: boolean,
): Promise<{ params: Float32Array[]; state: Awaited<ReturnType<AdamW['state']>> }> {
  await tf.setBackend(backend);
  const vars = makeVars();
  const opt = make();
  for (let step = 0; step < STEPS; step++) {
    const grads = makeGrads(step);
    const scale = tf.scalar(step === 2 ? 0.25 : 1);
    if (fused) (opt as FusedAdamW).apply(vars, grads, 1e-2 * (step + 1), decay, scale);
    else {
      const scaled = new Map([...grads].map(([k, g]) => [k, tf.mul(g, scale)]));
      opt.apply(vars, scaled, 1e-2 * (step + 1), decay);
      tf.dispose([...scaled.values()]);
    }
    tf.dispose([...grads.values(), scale]);
  }
  const params = await Promise.all([...vars.values()].map(async (v) => (await v.data()) as Float32Array));
  const state = await opt.state();
  opt.dispose();
  tf.dispose([...vars.values()]);
  return { params, state };
}

const opts = { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };

function expectSame(got: Awaited<ReturnType<typeof run>>, want: Awaited<ReturnType<typeof run>>): void {
  got.params.forEach((p, i) => expect(maxRelError(p, want.params[i]!), `param ${i}`).toBeLessThan(1e-5));
  expect(got.state.t).toBe(want.state.t);
  for (const k of Object.keys(SHAPES)) {
    expect(maxRelError(got.state.m.get(k)!, want.state.m.get(k)!), `m ${k}`).toBeLessThan(1e-5);
    expect(maxRelError(got.state.v.get(k)!, want.state.v.get(k)!), `v ${k}`).toBeLessThan(1e-5);
  }
}

describe('FusedAdamW on cpu', () => {
  it('matches AdamW over several steps, shapes, decay and a clip scale', async () => {
    const want = await run('cpu', () => new AdamW(opts), false);
    const got = await run('cpu', () => new FusedAdamW(opts), true);
    expectSame(got, want);
  });
});

describe.skipIf(!gpu)('FusedAdamW on webgpu', () => {
  it("matches the cpu AdamW's parameters and moments to 1e-5", async () => {
    const want = await run('cpu', () => new AdamW(opts), false);
    const got = await run('webgpu', () => new FusedAdamW(opts), true);
    expectSame(got, want);
  });

  it('round-trips its moments through state() and loadState(), and names a foreign variable', async () => {
    await tf.setBackend('webgpu');
    const shapes = new Map(Object.entries(SHAPES));
    const vars = makeVars();
    const a = new FusedAdamW(opts);
    const g = makeGrads(0);
    a.apply(vars, g, 1e-2, decay);
    const saved = await a.state();
    const b = new FusedAdamW(opts);
    b.loadState(saved, shapes);
    expect(b.bytes()).toBe(a.bytes());
    const again = await b.state();
    for (const k of shapes.keys()) expect(again.m.get(k)).toEqual(saved.m.get(k));
    expect(() =>
      b.loadState({ t: 1, m: new Map([['zz', new Float32Array(2)]]), v: new Map() }, shapes),
    ).toThrow(/not a trainable variable/);
    tf.dispose([...vars.values(), ...g.values()]);
    a.dispose();
    b.dispose();
  });

  it('takes 2 dispatches per tensor, several times fewer than stock, and leaks nothing', async () => {
    await tf.setBackend('webgpu');
    const count = async (opt: AdamW, fused: boolean) => {
      const vars = makeVars();
      const grads = makeGrads(0);
      const scale = tf.scalar(0.5);
      // The first step allocates the moments (zeros): count the second, a steady-state step.
      const step = () => {
        if (fused) (opt as FusedAdamW).apply(vars, grads, 1e-3, decay, scale);
        else {
          const scaled = new Map([...grads].map(([k, g]) => [k, tf.mul(g, scale)]));
          opt.apply(vars, scaled, 1e-3, decay);
          tf.dispose([...scaled.values()]);
        }
      };
      step();
      const before = tf.memory().numTensors;
      const { counts } = await countDispatches(async () => {
        step();
        await Promise.all([...vars.values()].map((v) => v.data()));
      });
      expect(tf.memory().numTensors).toBe(before);
      opt.dispose();
      tf.dispose([...vars.values(), ...grads.values(), scale]);
      return counts.dispatches;
    };
    const k = Object.keys(SHAPES).length;
    const ours = await count(new FusedAdamW(opts), true);
    const stock = await count(new AdamW(opts), false);
    expect(ours).toBe(2 * k);
    expect(stock).toBeGreaterThanOrEqual(3 * ours);
    console.log(`AdamW dispatches for ${k} tensors (with clip scaling): ${stock} stock vs ${ours} ours`);
  });
});
