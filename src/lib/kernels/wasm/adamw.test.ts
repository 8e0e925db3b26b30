/**
 * AdamW's SIMD kernel (adamw.ts, through train/adamw.ts's apply) against the stock ops on the cpu
 * backend and on wasm with the kernel switched off: parameters and moments over several steps, with
 * and without weight decay and the clipping factor, sizes with and without a tail of n % 4; what it
 * must not touch (gradients, the scale, tensors sharing a variable's data); no leaked tensors; and a
 * whole full fine-tuning run of the Trainer.
 */
import { describe, it, expect, beforeAll, afterEach } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../../backend/node';
import { loadGpt2 } from '../../model/load';
import { newVariable } from '../../model/ops';
import { full } from '../../peft/full/full';
import { AdamW } from '../../train/adamw';
import { Trainer } from '../../train/trainer';
import { ADAMW_SIMD, wasmAdamWOn } from './adamw';
import { setWasmKernels } from './heap';
import { maxDiff, onBoth } from './testing';

const SHAPES: number[][] = [[7], [5, 12], [33, 3], [96]];

/** Kernels tf.profile saw run during f. */
async function kernelsOf(f: () => void): Promise<string[]> {
  const info = await tf.profile(f);
  return info.kernels.map((k) => k.name);
}

/** Five AdamW steps on variables of SHAPES from fixed gradients; returns params then m, v per step. */
function run(weightDecay: number, clip: number | null): Float32Array[] {
  const vars = new Map(
    SHAPES.map((s, i) => [`w${i}`, newVariable(tf.randomNormal(s, 0, 1, 'float32', 10 + i), true)]),
  );
  const opt = new AdamW({ eps: 1e-8, weightDecay });
  const out: Float32Array[] = [];
  for (let step = 0; step < 5; step++) {
    // Seeds from 1000: tfjs takes seed 0 for "no seed" (a different draw on every call).
    const grads = new Map(
      SHAPES.map((s, i) => [
        `w${i}`,
        tf.randomNormal(s, 0, 0.1 * (step + 1), 'float32', 1000 + 100 * step + i),
      ]),
    );
    const scale = clip === null ? undefined : tf.scalar(clip);
    // Decay on matrices only, as the trainer does: the 1-D ones take wd 0 in the same call.
    opt.apply(vars, grads, 1e-2 * (step + 1), (name) => vars.get(name)!.rank >= 2, scale);
    for (const g of grads.values()) expect(g.isDisposed).toBe(false);
    expect(scale?.isDisposed ?? false).toBe(false);
    tf.dispose([...grads.values(), ...(scale ? [scale] : [])]);
    for (const v of vars.values()) out.push(v.dataSync<'float32'>().slice());
  }
  const moments = opt as unknown as { m: Map<string, tf.Variable>; v: Map<string, tf.Variable> };
  for (const k of vars.keys())
    out.push(
      moments.m.get(k)!.dataSync<'float32'>().slice(),
      moments.v.get(k)!.dataSync<'float32'>().slice(),
    );
  opt.dispose();
  for (const v of vars.values()) v.dispose();
  return out;
}

describe('AdamW as one SIMD pass on wasm', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });
  afterEach(() => setWasmKernels(true));

  it('runs on wasm, and not when switched off by name', async () => {
    expect(wasmAdamWOn()).toBe(true);
    const p = newVariable(tf.ones([8]), true);
    const g = new Map([['p', tf.fill([8], 0.5)]]);
    const opt = new AdamW();
    const vars = new Map([['p', p]]);
    expect(await kernelsOf(() => opt.apply(vars, g, 0.1))).toContain(ADAMW_SIMD);
    setWasmKernels((k) => k !== ADAMW_SIMD);
    expect(wasmAdamWOn()).toBe(false);
    const stock = await kernelsOf(() => opt.apply(vars, g, 0.1));
    expect(stock).not.toContain(ADAMW_SIMD);
    expect(stock.length).toBeGreaterThan(10);
    tf.dispose([p, ...g.values()]);
    opt.dispose();
  });

  for (const weightDecay of [0, 0.01]) {
    for (const clip of [null, 0.37]) {
      const how = `weight decay ${weightDecay}, ${clip === null ? 'no clipping factor' : `clipping factor ${clip}`}`;
      it(`gives cpu's stock parameters and moments over 5 steps (${how})`, async () => {
        const [cpu, wasm] = await onBoth(() => run(weightDecay, clip));
        expect(wasm.length).toBe(cpu.length);
        for (let i = 0; i < cpu.length; i++) expect(maxDiff(cpu[i]!, wasm[i]!)).toBeLessThan(1e-6);
        // The updates are not negligible, so the comparison can fail.
        expect(maxDiff(cpu[0]!, cpu[cpu.length - 2 * SHAPES.length - SHAPES.length]!)).toBeGreaterThan(1e-2);
      });

      it(`matches wasm's stock ops (kernel off) to float rounding (${how})`, () => {
        setWasmKernels((k) => k !== ADAMW_SIMD);
        const stock = run(weightDecay, clip);
        setWasmKernels(true);
        const ours = run(weightDecay, clip);
        for (let i = 0; i < stock.length; i++) expect(maxDiff(stock[i]!, ours[i]!)).toBeLessThan(1e-7);
      });
    }
  }

  it('leaks no tensor, keeps the old value for tensors sharing it, and steps aside for shared moments', () => {
    const p = newVariable(tf.randomNormal([6, 10], 0, 1, 'float32', 3), true);
    const vars = new Map([['p', p]]);
    const g = new Map([['p', tf.randomNormal([6, 10], 0, 1, 'float32', 4)]]);
    const opt = new AdamW({ weightDecay: 0.1 });
    opt.apply(vars, g, 1e-2); // makes the moments
    const before = tf.memory().numTensors;
    // A clone shares p's data on wasm (identity.ts): it must keep the value from before the step.
    const old = tf.clone(p);
    const oldValues = old.dataSync<'float32'>().slice();
    const m = (opt as unknown as { m: Map<string, tf.Variable> }).m.get('p')!;
    // A clone of the first moment makes it shared: the kernel must not write it in place then.
    const mOld = tf.clone(m);
    const mValues = mOld.dataSync<'float32'>().slice();
    opt.apply(vars, g, 1e-2);
    expect(maxDiff(old.dataSync(), oldValues)).toBe(0);
    expect(maxDiff(mOld.dataSync(), mValues)).toBe(0);
    expect(maxDiff(p.dataSync(), oldValues)).toBeGreaterThan(1e-4);
    tf.dispose([old, mOld]);
    expect(tf.memory().numTensors).toBe(before);
    opt.apply(vars, g, 1e-2); // the moments are unshared again: in place
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([p, ...g.values()]);
    opt.dispose();
  });

  it('a full fine-tuning run of the Trainer gives the stock path weights, leaking nothing', async () => {
    const fix = join(import.meta.dirname, '../../model/fixtures/tiny-gpt2');
    const stream = Int32Array.from({ length: 400 }, (_, i) => (i * 5) % 13);
    const train = async (on: boolean): Promise<Float32Array[]> => {
      setWasmKernels((k) => on || k !== ADAMW_SIMD);
      const model = loadGpt2({
        config: JSON.parse(readFileSync(join(fix, 'config.json'), 'utf8')),
        weights: new Uint8Array(readFileSync(join(fix, 'model.safetensors'))),
      });
      const adapter = full.create(model, full.defaults('CAUSAL_LM'), 0);
      const trainer = new Trainer(model, adapter, stream, {
        steps: 4,
        lr: 1e-2,
        batchSize: 2,
        seqLen: 8,
        seed: 1,
        warmupSteps: 0,
        weightDecay: 0.01,
        maxGradNorm: 0.5,
      });
      await trainer.trainStep();
      const n = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) await trainer.trainStep();
      expect(tf.memory().numTensors).toBe(n);
      const out = [...adapter.trainable().values()].map((v) => v.dataSync<'float32'>().slice());
      trainer.dispose();
      adapter.dispose();
      model.dispose();
      return out;
    };
    const stock = await train(false);
    const ours = await train(true);
    expect(ours.length).toBe(stock.length);
    for (let i = 0; i < stock.length; i++) expect(maxDiff(stock[i]!, ours[i]!)).toBeLessThan(1e-6);
  });
});
