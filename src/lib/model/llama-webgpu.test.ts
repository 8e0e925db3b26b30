/**
 * llama.ts's fused attention path on WebGPU (our grouped-query kernel: no past, causal or causal
 * but for padded keys, and no sliding window hiding keys within the call) against the stock path on
 * cpu: hidden states and their gradient for the input embeddings, with a padding mask; the LM loss
 * through our LM head kernel; and a LoRA classification step (padded batches) against wasm, with
 * its dispatches stock vs ours. One file, so the step reuses the pipelines the forward tests
 * compiled (on SwiftShader, compiling is most of a first step's time).
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { initNodeBackend } from '../backend/node';
import type { EncodedSet } from '../data/cls-data';
import { ATT_GQA_LSE } from '../kernels/webgpu/attention';
import { setFusedKernels } from '../kernels/webgpu/active';
import { countDispatches } from '../kernels/webgpu/dispatch-counter';
import { maxRelError, onBackend, randomValues, webgpuForTests, weightedSum } from '../kernels/webgpu/testing';
import { headFor } from '../peft/task-head';
import { methodByCliName } from '../peft/registry';
import type { PeftConfigBase } from '../peft/types';
import { clsBatchSource } from '../train/classification';
import { withFamilyDefaults } from '../train/plan';
import { lmBatchLoss, Trainer } from '../train/trainer';
import type { DecoderModel } from './decoder';
import { tinyLlama } from './testing';

const gpu = await webgpuForTests();

/** A full row, a row with one real token, a left-padded row with a hole, then full rows. */
function maskRows(B: number, T: number): number[] {
  const rows = [
    Array.from({ length: T }, () => 1),
    Array.from({ length: T }, (_, j) => (j < 1 ? 1 : 0)),
    Array.from({ length: T }, (_, j) => (j < 2 || j === T - 2 ? 0 : 1)),
  ];
  return Array.from({ length: B }, (_, b) => rows[b] ?? rows[0]!).flat();
}

/** Hidden states and d(weighted sum)/d inputsEmbeds of a fixture, and how often our kernel ran. */
async function compare(
  name: 'tiny-llama' | 'tiny-mistral',
  B: number,
  T: number,
  masked: boolean,
  grad: boolean,
): Promise<{ err: number[]; fused: number; maskEffect: number }> {
  const run = (withMask: boolean) => () => {
    const model = tinyLlama(name);
    const C = model.config.nEmbd;
    const x = tf.mul(tf.tensor3d(randomValues(B * T * C, 73), [B, T, C]), 0.5) as tf.Tensor3D;
    const attentionMask = withMask ? tf.tensor2d(maskRows(B, T), [B, T]) : undefined;
    const f = (e: tf.Tensor3D) => model.forward({ inputsEmbeds: e, attentionMask }).hidden;
    const outs: tf.Tensor[] = [f(x)];
    if (grad) outs.push(tf.grad((e) => weightedSum(f(e as tf.Tensor3D), 5))(x));
    const kept = outs.map((t) => t.clone());
    model.dispose();
    return kept;
  };
  const want = await onBackend('cpu', run(masked));
  const spy = vi.spyOn(tf.engine(), 'runKernel');
  const got = await onBackend('webgpu', run(masked));
  const fused = spy.mock.calls.filter(
    ([kernel, inputs]) => kernel === ATT_GQA_LSE && masked === 'keyMask' in inputs,
  ).length;
  spy.mockRestore();
  const other = masked ? await onBackend('cpu', run(false)) : want;
  return {
    err: got.map((g, i) => maxRelError(g, want[i]!)),
    fused,
    maskEffect: maxRelError(other[0]!, want[0]!),
  };
}

describe.skipIf(!gpu)('LlamaModel.forward on webgpu with the grouped-query attention kernel', () => {
  it('tiny-llama (4 heads, 2 key/value heads), padded: hidden states and gradient match cpu', async () => {
    const r = await compare('tiny-llama', 3, 6, true, true);
    expect(r.fused).toBe(4); // both layers of both forwards (the value, the gradient's), with the key mask
    expect(r.err[0], 'hidden').toBeLessThan(1e-4);
    expect(r.err[1], 'd hidden / d inputsEmbeds').toBeLessThan(1e-4);
    // The mask changes the hidden states here, so a kernel that ignored it would fail above.
    expect(r.maskEffect).toBeGreaterThan(1e-2);
  });

  it('tiny-mistral (window 6, 1 key/value head): fused within the window, stock past it', async () => {
    const inside = await compare('tiny-mistral', 2, 6, false, false);
    expect(inside.fused).toBe(2);
    expect(inside.err[0]).toBeLessThan(1e-4);
    // 8 positions: the window hides keys, which our kernel cannot, so the stock mask runs.
    const past = await compare('tiny-mistral', 2, 8, true, false);
    expect(past.fused).toBe(0);
    expect(past.err[0]).toBeLessThan(1e-4);
  });

  it('tiny-llama LM loss: our LM head kernel reads the untied lm_head, causal attention fused; equals cpu', async () => {
    const [B, T] = [2, 6];
    const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 37 + 11) % 300);
    const labels = Int32Array.from({ length: B * T }, (_, i) => (i * 53 + 7) % 300);
    const run = () => () => {
      const model = tinyLlama();
      const loss = tf.clone(lmBatchLoss(model, null, { ids, labels, batch: B, seqLen: T }, false, 0));
      model.dispose();
      return [loss];
    };
    const want = await onBackend('cpu', run());
    const spy = vi.spyOn(tf.engine(), 'runKernel');
    const got = await onBackend('webgpu', run());
    const fused = spy.mock.calls.filter(
      ([kernel, inputs]) => kernel === ATT_GQA_LSE && !('keyMask' in inputs),
    );
    spy.mockRestore();
    expect(fused.length).toBe(2);
    expect(maxRelError(got[0]!, want[0]!)).toBeLessThan(1e-4);
  });
});

const STEPS = 2;

/** SEQ_CLS examples of 1 to 6 tokens, so every batch is padded and some row has one real token. */
function clsSet(vocab: number): EncodedSet {
  return {
    task: 'SEQ_CLS',
    padId: 0,
    examples: Array.from({ length: 12 }, (_, i) => {
      const ids = Array.from({ length: 1 + (i % 6) }, (_, t) => ((i * 5 + t * 3) % (vocab - 10)) + 5);
      return { ids, label: i % 2 };
    }),
  };
}

interface Run {
  losses: number[];
  gradNorms: number[];
  /** Dispatches of the last step (the first compiles and allocates moments). */
  dispatches: number;
  /** Our attention kernel's calls in the last step: masked ones and all. */
  masked: number;
  calls: number;
}

async function train(backend: 'wasm' | 'webgpu', kernels: boolean): Promise<Run> {
  await tf.setBackend(backend);
  setFusedKernels(kernels);
  const model: DecoderModel = tinyLlama();
  const lora = methodByCliName('lora');
  const config = {
    ...withFamilyDefaults(lora.defaults('SEQ_CLS'), model),
    r: 4,
    loraDropout: 0,
  } as PeftConfigBase;
  const adapter = lora.create(model, config, 7);
  adapter.attachHead!(headFor(model, config, 'SEQ_CLS', 2, 9));
  const t = new Trainer(model, adapter, clsBatchSource(clsSet(model.config.vocabSize)), {
    steps: 10,
    lr: 1e-2,
    warmupSteps: 0,
    batchSize: 4,
    seqLen: 6,
    seed: 11,
  });
  const run: Run = { losses: [], gradNorms: [], dispatches: 0, masked: 0, calls: 0 };
  for (let s = 0; s < STEPS; s++) {
    if (backend === 'webgpu' && s === STEPS - 1) {
      const spy = vi.spyOn(tf.engine(), 'runKernel');
      const { result, counts } = await countDispatches(() => t.trainStep());
      for (const [name, inputs] of spy.mock.calls) {
        if (name !== ATT_GQA_LSE) continue;
        run.calls++;
        if ((inputs as Record<string, unknown>).keyMask) run.masked++;
      }
      spy.mockRestore();
      run.losses.push(result.loss);
      run.gradNorms.push(result.gradNorm);
      run.dispatches = counts.dispatches;
    } else {
      const r = await t.trainStep();
      run.losses.push(r.loss);
      run.gradNorms.push(r.gradNorm);
    }
  }
  t.dispose();
  adapter.dispose();
  model.dispose();
  setFusedKernels(true);
  return run;
}

describe.skipIf(!gpu)('a Llama LoRA training step on WebGPU through the fused attention kernel', () => {
  beforeAll(async () => {
    // wasm for the reference step; the webgpu backend stays registered.
    await initNodeBackend('wasm');
  });
  afterAll(() => setFusedKernels(true));

  it('tiny Llama, LoRA, padded SEQ_CLS batches: losses match wasm, attention fused and masked, fewer dispatches', async () => {
    const wasm = await train('wasm', true);
    const ours = await train('webgpu', true);
    const stock = await train('webgpu', false);
    for (let s = 0; s < STEPS; s++) {
      const rel = (a: number[], b: number[]): number => Math.abs(a[s]! - b[s]!) / Math.abs(b[s]!);
      expect(rel(ours.losses, wasm.losses), `step ${s + 1} loss`).toBeLessThan(1e-4);
      expect(rel(ours.gradNorms, wasm.gradNorms), `step ${s + 1} gradient norm`).toBeLessThan(1e-3);
    }
    expect(wasm.losses[1]).not.toBe(wasm.losses[0]);
    // Every layer's attention ran through our kernel: with the key mask where the batch pads.
    const layers = 2;
    expect(ours.calls).toBe(layers);
    expect(ours.masked).toBe(layers);
    expect(stock.calls).toBe(0);
    expect(ours.dispatches).toBeLessThan(stock.dispatches);
    console.log(
      `tiny Llama LoRA SEQ_CLS step dispatches, stock / ours: ${stock.dispatches} / ${ours.dispatches} (${(stock.dispatches / ours.dispatches).toFixed(2)}x)`,
    );
  });
});
