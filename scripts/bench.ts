/**
 * `npm run bench`: training and inference speed of our engine against @genai-fi/nanogpt, both on
 * tfjs wasm on models of the same shape, and against HF PEFT (torch + transformers + peft on one
 * thread, on the same model folder: see bench/peft.ts). Prints one table from one run.
 *
 * Each engine runs in a child process of its own (ours and nanogpt in Node, bench/engine-worker.ts;
 * PEFT in Python), as it would for its users, and times its runs there in its own CPU time. With
 * nanogpt imported into our process its import re-registers all of tfjs-core's gradients from its
 * bundled copy and adds 19 wasm kernels, and its steps grow the wasm heap and leave garbage for V8:
 * one engine's state must not be charged to another (bench/nanogpt-effect.ts measures that case).
 *
 *   --batch N (8)  --seq N (128)  --steps N (5 timed runs, after --warmup N (2) untimed ones)
 *   --model DIR (public/models/peftlab-s; a random model of its shape when absent)
 *   --json FILE (the same numbers as JSON)  --no-nanogpt (nanogpt is not imported)
 *   --no-peft (no Python child; otherwise found as $PEFT_LAB_PYTHON or .cache/peft-venv, `npm run setup:python`)
 *   --no-gpt2-small (skip the GPT-2 small section)  --no-smollm2 (skip the SmolLM2-135M section)
 *
 * The nine measurements run interleaved (see bench/measure.ts): the three engines see the same load.
 * Then, unless skipped, GPT-2 small's shape (bench/gpt2-small.ts): a 124M-parameter model with random
 * weights is saved to a temp folder, loaded from it in a fresh Node process, and generates.
 * Then SmolLM2-135M's shape (bench/smollm2.ts): the Llama family at a size people use, random BF16
 * weights saved and loaded, memory, and LoRA tokens/s resident and under stage-3 offload with
 * gradient checkpointing.
 */
import * as tf from '@tensorflow/tfjs';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initNodeBackend } from '../src/lib/backend/node';
import { countParameters } from '../src/lib/model/config';
import { Rng } from '../src/lib/util/rng';
import type { Gpt2SmallReport } from './bench/gpt2-small';
import { gpt2SmallText, runGpt2Small } from './bench/gpt2-small';
import type { SmolLm2Report } from './bench/smollm2';
import { runSmolLm2, smolLm2Text } from './bench/smollm2';
import type { Job, JobResult, Timing } from './bench/measure';
import { errorMessage, runInterleaved } from './bench/measure';
import type { EngineChild } from './bench/engine-child';
import { startEngine } from './bench/engine-child';
import type { NanoConfig } from './bench/nanogpt';
import { nanoConfig } from './bench/nanogpt';
import { chooseModel } from './bench/ours';
import type { PeftInfo } from './bench/peft';
import { setupPeft } from './bench/peft';
import type { Ratio } from './bench/report';
import { fmt, ratios, table } from './bench/report';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function positiveInt(name: string, v: string | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${v}`);
  return n;
}

const { values: flags } = parseArgs({
  options: {
    batch: { type: 'string' },
    seq: { type: 'string' },
    steps: { type: 'string' },
    warmup: { type: 'string' },
    model: { type: 'string' },
    json: { type: 'string' },
    'no-nanogpt': { type: 'boolean' },
    'no-peft': { type: 'boolean' },
    'no-gpt2-small': { type: 'boolean' },
    'no-smollm2': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  console.log(
    'usage: npm run bench -- [--batch 8] [--seq 128] [--steps 5] [--warmup 2] [--model DIR] [--json FILE] [--no-nanogpt] [--no-peft] [--no-gpt2-small] [--no-smollm2]',
  );
  process.exit(0);
}
const shape = {
  batch: positiveInt('batch', flags.batch, 8),
  seq: positiveInt('seq', flags.seq, 128),
  iters: positiveInt('steps', flags.steps, 5),
  warmup: positiveInt('warmup', flags.warmup, 2, 0),
};
const modelDir = flags.model ?? join(root, 'public/models/peftlab-s');

const started = new Date();
const t0 = performance.now();
const loadAtStart = loadavg()[0]!;
const backend = await initNodeBackend('wasm');
const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');

const choice = chooseModel(modelDir, flags.model !== undefined);
const probe = choice.make();
const c = probe.config;
probe.dispose();
if (shape.seq > c.nPositions) {
  throw new Error(`--seq ${shape.seq} exceeds the model's n_positions ${c.nPositions}`);
}

// Random token ids, uniform over the vocabulary: step time does not depend on which ids they are.
const rng = new Rng(1234);
const tokens = new Int32Array(Math.max(1 << 16, 4 * shape.batch * shape.seq));
for (let i = 0; i < tokens.length; i++) tokens[i] = rng.int(c.vocabSize);
const dataNote = `random token ids (uniform over the ${c.vocabSize}-token vocab, ${tokens.length} ids, seeded); speed does not depend on the ids`;

const childOptions = {
  modelDir: choice.dir ?? modelDir,
  explicit: flags.model !== undefined,
  batch: shape.batch,
  seq: shape.seq,
  steps: shape.warmup + shape.iters,
  tokens,
};
const oursChild = await startEngine('ours', 'PEFT Lab', childOptions);
if ('error' in oursChild)
  throw new Error(`our engine did not start in its child process: ${oursChild.error}`);
let nano: EngineChild | null = null;
let nanoError: string | null = flags['no-nanogpt'] ? 'skipped (--no-nanogpt)' : null;
const nanoCfg: NanoConfig = nanoConfig(c);
if (!nanoError) {
  const r = await startEngine('nanogpt', 'nanogpt', childOptions);
  if ('error' in r) nanoError = r.error;
  else nano = r;
}
const nanoFacts = nano?.facts as { version: string; shims: string[]; params: number } | undefined;
let peft: { jobs: Job[]; info: PeftInfo } | null = null;
let peftError: string | null = flags['no-peft'] ? 'skipped (--no-peft)' : null;
if (!peftError) {
  if (choice.source !== 'folder') peftError = 'needs a model folder (config.json + model.safetensors)';
  else {
    const r = await setupPeft(choice.dir!, shape);
    if ('error' in r) peftError = r.error;
    else peft = r;
  }
}
const ours = oursChild.jobs;
// Side by side: our forward, nanogpt's, PEFT's, our LoRA step, theirs, ..., our full step, theirs.
const jobs: Job[] = [];
for (let i = 0; i < ours.length; i++) {
  jobs.push(ours[i]!);
  if (nano) jobs.push(nano.jobs[i]!);
  if (peft) jobs.push(peft.jobs[i]!);
}
const engines = [oursChild, ...(nano ? [nano] : [])];
const { results, tensors } = await runInterleaved(jobs, shape.warmup, shape.iters, {
  // Both Node engines' live tensors: a leak in either shows.
  countTensors: async () =>
    (await Promise.all(engines.map((e) => e.numTensors()))).reduce((a, b) => a + b, 0),
  afterRuns: async () => void (await Promise.all(engines.map((e) => e.trained()))),
});
for (const j of jobs) j.dispose();
await Promise.all(engines.map((e) => e.close()));
const totalS = (performance.now() - t0) / 1000;

// ---- report ----
const NANO_WHAT = ['forward + LM logits', 'LoRA step (rank 8, cAttn)', 'full train step'];
const PEFT_WHAT = ['forward + LM logits', 'LoRA step (r 8, c_attn)', 'full fine-tune step'];
const skipped = (engine: string, whats: string[], reason: string): JobResult[] =>
  whats.map((what) => ({ engine, what, trainedParams: null, timing: { ok: false, reason } }));
const rows: JobResult[] = [
  ...results,
  ...(nano ? [] : skipped('nanogpt', NANO_WHAT, nanoError!)),
  ...(peft ? [] : skipped('HF PEFT', PEFT_WHAT, peftError!)),
];
const find = (engine: string, i: number): Timing | undefined => {
  const r = rows.filter((x) => x.engine === engine)[i];
  return r?.timing.ok ? r.timing.value : undefined;
};
const [oF, oL, oT] = [0, 1, 2].map((i) => find('PEFT Lab', i));
const [nF, nL, nT] = [0, 1, 2].map((i) => find('nanogpt', i));
const [pF, pL, pT] = [0, 1, 2].map((i) => find('HF PEFT', i));

const tokPerStep = shape.batch * shape.seq;
const header = [
  `PEFT Lab bench  ${started.toISOString()}`,
  `backend   tfjs ${tf.version_core} ${backend} (SIMD ${simd ? 'yes' : 'no'}, threads ${threads ? 'yes' : 'no'}), Node ${process.version}, ${cpus().length} CPUs, load avg at start ${loadAtStart.toFixed(2)}`,
  `model     ${choice.source === 'folder' ? relative(root, choice.dir!) || choice.dir : 'random'}: ${choice.label}`,
  `shape     GPT-2, vocab ${c.vocabSize}, ${c.nLayer} layers, ${c.nEmbd} wide, ${c.nHead} heads, MLP ${c.nInner}, n_positions ${c.nPositions}; ${fmt(countParameters(c))} params`,
  `batch     ${shape.batch} x ${shape.seq} = ${tokPerStep} tokens per forward / step`,
  `timing    ${shape.warmup} warm-up + ${shape.iters} timed rounds, the ${jobs.length} measurements interleaved; median shown; each run ends in a read-back`,
  `          each engine in a child process of its own, timing its runs there; tokens/s from wall time; cpu ms = that process's CPU time per run (robust to other processes)`,
  `data      ${dataNote}`,
];
if (nanoFacts) {
  header.push(
    `nanogpt   @genai-fi/nanogpt ${nanoFacts.version}, NanoGPTV1 {vocab ${nanoCfg.vocabSize}, blockSize ${nanoCfg.blockSize}, ${nanoCfg.nLayer} layers, nEmbed ${nanoCfg.nEmbed}, ${nanoCfg.nHead} heads, mlpFactor ${nanoCfg.mlpFactor}, learned positions}; ${fmt(nanoFacts.params)} params (RMSNorm, no biases)`,
  );
}

if (peft) {
  const p = peft.info;
  header.push(
    `HF PEFT   torch ${p.torch}, transformers ${p.transformers}, peft ${p.peft} (${p.python}), ${p.threads} thread; the same folder, eager attention; AdamW eps 1e-8, clip 1.0, as ours; random ids of the same shape`,
  );
}

const per = (a: Timing | undefined, b: Timing | undefined): Pick<Ratio, 'wall' | 'cpu'> =>
  a && b
    ? { wall: a.tokensPerSec / b.tokensPerSec, cpu: a.tokensPerCpuSec / b.tokensPerCpuSec }
    : { wall: null, cpu: null };
const ratioList: Ratio[] = [
  {
    label: 'our LoRA step time / our forward time',
    wall: oL && oF ? oL.medianMs / oF.medianMs : null,
    cpu: oL && oF ? oL.cpuMedianMs / oF.cpuMedianMs : null,
    aim: { op: '<=', target: 2.2 },
  },
  { label: 'our forward tokens/s / HF PEFT forward tokens/s', ...per(oF, pF) },
  { label: 'our LoRA tokens/s / HF PEFT LoRA tokens/s', ...per(oL, pL), aim: { op: '>=', target: 0.5 } },
  { label: 'our full-FT tokens/s / HF PEFT full-FT tokens/s', ...per(oT, pT) },
  { label: 'our forward tokens/s / nanogpt forward tokens/s', ...per(oF, nF) },
  { label: 'our LoRA tokens/s / nanogpt LoRA tokens/s', ...per(oL, nL), aim: { op: '>=', target: 5 } },
  { label: 'our full-FT tokens/s / nanogpt training tokens/s', ...per(oT, nT), aim: { op: '>=', target: 3 } },
];

const notes: string[] = [];
if (tensors.afterTimed !== tensors.afterWarmup) {
  notes.push(
    `LEAK: ${tensors.afterTimed - tensors.afterWarmup} tensors more after the ${shape.iters} timed rounds than after warm-up`,
  );
} else {
  notes.push(
    `no tensor leak: ${tensors.afterTimed} tensors (the engines' processes together) after warm-up and after the timed rounds`,
  );
}
if (nanoFacts) {
  notes.push(
    'nanogpt runs on wasm in Node only with these shims (it computes the same; none of its files is edited):',
  );
  for (const s of nanoFacts.shims) notes.push(`  - ${s}`);
  notes.push(
    '  its step takes gradients of every trainable tfjs variable: in LoRA mode its position table (a tfjs-layers Embedding outside its WeightStore) trains too, hence its LoRA count',
  );
} else notes.push(`nanogpt not measured: ${nanoError}`);
if (!peft) notes.push(`HF PEFT not measured: ${peftError}`);
notes.push(`the measurements above took ${totalS.toFixed(1)} s in all`);

console.log(header.join('\n'));
console.log();
console.log(table(rows));
console.log();
console.log(ratios(ratioList));
console.log();
console.log(notes.join('\n'));

// GPT-2 small last, after every job above is disposed: its ~1.5 GB must not sit beside them.
let gpt2Small: Gpt2SmallReport | null = null;
let gpt2SmallError: string | null = flags['no-gpt2-small'] ? 'skipped (--no-gpt2-small)' : null;
if (!gpt2SmallError) {
  try {
    gpt2Small = await runGpt2Small();
  } catch (e) {
    gpt2SmallError = errorMessage(e);
  }
}
console.log();
console.log(gpt2Small ? gpt2SmallText(gpt2Small) : `GPT-2 small not measured: ${gpt2SmallError}`);

// SmolLM2-135M last of all, for the same reason: its ~1 GB (weights and the file) stands alone.
let smolLm2: SmolLm2Report | null = null;
let smolLm2Error: string | null = flags['no-smollm2'] ? 'skipped (--no-smollm2)' : null;
if (!smolLm2Error) {
  try {
    smolLm2 = await runSmolLm2();
  } catch (e) {
    smolLm2Error = errorMessage(e);
  }
}
console.log();
console.log(smolLm2 ? smolLm2Text(smolLm2) : `SmolLM2-135M not measured: ${smolLm2Error}`);

if (flags.json) {
  const json = {
    date: started.toISOString(),
    backend: {
      name: backend,
      tfjs: tf.version_core,
      simd,
      threads,
      node: process.version,
      cpus: cpus().length,
    },
    loadAverageAtStart: loadAtStart,
    model: {
      source: choice.source,
      dir: choice.dir,
      label: choice.label,
      config: c,
      params: countParameters(c),
    },
    shape: {
      batch: shape.batch,
      seq: shape.seq,
      tokensPerStep: tokPerStep,
      warmupRounds: shape.warmup,
      timedRounds: shape.iters,
    },
    data: dataNote,
    nanogpt: nanoFacts
      ? { version: nanoFacts.version, config: nanoCfg, params: nanoFacts.params, shims: nanoFacts.shims }
      : { error: nanoError },
    peft: peft ? peft.info : { error: peftError },
    results: rows,
    ratios: Object.fromEntries(
      ratioList.map((r) => [
        r.label,
        { wall: r.wall, cpu: r.cpu, aim: r.aim ? `${r.aim.op} ${r.aim.target}` : null },
      ]),
    ),
    notes,
    runSeconds: totalS,
    gpt2Small: gpt2Small ?? { error: gpt2SmallError },
    smolLm2: smolLm2 ?? { error: smolLm2Error },
  };
  writeFileSync(flags.json, JSON.stringify(json, null, 2) + '\n');
  console.log(`JSON written to ${flags.json}`);
}
