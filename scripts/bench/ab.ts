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
 */
import v8 from 'node:v8';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../src/lib/backend/node';
import { relaxedSimd } from '../../src/lib/kernels/wasm/emit';
import { setWasmKernels } from '../../src/lib/kernels/wasm/heap';
import { parseModelConfig } from '../../src/lib/model/family';
import { lmLogits } from '../../src/lib/model/heads';
import type { LlamaConfig } from '../../src/lib/model/llama-config';
import { loadModel } from '../../src/lib/model/load';
import { methodByCliName } from '../../src/lib/peft/registry';
import type { PeftConfigBase } from '../../src/lib/peft/types';
import { withFamilyDefaults } from '../../src/lib/train/plan';
import { Trainer } from '../../src/lib/train/trainer';
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

/** Forward and LoRA step jobs on SmolLM2-135M's layer shape (see the header). */
function smolJobs(): Job[] {
  const [layers, vocab, batch, seq] = [f.layers ?? 4, f.vocab ?? 8192, f.batch ?? 1, f.seq ?? 128].map(
    Number,
  ) as [number, number, number, number];
  const raw = { ...SMOLLM2_135M_CONFIG, num_hidden_layers: layers, vocab_size: vocab };
  const config = parseModelConfig(raw) as LlamaConfig;
  const make = () =>
    loadModel({ config: raw, weights: randomCheckpoint(config, new Rng(135)), source: 'ab' });
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

let jobs: Job[];
if (f.model === 'smollm2') jobs = smolJobs();
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
  console.log(`${side}: LoRA step / forward ${(m(jobs[1]!.what) / m(jobs[0]!.what)).toFixed(2)}x`);
}
for (const job of jobs) job.dispose();
