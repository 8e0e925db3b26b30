/**
 * `npx tsx scripts/bench/ab.ts --off NAME[,NAME...] [--rounds 12]`: an A/B of some of our wasm
 * kernels (src/lib/kernels/wasm) in ONE process, in CPU time (process.cpuUsage), so that other
 * processes on a shared machine move both sides alike: "on" runs every kernel of ours, "off" switches
 * off (setWasmKernels) each kernel whose name starts with one of NAMEs, and the two alternate round
 * by round over the bench's forward, LoRA step and full fine-tuning step jobs (scripts/bench/ours.ts,
 * peftlab-s, batch 8 x 128; `--no-full` leaves the full step out). Prints each median and minimum,
 * and the LoRA step / forward ratio of both.
 *   e.g. --off PeftLabCausalAttention,PeftLabGeluSimd,PeftLabCrossEntropyGradSimd,PeftLabMatMulTA,PeftLabNormSimd
 *   --off PeftLab,Identity   every kernel of ours off (Identity is our sharing Identity, identity.ts)
 *   --off PeftLabRelaxedSimd,PeftLabMatMul   our gemms without fused multiply-adds, and the frozen
 *     weights' products by XNNPACK (matmul.ts matMulSimd runs only with them)
 *
 * `--model smollm2 [--layers 4] [--vocab 8192] [--batch 1] [--seq 128]`: the same over SmolLM2-135M's
 * layer shape instead (bench/smollm2.ts: 576 wide, 9 query heads on 3 key/value heads of 64,
 * SwiGLU 1536; random weights), with fewer layers and a smaller vocabulary so that a round takes
 * seconds, and its LoRA (q_proj, v_proj, r 8) as the step.
 *   e.g. --model smollm2 --off PeftLabCausalAttentionGqa
 *
 * `--cls [--batch 8] [--seq 64]`: sequence classification as the lessons run it (src/lib/learn:
 * LoRA r 8 with its SEQ_CLS defaults and the spam task's 2-label head, batch 8) on peftlab-s, over one right-padded
 * batch whose rows run evenly from 20 to `seq` tokens (the same batch every step, so both sides do
 * the same work): the forward to the head's logits, and the LoRA step.
 *   e.g. --cls --off PeftLabCausalAttention   fused attention under the padding mask vs the stock path
 * `--cls --method prefix-tuning|p-tuning-v2 [--virtual 20]`: the same with that method (its
 * defaults, `virtual` virtual tokens) instead of LoRA: every layer's attention then has past keys.
 *   e.g. --cls --method prefix-tuning --off PeftLabCausalAttention   fused attention with past keys vs stock
 * `--cls --model smollm2 [--layers 4] [--vocab 8192]`: the classification jobs on SmolLM2's layer shape.
 */
import v8 from 'node:v8';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../src/lib/backend/node';
import { relaxedSimd } from '../../src/lib/kernels/wasm/emit';
import { setWasmKernels } from '../../src/lib/kernels/wasm/heap';
import { padBatch, type EncodedSet } from '../../src/lib/data/cls-data';
import { parseModelConfig } from '../../src/lib/model/family';
import { taskById } from '../../src/lib/data/tasks/registry';
import { lmLogits } from '../../src/lib/model/heads';
import type { LlamaConfig } from '../../src/lib/model/llama-config';
import { loadModel } from '../../src/lib/model/load';
import { methodByCliName } from '../../src/lib/peft/registry';
import type { PeftConfigBase } from '../../src/lib/peft/types';
import { clsBatchLoss, clsLogits, clsParts } from '../../src/lib/train/classification';
import { createAdapter, planAdapter, withFamilyDefaults } from '../../src/lib/train/plan';
import { Trainer, type MicroBatch } from '../../src/lib/train/trainer';
import type { TextTokenizer } from '../../src/lib/tokenizer/tokenizer';
import { Rng } from '../../src/lib/util/rng';
import type { Job } from './measure';
import { chooseModel, ourJobs } from './ours';
import { randomCheckpoint, SMOLLM2_135M_CONFIG } from './smollm2';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const { values: f } = parseArgs({
  options: {
    off: { type: 'string' },
    rounds: { type: 'string' },
    model: { type: 'string' },
    layers: { type: 'string' },
    vocab: { type: 'string' },
    batch: { type: 'string' },
    seq: { type: 'string' },
    'no-full': { type: 'boolean' },
    cls: { type: 'boolean' },
    method: { type: 'string' },
    virtual: { type: 'string' },
  },
});
const off = (f.off ?? '').split(',').filter(Boolean);
if (off.length === 0)
  throw new Error('--off: name at least one kernel (prefix) to switch off, e.g. PeftLabNormSimd');
const rounds = Number(f.rounds ?? 12);
// Relaxed SIMD as in Chromium 114+ and Node 22+ (Node 20's V8 has it behind this flag; set before
// our module is first compiled, which is lazy). --off PeftLabRelaxedSimd compares without it.
v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
await initNodeBackend('wasm');
console.log(`relaxed SIMD (fused multiply-add in our gemms): ${relaxedSimd() ? 'yes' : 'no'}`);

/** A model of SmolLM2-135M's layer shape, `--layers` layers and a `--vocab` vocabulary, random weights. */
function smolModel() {
  const [layers, vocab] = [f.layers ?? 4, f.vocab ?? 8192].map(Number) as [number, number];
  const raw = { ...SMOLLM2_135M_CONFIG, num_hidden_layers: layers, vocab_size: vocab };
  const config = parseModelConfig(raw) as LlamaConfig;
  return loadModel({ config: raw, weights: randomCheckpoint(config, new Rng(135)), source: 'ab' });
}

/** Forward and LoRA step jobs on SmolLM2-135M's layer shape (see the header). */
function smolJobs(): Job[] {
  const [layers, vocab, batch, seq] = [f.layers ?? 4, f.vocab ?? 8192, f.batch ?? 1, f.seq ?? 128].map(
    Number,
  ) as [number, number, number, number];
  const make = smolModel;
  const tokens = Int32Array.from({ length: 1 << 14 }, (_, i) => (i * 7919) % vocab);
  const fwdModel = make();
  const ids = tf.tensor2d(tokens.subarray(0, batch * seq), [batch, seq], 'int32');
  const model = make();
  const lora = methodByCliName('lora');
  const cfg = { ...withFamilyDefaults(lora.defaults('CAUSAL_LM'), model), r: 8 } as PeftConfigBase;
  const adapter = lora.create(model, cfg as never, 7, { tokenize: () => [] });
  const trainer = new Trainer(model, adapter, tokens, {
    steps: 1000,
    lr: 1e-4,
    batchSize: batch,
    seqLen: seq,
    seed: 3,
  });
  const base = { engine: 'PEFT Lab', tokensPerRun: batch * seq, trainedParams: () => null };
  return [
    {
      ...base,
      what: `forward (${layers} layers, vocab ${vocab}, ${batch} x ${seq})`,
      run: () => {
        const logits = tf.tidy(() => lmLogits(fwdModel, fwdModel.forward({ ids, training: false }).hidden));
        logits.dataSync();
        logits.dispose();
      },
      dispose: () => {
        ids.dispose();
        fwdModel.dispose();
      },
    },
    {
      ...base,
      what: 'LoRA step (q_proj, v_proj, r 8)',
      run: async () => void (await trainer.trainStep()),
      dispose: () => {
        trainer.dispose();
        adapter.dispose();
        model.dispose();
      },
    },
  ];
}

/** Forward and LoRA step of sequence classification on peftlab-s (see the header). */
function clsJobs(): Job[] {
  const [batch, seq] = [f.batch ?? 8, f.seq ?? 64].map(Number) as [number, number];
  const method = f.method ?? 'lora';
  const choice = chooseModel(join(root, 'public/models/peftlab-s'), false);
  const lens = Array.from({ length: batch }, (_, i) =>
    Math.round(20 + ((seq - 20) * i) / Math.max(1, batch - 1)),
  );
  const task = taskById('spam')!; // two labels, as the lessons' SEQ_CLS lanes
  const set: EncodedSet = {
    task: 'SEQ_CLS',
    padId: 0,
    examples: lens.map((n, i) => ({
      ids: Array.from({ length: n }, (_, t) => 1 + ((i * 131 + t * 7919) % 2040)),
      label: i % task.labels.length,
    })),
  };
  const b = padBatch(
    set,
    lens.map((_, i) => i),
  );
  const noTokenizer: TextTokenizer = {
    vocabSize: 0,
    eosTokenId: null,
    encode: () => [1],
    decode: () => '',
    idToToken: () => undefined,
  };
  const make = (seed: number) => {
    const model = f.model === 'smollm2' ? smolModel() : choice.make();
    const config = method === 'lora' ? { r: 8 } : { numVirtualTokens: Number(f.virtual ?? 20) };
    const plan = planAdapter(model, method, config, task, { steps: 1000, seqLen: seq, seed }, 'ab');
    return { model, adapter: createAdapter(model, noTokenizer, plan.method, plan.config, task, seed) };
  };
  const fwd = make(7);
  const step = make(7);
  const tokens = lens.reduce((a, n) => a + n, 0);
  // Every step the same batch: the source ignores the trainer's draw.
  const micro: MicroBatch = {
    tokens,
    loss: (model, adapter, training, seed) => clsBatchLoss(model, adapter, adapter!.head!, b, training, seed),
    parts: clsParts(b),
  };
  const trainer = new Trainer(
    step.model,
    step.adapter,
    { draw: () => [micro] },
    {
      steps: 1000,
      lr: 1e-4,
      batchSize: batch,
      seqLen: seq,
      seed: 3,
    },
  );
  const base = { engine: 'PEFT Lab', tokensPerRun: tokens, trainedParams: () => null };
  return [
    {
      ...base,
      what: `SEQ_CLS forward (${batch} rows of ${lens[0]}..${lens[batch - 1]} tokens)`,
      run: () => {
        const logits = tf.tidy(() => clsLogits(fwd.model, fwd.adapter, fwd.adapter.head!, b, false, 0));
        logits.dataSync();
        logits.dispose();
      },
      dispose: () => {
        fwd.adapter.dispose();
        fwd.model.dispose();
      },
    },
    {
      ...base,
      what:
        method === 'lora'
          ? 'SEQ_CLS LoRA step (c_attn, r 8, head)'
          : `SEQ_CLS ${method} step (${f.virtual ?? 20} virtual tokens, head)`,
      run: async () => void (await trainer.trainStep()),
      dispose: () => {
        trainer.dispose();
        step.adapter.dispose();
        step.model.dispose();
      },
    },
  ];
}

let jobs: Job[];
if (f.cls) jobs = clsJobs();
else if (f.model === 'smollm2') jobs = smolJobs();
else if (f.model === undefined) {
  const choice = chooseModel(join(root, 'public/models/peftlab-s'), false);
  const tokens = Int32Array.from({ length: 8 * 128 * 4 }, (_, i) => (i * 7919) % 2048);
  jobs = ourJobs(choice, tokens, { batch: 8, seq: 128 }, 1000); // forward, LoRA step, full step
  if (f['no-full']) jobs.pop()!.dispose();
} else throw new Error(`--model: smollm2 or nothing (peftlab-s), got ${f.model}`);
const sides: [string, (kernel: string) => boolean][] = [
  ['on', () => true],
  ['off', (k) => !off.some((o) => k.startsWith(o))],
];
const samples = new Map<string, number[]>();
const warmup = 2;
for (let r = 0; r < rounds + warmup; r++) {
  for (const [side, on] of sides) {
    setWasmKernels(on);
    for (const job of jobs) {
      const c0 = process.cpuUsage();
      await job.run();
      const c = process.cpuUsage(c0);
      const key = `${side} | ${job.what}`;
      if (r >= warmup) samples.set(key, [...(samples.get(key) ?? []), (c.user + c.system) / 1000]);
    }
  }
}
setWasmKernels(true);
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1]!;
for (const [key, v] of samples) {
  console.log(`${key.padEnd(56)} median ${median(v).toFixed(1)} cpu ms, min ${Math.min(...v).toFixed(1)}`);
}
for (const [side] of sides) {
  const m = (what: string): number => median(samples.get(`${side} | ${what}`)!);
  console.log(`${side}: step / forward ${(m(jobs[1]!.what) / m(jobs[0]!.what)).toFixed(2)}x`);
}
for (const job of jobs) job.dispose();
