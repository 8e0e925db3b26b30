/**
 * Measures what tfjs holds during one training step (the second: the optimizer state exists from
 * the first) for random GPT-2 shapes, methods and task types, and prints one JSON line per run:
 * the ledger profile, the shape products of src/lib/race/ledger.ts's ACTIVATION_TERMS, the
 * measured activations in float32 elements (the peak, and the tensors alive at the backward's end
 * and at the cross-entropy's end in the forward) and the ledger's current prediction. fit.py fits
 * the tensor counts (ACTIVATION_COUNTS, FORWARD_COUNTS) from these lines.
 *   npx tsx scripts/reference/ledger/probe.ts wasm 300 2 > runs.jsonl   (the fit in ledger.ts)
 * Arguments: backend (wasm or cpu), runs per method variant, RNG seed, optionally a
 * comma-separated list of variants (default or `all`: every one of VARIANTS), and optionally a
 * JSON object of sizes to hold fixed (H, D head width, L, B, T, V, K, IperC, extraP).
 */
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../../src/lib/backend/node';
import type { NodeBackend } from '../../../src/lib/backend/node';
import type { EncodedSet } from '../../../src/lib/data/cls-data';
import type { TaskInfo } from '../../../src/lib/data/tasks/registry';
import { Gpt2Model } from '../../../src/lib/model/gpt2';
import type { Gpt2Config } from '../../../src/lib/model/config';
import { methodInfo } from '../../../src/lib/peft/catalog';
import type { TaskType } from '../../../src/lib/data/tasks/registry';
import { activationTerms, ledgerProfile, measureLedger, predictLedger } from '../../../src/lib/race/ledger';
import { createAdapter, planAdapter } from '../../../src/lib/train/plan';
import type { TextTokenizer } from '../../../src/lib/tokenizer/tokenizer';
import { clsBatchSource } from '../../../src/lib/train/classification';
import { Rng } from '../../../src/lib/util/rng';
import { Trainer } from '../../../src/lib/train/trainer';

/** A method with the config fields that pick its ledger profile; `draw` adds random sizes. */
interface Variant {
  name: string;
  method: string;
  config: Record<string, unknown>;
  /** Random sizes for a model of width C. */
  draw(int: (lo: number, hi: number) => number, C: number): Record<string, unknown>;
}

const virtual = (int: (lo: number, hi: number) => number): Record<string, unknown> => ({
  numVirtualTokens: int(1, 6),
});
const withHidden = (int: (lo: number, hi: number) => number): Record<string, unknown> => ({
  numVirtualTokens: int(1, 6),
  encoderHiddenSize: int(2, 24),
});

export const VARIANTS: Variant[] = [
  { name: 'lora', method: 'lora', config: {}, draw: (int, C) => ({ r: int(1, Math.min(6, C)) }) },
  {
    name: 'dora',
    method: 'lora',
    config: { useDora: true },
    draw: (int, C) => ({ r: int(1, Math.min(6, C)) }),
  },
  {
    name: 'adalora',
    method: 'adalora',
    config: {},
    draw: (int, C) => {
      const initR = int(1, Math.min(6, C));
      return { initR, targetR: int(1, initR) };
    },
  },
  { name: 'ia3', method: 'ia3', config: {}, draw: () => ({}) },
  { name: 'ln-tuning', method: 'ln-tuning', config: {}, draw: () => ({}) },
  { name: 'vera', method: 'vera', config: {}, draw: (int) => ({ r: int(1, 12) }) },
  { name: 'loha', method: 'loha', config: {}, draw: (int) => ({ r: int(1, 8) }) },
  {
    name: 'lokr',
    method: 'lokr',
    config: {},
    draw: (int) => ({ r: int(1, 8), decomposeBoth: int(0, 1) === 1 }),
  },
  {
    name: 'oft',
    method: 'oft',
    config: {},
    // A block size dividing the width, so the ledger's rank (oftBlockSize) is the size PEFT uses.
    draw: (int, C) => {
      const sizes = [2, 3, 4, 5, 6, 8].filter((b) => C % b === 0);
      return { oftBlockSize: sizes[int(0, sizes.length - 1)] ?? C };
    },
  },
  {
    name: 'oft-exact',
    method: 'oft',
    config: { useCayleyNeumann: false },
    draw: (int, C) => {
      const sizes = [2, 3, 4, 5, 6, 8].filter((b) => C % b === 0);
      return { oftBlockSize: sizes[int(0, sizes.length - 1)] ?? C };
    },
  },
  {
    name: 'boft',
    method: 'boft',
    config: {},
    // One factor (PEFT's default); a block size dividing the width, which BOFT requires.
    draw: (int, C) => {
      const sizes = [2, 3, 4, 5, 6, 8].filter((b) => C % b === 0);
      return { boftBlockSize: sizes[int(0, sizes.length - 1)] ?? C };
    },
  },
  { name: 'prompt-tuning', method: 'prompt-tuning', config: {}, draw: virtual },
  {
    name: 'p-tuning-mlp',
    method: 'p-tuning',
    config: { encoderReparameterizationType: 'MLP' },
    draw: withHidden,
  },
  {
    name: 'p-tuning-lstm',
    method: 'p-tuning',
    config: { encoderReparameterizationType: 'LSTM' },
    draw: withHidden,
  },
  { name: 'prefix-tuning', method: 'prefix-tuning', config: { prefixProjection: false }, draw: virtual },
  {
    name: 'prefix-tuning-mlp',
    method: 'prefix-tuning',
    config: { prefixProjection: true },
    draw: withHidden,
  },
  { name: 'p-tuning-v2', method: 'p-tuning-v2', config: {}, draw: virtual },
  { name: 'full', method: 'full', config: {}, draw: () => ({}) },
];

/** The tokenizer the methods' defaults never call (no TEXT init, no verbalizer). */
const NO_TOKENIZER: TextTokenizer = {
  vocabSize: 0,
  eosTokenId: null,
  encode: () => [1],
  decode: () => '',
  idToToken: () => undefined,
};

export function taskInfo(taskType: TaskType, numLabels: number): TaskInfo {
  return {
    id: 'ledger-probe',
    title: 'ledger probe',
    description: 'random tokens',
    taskType,
    metrics: taskType === 'CAUSAL_LM' ? ['perplexity'] : ['accuracy'],
    labels: Array.from({ length: numLabels }, (_, i) => `class${i}`),
    dataDir: '',
    format: 'text',
    files: { train: '', validation: '', test: '' },
  };
}

/** Examples of exactly `seqLen` random tokens, so every padded batch is [B, seqLen]. */
function clsSet(
  taskType: 'SEQ_CLS' | 'TOKEN_CLS',
  vocab: number,
  seqLen: number,
  K: number,
  rng: Rng,
): EncodedSet {
  const examples = Array.from({ length: 16 }, () => {
    const ids = Array.from({ length: seqLen }, () => Math.floor(rng.next() * vocab));
    const label =
      taskType === 'SEQ_CLS'
        ? Math.floor(rng.next() * K)
        : Array.from({ length: seqLen }, () => Math.floor(rng.next() * K));
    return { ids, label };
  });
  return { task: taskType, examples, padId: 0 };
}

interface ProfiledEngine {
  tidy(nameOrFn: unknown, fn?: unknown): unknown;
  state: { activeProfile: { kernels: { totalBytesSnapshot: number }[] } };
}

/**
 * Marks where tf.variableGrads's forward and backward scopes end (engine.gradients runs them as
 * tidy('forward') and tidy('backward')), as indices into the profile's kernel list, so a step's
 * peak can be split by phase: the forward (every intermediate alive inside its scope), the
 * backward (the kernels' saved tensors and every gradient), and the rest (clipping, AdamW).
 */
function markPhases(): { marks: number[] } {
  const engine = tf.engine() as unknown as ProfiledEngine;
  const tidy = engine.tidy.bind(engine);
  const out = { marks: [] as number[] };
  engine.tidy = (nameOrFn: unknown, fn?: unknown) => {
    const r = tidy(nameOrFn, fn);
    if (nameOrFn === 'forward' || nameOrFn === 'backward')
      out.marks.push(engine.state.activeProfile.kernels.length);
    return r;
  };
  return out;
}

async function main(): Promise<void> {
  const backend = (process.argv[2] ?? 'wasm') as NodeBackend;
  const perVariant = Number(process.argv[3] ?? 20);
  const rng = new Rng(Number(process.argv[4] ?? 1));
  const only = process.argv[5] && process.argv[5] !== 'all' ? process.argv[5].split(',') : null;
  // Optional sizes to hold fixed (e.g. '{"L":1,"C":8,"H":2}'), to look at one size at a time.
  const fixed = JSON.parse(process.argv[6] ?? '{}') as Record<string, number>;
  await initNodeBackend(backend);
  const phases = markPhases();
  const draw = (lo: number, hi: number): number => lo + Math.floor(rng.next() * (hi - lo + 1));
  const pick = (name: string, lo: number, hi: number): number => {
    const x = draw(lo, hi);
    return fixed[name] ?? x;
  };
  const int = draw;
  for (const v of VARIANTS.filter((x) => !only || only.includes(x.name))) {
    const tasks = methodInfo(v.method).taskTypes;
    for (let run = 0; run < perVariant; run++) {
      const taskType = tasks[run % tasks.length]!;
      const H = pick('H', 1, 4);
      const C = H * pick('D', 2, 8);
      const sizes = v.draw(int, C);
      const n = (sizes.numVirtualTokens as number | undefined) ?? 0;
      const B = pick('B', 1, 4);
      const T = pick('T', 2, 12);
      const config: Gpt2Config = {
        vocabSize: pick('V', 16, 600),
        nPositions: T + n + pick('extraP', 1, 20),
        nEmbd: C,
        nLayer: pick('L', 1, 3),
        nHead: H,
        nInner: C * pick('IperC', 1, 5),
        layerNormEpsilon: 1e-5,
        bosTokenId: 0,
        eosTokenId: 0,
      };
      const K = pick('K', 2, 5);
      const info = taskInfo(taskType, K);
      const model = Gpt2Model.random(config, run + 1);
      const plan = planAdapter(
        model,
        v.method,
        { ...v.config, ...sizes },
        info,
        { steps: 10, seqLen: T, seed: 1 },
        'probe',
      );
      const adapter = createAdapter(model, NO_TOKENIZER, plan.method, plan.config, info, 1);
      const source =
        taskType === 'CAUSAL_LM'
          ? Int32Array.from({ length: 2000 }, () => int(0, config.vocabSize - 1))
          : clsBatchSource(clsSet(taskType, config.vocabSize, T, K, rng));
      const trainer = new Trainer(model, adapter, source, {
        steps: 10,
        lr: 1e-3,
        batchSize: B,
        seqLen: T,
        seed: 1,
      });
      await trainer.trainStep();
      const bytesBefore = tf.memory().numBytes;
      phases.marks = [];
      const prof = await tf.profile(async () => {
        await trainer.trainStep();
      });
      const [fwdEnd, bwdEnd] = phases.marks as [number, number];
      // The cross-entropy (model/ops.ts) is a customGrad whose forward runs in a scope of its own,
      // ending Max, Max, Log, Sub (log-sum-exp from the softmax), Reshape, GatherV2 (the label's
      // logit), Sub (the nll), Multiply, Sum, RealDiv (its weights, the mean). At its last kernel the
      // forward's tensors and the loss's logit-sized ones are all alive: the forward's peak whenever
      // the logits dominate (elsewhere it is inside one layer's op, below the backward's peak).
      // AdaLoRA adds its orthogonal regularization after it.
      // On wasm our kernels end it instead (kernels/wasm/cross-entropy.ts): the per-row loss, Sum,
      // RealDiv.
      const tails = [
        ['Max', 'Max', 'Log', 'Sub', 'Reshape', 'GatherV2', 'Sub', 'Multiply', 'Sum', 'RealDiv'],
        ['PeftLabCrossEntropyRows', 'Sum', 'RealDiv'],
      ];
      const tail = tails.find((t) => prof.kernels.some((k) => k.name === t[0]))!;
      const endsLoss = (i: number): boolean =>
        tails.some((t) => t.every((name, j) => prof.kernels[i - t.length + 1 + j]?.name === name));
      let lossEnd = fwdEnd - 1;
      while (lossEnd >= tail.length - 1 && !endsLoss(lossEnd)) lossEnd--;
      if (lossEnd < tail.length - 1) throw new Error('no cross-entropy in the forward');
      const snap = prof.kernels.map((k) => k.totalBytesSnapshot);
      const peakOf = (a: number, b: number): number => (Math.max(...snap.slice(a, b)) - bytesBefore) / 4;
      const G = [...adapter.trainable().values()].reduce((a, t) => a + t.size, 0);
      const shape = { batchSize: B, seqLen: T, taskType };
      const measured = measureLedger(model, adapter, trainer, plan.method.kind, {
        peakBytes: prof.peakBytes,
        bytesBefore,
      });
      const predicted = predictLedger(config, adapter, plan.method.kind, shape);
      const { vocabSize: V, nLayer: L, nInner: I, nPositions: P } = config;
      console.log(
        JSON.stringify({
          variant: v.name,
          profile: ledgerProfile(adapter),
          taskType,
          shape: { L, C, H, I, V, P, B, T, K, ...sizes },
          terms: activationTerms(config, adapter, shape),
          act: measured.activations / 4,
          // Above the bytes before the step, in float32 elements, by phase; G = gradient elements.
          fwd: peakOf(0, fwdEnd),
          // At the end of the loss's forward, where everything the forward made is alive (see lossEnd).
          loss: (snap[lossEnd]! - bytesBefore) / 4,
          bwd: peakOf(fwdEnd, bwdEnd) - G,
          rest: peakOf(bwdEnd, snap.length) - G,
          end: (snap[bwdEnd - 1]! - bytesBefore) / 4 - G,
          peakAt:
            snap.slice(fwdEnd, bwdEnd).indexOf(Math.max(...snap.slice(fwdEnd, bwdEnd))) - (bwdEnd - fwdEnd),
          peakKernel:
            prof.kernels[fwdEnd + snap.slice(fwdEnd, bwdEnd).indexOf(Math.max(...snap.slice(fwdEnd, bwdEnd)))]
              ?.name,
          G,
          maxVar: Math.max(...[...adapter.trainable().values()].map((t) => t.size)),
          predicted: predicted.activations / 4,
        }),
      );
      trainer.dispose();
      adapter.dispose();
      model.dispose();
    }
  }
}
void main();
