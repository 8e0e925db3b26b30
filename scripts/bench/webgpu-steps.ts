/**
 * Whole training steps on the webgpu backend for `npm run bench:webgpu`: the model and trainer the
 * app runs, with our kernels (kernels/webgpu/active.ts on) against stock tfjs (off). Per step:
 * ms, tokens/s, dispatches, readbacks, and the share of the adapter's measured matmul peak the
 * step's floating-point work reaches. Then one row per registered method (dispatches stock vs
 * ours) and nanogpt's LoRA step on the same adapter where it runs.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpt2Config } from '../../src/lib/model/config';
import { countParameters, parseGpt2Config } from '../../src/lib/model/config';
import { GPT2_SMALL_CONFIG } from './gpt2-small';
import { Gpt2Model } from '../../src/lib/model/gpt2';
import { loadGpt2 } from '../../src/lib/model/load';
import { METHODS } from '../../src/lib/peft/registry';
import type { PeftConfigBase } from '../../src/lib/peft/types';
import type { Adapter } from '../../src/lib/peft/types';
import { Trainer } from '../../src/lib/train/trainer';
import { setFusedKernels } from '../../src/lib/kernels/webgpu/active';
import { countDispatches } from '../../src/lib/kernels/webgpu/dispatch-counter';

export interface StepRow {
  model: string;
  what: string;
  batch: number;
  seq: number;
  stock: { ms: number; dispatches: number; readbacks: number };
  ours: { ms: number; dispatches: number; readbacks: number };
  gflopPerStep: number;
  /** Our step's GFLOP/s over the measured peak. */
  shareOfPeak: number;
}

const tokenStream = (n: number, vocab: number): Int32Array =>
  Int32Array.from({ length: n }, (_, i) => (i * 7919 + (i >> 5) * 131) % vocab);

/**
 * Multiply-adds of one step, counted as 2 FLOP each: the forward's linear layers, attention's two
 * products and the tied LM head; a full step's backward is twice the forward, a LoRA step's about
 * once (input gradients only; its rank-8 products are left out, under 3% here).
 */
function stepGflop(c: Gpt2Config, B: number, T: number, full: boolean): number {
  const N = B * T;
  const linear = c.nLayer * (3 * c.nEmbd * c.nEmbd + c.nEmbd * c.nEmbd + 2 * c.nEmbd * c.nInner);
  const fwd = 2 * N * linear + 2 * N * c.vocabSize * c.nEmbd + c.nLayer * 4 * B * T * T * c.nEmbd;
  return ((full ? 3 : 2) * fwd) / 1e9;
}

function loraConfig(): PeftConfigBase {
  const m = METHODS.lora!;
  return { ...m.defaults('CAUSAL_LM'), r: 8, loraAlpha: 16, targetModules: ['c_attn'] } as PeftConfigBase;
}

/** One step's cost on a fresh trainer: a first step (compiles, allocates), then a counted one, then `reps` timed. */
async function measureStep(
  model: Gpt2Model,
  makeAdapter: () => Adapter,
  B: number,
  T: number,
  kernels: boolean,
  reps: number,
): Promise<{ ms: number; dispatches: number; readbacks: number }> {
  setFusedKernels(kernels);
  const adapter = makeAdapter();
  const t = new Trainer(model, adapter, tokenStream(B * T * 8 + 1, model.config.vocabSize), {
    steps: 100,
    lr: 1e-4,
    warmupSteps: 0,
    batchSize: B,
    seqLen: T,
    seed: 1,
  });
  try {
    await t.trainStep();
    const { result, counts } = await countDispatches(() => t.trainStep());
    const times = [result.ms];
    for (let i = 1; i < reps; i++) times.push((await t.trainStep()).ms);
    times.sort((a, b) => a - b);
    return {
      ms: times[Math.floor(times.length / 2)]!,
      dispatches: counts.dispatches,
      readbacks: counts.readbacks,
    };
  } finally {
    t.dispose();
    adapter.dispose();
    setFusedKernels(true);
  }
}

async function modelSteps(
  name: string,
  model: Gpt2Model,
  B: number,
  T: number,
  reps: number,
  peakGflops: number,
): Promise<StepRow[]> {
  const rows: StepRow[] = [];
  const jobs: [string, boolean, () => Adapter][] = [
    ['LoRA step (r 8, c_attn)', false, () => METHODS.lora!.create(model, loraConfig(), 3)],
    ['full step', true, () => METHODS.full!.create(model, METHODS.full!.defaults('CAUSAL_LM'), 3)],
  ];
  for (const [what, full, make] of jobs) {
    const stock = await measureStep(model, make, B, T, false, reps);
    const ours = await measureStep(model, make, B, T, true, reps);
    // Full fine-tuning marks the base trainable; the next job starts from a frozen base again.
    model.setTrainable(false);
    const gflop = stepGflop(model.config, B, T, full);
    const row: StepRow = {
      model: name,
      what,
      batch: B,
      seq: T,
      stock,
      ours,
      gflopPerStep: gflop,
      shareOfPeak: gflop / (ours.ms / 1000) / peakGflops,
    };
    rows.push(row);
    const tps = (ms: number) => ((B * T) / (ms / 1000)).toFixed(0);
    console.log(
      `${name.padEnd(12)} ${what.padEnd(24)} ${`${B}x${T}`.padEnd(7)} ms/step ${stock.ms.toFixed(0).padStart(7)} / ${ours.ms.toFixed(0).padStart(7)}` +
        `  tokens/s ${tps(stock.ms).padStart(6)} / ${tps(ours.ms).padStart(6)}` +
        `  dispatches ${stock.dispatches} / ${ours.dispatches} (${(stock.dispatches / ours.dispatches).toFixed(1)}x)` +
        `  readbacks ${stock.readbacks} / ${ours.readbacks}` +
        `  ${gflop.toFixed(2)} GFLOP, ${(100 * row.shareOfPeak).toFixed(1)}% of peak`,
    );
  }
  return rows;
}

export interface MethodRow {
  method: string;
  stockDispatches: number;
  oursDispatches: number;
  oursReadbacks: number;
  error?: string;
}

/** Every registered method at its defaults, one step of batch 1 x 16 on a narrow 6-layer model. */
async function methodRows(): Promise<MethodRow[]> {
  const config: Gpt2Config = {
    vocabSize: 256,
    nPositions: 64,
    nEmbd: 64,
    nLayer: 6,
    nHead: 4,
    nInner: 256,
    layerNormEpsilon: 1e-5,
    bosTokenId: 255,
    eosTokenId: 255,
  };
  const rows: MethodRow[] = [];
  console.log('\nper method, one step of 1 x 16 tokens on a 6-layer model of width 64 (peftlab-l depth):');
  console.log('method          dispatches stock / ours        readbacks ours');
  for (const [name, m] of Object.entries(METHODS)) {
    const model = Gpt2Model.random(config, 5);
    // A method whose schedule needs the run's length (AdaLoRA's totalStep) gets the trainer's.
    const c = m.defaults('CAUSAL_LM') as PeftConfigBase & { totalStep?: number | null };
    if ('totalStep' in c && c.totalStep == null) c.totalStep = 100;
    const make = () => m.create(model, c, 3);
    try {
      const stock = await measureStep(model, make, 1, 16, false, 1);
      model.setTrainable(false);
      const ours = await measureStep(model, make, 1, 16, true, 1);
      rows.push({
        method: name,
        stockDispatches: stock.dispatches,
        oursDispatches: ours.dispatches,
        oursReadbacks: ours.readbacks,
      });
      console.log(
        `${name.padEnd(15)} ${String(stock.dispatches).padStart(5)} / ${String(ours.dispatches).padStart(5)} (${(stock.dispatches / ours.dispatches).toFixed(1)}x)` +
          `             ${ours.readbacks}`,
      );
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      rows.push({ method: name, stockDispatches: 0, oursDispatches: 0, oursReadbacks: 0, error });
      console.log(`${name.padEnd(15)} failed: ${error}`);
    } finally {
      model.dispose();
    }
  }
  return rows;
}

/** nanogpt's LoRA step (rank 8 on its fused QKV) on the webgpu backend, or why it cannot run. */
async function nanogptStep(B: number, T: number, reps: number): Promise<{ ms?: number; reason?: string }> {
  const say = (reason: string) => {
    console.log(`nanogpt LoRA step: not run: ${reason}`);
    return { reason };
  };
  try {
    const env = tf.env();
    const wasNode = env.getBool('IS_NODE');
    env.set('IS_NODE', false); // its bundled tfjs-core stubs Node's util (see bench/nanogpt.ts)
    let ng: typeof import('@genai-fi/nanogpt');
    try {
      ng = await import('@genai-fi/nanogpt');
    } finally {
      env.set('IS_NODE', wasNode);
    }
    const factoryUrl = new URL('./training/factory.js', import.meta.resolve('@genai-fi/nanogpt')).href;
    const createTrainer = ((await import(factoryUrl)) as { default: (...a: unknown[]) => unknown }).default;
    const l = JSON.parse(readFileSync(join('public/models/peftlab-l/config.json'), 'utf8')) as Record<
      string,
      number
    >;
    const model = new ng.models.NanoGPTV1({
      modelType: 'GenAI_NanoGPT_v1',
      vocabSize: l.vocab_size!,
      blockSize: l.n_positions!,
      nLayer: l.n_layer!,
      nHead: l.n_head!,
      nEmbed: l.n_embd!,
      mlpFactor: 4,
      useRope: false,
    });
    const tokeniser = new ng.tokenise.CharTokeniser(l.vocab_size!);
    tf.tidy(() => model.forward({ training: false }, tf.zeros([1, 8], 'int32')));
    const options = {
      method: { type: 'supervised', supervised: 'lora' },
      batchSize: B,
      learningRate: 1e-3,
      loraName: 'bench',
      loraConfig: { rank: 8, alpha: 8, variables: ['block_*_cAttn'] },
    };
    const trainer = createTrainer(model, tokeniser, options) as {
      configure(o: unknown): void;
      trainStep(state: object, batch: { xs: tf.Tensor; ys: tf.Tensor }): tf.Scalar;
      dispose(): void;
    };
    trainer.configure(options);
    const stream = tokenStream(B * T + 1, l.vocab_size!);
    const state = {};
    const step = async () => {
      const xs = tf.tensor2d(stream.subarray(0, B * T), [B, T], 'int32');
      const ys = tf.tensor2d(stream.subarray(1, B * T + 1), [B, T], 'int32');
      const t0 = performance.now();
      const loss = trainer.trainStep(state, { xs, ys });
      await loss.data(); // webgpu reads back only asynchronously (its own bench uses dataSync)
      const ms = performance.now() - t0;
      tf.dispose([loss, xs, ys]);
      return ms;
    };
    await step();
    const times: number[] = [];
    for (let i = 0; i < reps; i++) times.push(await step());
    times.sort((a, b) => a - b);
    trainer.dispose();
    model.dispose();
    const ms = times[Math.floor(times.length / 2)]!;
    console.log(
      `nanogpt      LoRA step (r 8, cAttn)   ${`${B}x${T}`.padEnd(7)} ms/step ${ms.toFixed(0)}  tokens/s ${((B * T) / (ms / 1000)).toFixed(0)} (its own webgpu kernels, peftlab-l's shape, v1 model)`,
    );
    return { ms };
  } catch (e) {
    return say(e instanceof Error ? e.message.split('\n')[0]! : String(e));
  }
}

export interface StepsReport {
  rows: StepRow[];
  methods: MethodRow[];
  gpt2Small: { skipped?: string };
  nanogpt: { ms?: number; reason?: string };
}

/** The whole-step part of the bench. `software`: the adapter is a CPU fallback (SwiftShader). */
export async function benchSteps(opts: {
  software: boolean;
  peakGflops: number;
  reps: number;
}): Promise<StepsReport> {
  const [B, T] = opts.software ? [1, 32] : [8, 128];
  const reps = opts.software ? 1 : opts.reps;
  console.log(
    `\nwhole training steps (stock tfjs / ours), batch ${B} x ${T}` +
      (opts.software
        ? ` (sized down from 8 x 128: the adapter is software, about ${opts.peakGflops.toFixed(2)} GFLOP/s)`
        : ''),
  );
  const dir = 'public/models/peftlab-l';
  const l = loadGpt2({
    config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(dir, 'model.safetensors'))),
    source: dir,
  });
  const rows = await modelSteps('peftlab-l', l, B, T, reps, opts.peakGflops);
  l.dispose();

  const small = parseGpt2Config(GPT2_SMALL_CONFIG, 'GPT-2 small config');
  const gpt2Small: { skipped?: string } = {};
  // Four measured configurations of two steps each, plus warm-ups: estimate before committing to it.
  const estimateS = (8 * (stepGflop(small, B, T, true) + stepGflop(small, B, T, false))) / opts.peakGflops;
  if (opts.software) {
    gpt2Small.skipped = `GPT-2 small (${(countParameters(small) / 1e6).toFixed(0)}M, random weights) skipped: the adapter is software; its steps at ${B} x ${T} would take about ${(estimateS / 60).toFixed(0)} minutes at the measured ${opts.peakGflops.toFixed(2)} GFLOP/s, past the bench's 5`;
    console.log(gpt2Small.skipped);
  } else {
    const model = Gpt2Model.random(small, 1);
    rows.push(...(await modelSteps('gpt2-small', model, B, T, reps, opts.peakGflops)));
    model.dispose();
  }
  const methods = await methodRows();
  console.log('');
  const nanogpt = await nanogptStep(B, T, reps);
  return { rows, methods, gpt2Small, nanogpt };
}
