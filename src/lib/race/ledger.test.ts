/**
 * The memory ledger's prediction against what tfjs holds, on wasm in Node (the target):
 * every registry method and every task type it supports, trained by the real Trainer, measured on
 * the second step as the race measures it. The shapes are ones the fit (scripts/reference/ledger/)
 * never saw: head width 10 lies outside its range (2..8), and so does the vocabulary of 2000 and
 * 3000 of the causal-LM shapes (16..600), chosen so the logits and the tied head (B·T·V, V·C) are
 * most of a step's memory: the counts of the LM head's tensors decide those cases.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../backend/node';
import type { EncodedSet } from '../data/cls-data';
import type { TaskInfo } from '../data/tasks/registry';
import type { Gpt2Config } from '../model/config';
import { Gpt2Model } from '../model/gpt2';
import { METHOD_INFO } from '../peft/catalog';
import type { TaskType } from '../data/tasks/registry';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import { clsBatchSource } from '../train/classification';
import { Rng } from '../util/rng';
import { Trainer } from '../train/trainer';
import {
  ACTIVATION_COUNTS,
  FORWARD_COUNTS,
  activationPhases,
  ledgerProfile,
  measureLedger,
  predictLedger,
} from './ledger';
import type { MemoryLedger } from './ledger';
import { createAdapter, planAdapter } from '../train/plan';

const CONFIG: Gpt2Config = {
  vocabSize: 130,
  nPositions: 40,
  nEmbd: 20,
  nLayer: 2,
  nHead: 2,
  nInner: 60,
  layerNormEpsilon: 1e-5,
  bosTokenId: 0,
  eosTokenId: 0,
};
/**
 * Causal LM with a large vocabulary and few tokens (LM_BATCH x LM_SEQ_LEN): logit-sized tensors
 * are 40% (full) to 61% of a step's activations, the tied head's [V, C]-sized ones 13% to 20%.
 */
const LM_CONFIG: Gpt2Config = { ...CONFIG, vocabSize: 2000 };
const LM_BATCH = 2;
const LM_SEQ_LEN = 6;
/** One narrow layer under a larger vocabulary: the logits outweigh the layers' tensors. */
const NARROW_LM_CONFIG: Gpt2Config = { ...CONFIG, vocabSize: 3000, nLayer: 1, nEmbd: 8, nInner: 16 };
const BATCH = 3;
const SEQ_LEN = 7;
const NUM_LABELS = 3;

/** Each method once per structure the ledger tells apart (encoders, prefix projection). */
const VARIANTS: { name: string; method: string; config: Record<string, unknown> }[] = [
  { name: 'lora', method: 'lora', config: { r: 4 } },
  { name: 'dora', method: 'lora', config: { r: 4, useDora: true } },
  { name: 'pissa', method: 'lora', config: { r: 4, initLoraWeights: 'pissa' } },
  { name: 'adalora', method: 'adalora', config: { initR: 4, targetR: 2 } },
  { name: 'ia3', method: 'ia3', config: {} },
  { name: 'ln-tuning', method: 'ln-tuning', config: {} },
  { name: 'vera', method: 'vera', config: { r: 6 } },
  { name: 'loha', method: 'loha', config: { r: 4 } },
  { name: 'lokr', method: 'lokr', config: { r: 2, decomposeBoth: true } },
  { name: 'oft', method: 'oft', config: { oftBlockSize: 4 } },
  { name: 'oft (exact Cayley)', method: 'oft', config: { oftBlockSize: 4, useCayleyNeumann: false } },
  { name: 'boft', method: 'boft', config: { boftBlockSize: 4 } },
  { name: 'prompt-tuning', method: 'prompt-tuning', config: { numVirtualTokens: 3 } },
  { name: 'prefix-tuning', method: 'prefix-tuning', config: { numVirtualTokens: 3 } },
  {
    name: 'prefix-tuning (projection)',
    method: 'prefix-tuning',
    config: { numVirtualTokens: 3, prefixProjection: true, encoderHiddenSize: 12 },
  },
  {
    name: 'p-tuning (MLP)',
    method: 'p-tuning',
    config: { numVirtualTokens: 3, encoderReparameterizationType: 'MLP', encoderHiddenSize: 12 },
  },
  {
    name: 'p-tuning (LSTM)',
    method: 'p-tuning',
    config: { numVirtualTokens: 3, encoderReparameterizationType: 'LSTM', encoderHiddenSize: 12 },
  },
  { name: 'p-tuning-v2', method: 'p-tuning-v2', config: { numVirtualTokens: 3 } },
  { name: 'full', method: 'full', config: {} },
];

const CASES = VARIANTS.flatMap((v) =>
  METHOD_INFO.find((m) => m.cliName === v.method)!.taskTypes.map((taskType) => ({ ...v, taskType })),
);
const LM_CASES = VARIANTS.filter((v) =>
  METHOD_INFO.find((m) => m.cliName === v.method)!.taskTypes.includes('CAUSAL_LM'),
);

/** The methods' defaults never tokenize (no TEXT init, no verbalizer). */
const NO_TOKENIZER: TextTokenizer = {
  vocabSize: 0,
  eosTokenId: null,
  encode: () => [1],
  decode: () => '',
  idToToken: () => undefined,
};

function taskInfo(taskType: TaskType): TaskInfo {
  return {
    id: 'ledger-test',
    title: 'ledger test',
    description: 'random tokens',
    taskType,
    metrics: taskType === 'CAUSAL_LM' ? ['perplexity'] : ['accuracy'],
    labels: Array.from({ length: NUM_LABELS }, (_, i) => `class${i}`),
    dataDir: '',
    format: 'text',
    files: { train: '', validation: '', test: '' },
  };
}

/** Examples of exactly seqLen tokens, so every padded batch is [batch, seqLen]. */
function clsSet(task: 'SEQ_CLS' | 'TOKEN_CLS', seqLen: number, rng: Rng): EncodedSet {
  const examples = Array.from({ length: 8 }, () => ({
    ids: Array.from({ length: seqLen }, () => rng.int(CONFIG.vocabSize)),
    label:
      task === 'SEQ_CLS' ? rng.int(NUM_LABELS) : Array.from({ length: seqLen }, () => rng.int(NUM_LABELS)),
  }));
  return { task, examples, padId: 0 };
}

/** Trains two steps and returns the ledger predicted before and measured on the second step. */
async function ledgers(
  method: string,
  overrides: Record<string, unknown>,
  taskType: TaskType,
  batchSize = BATCH,
  seqLen = SEQ_LEN,
  config = CONFIG,
): Promise<{
  predicted: MemoryLedger;
  measured: MemoryLedger;
  profile: string;
  phases: { forward: number; backward: number; optimizer: number };
}> {
  const model = Gpt2Model.random(config, 3);
  const info = taskInfo(taskType);
  const run = { steps: 10, seqLen, seed: 1 };
  const plan = planAdapter(model, method, overrides, info, run, 'ledger-test');
  const adapter = createAdapter(model, NO_TOKENIZER, plan.method, plan.config, info, 1);
  const rng = new Rng(7);
  const source =
    taskType === 'CAUSAL_LM'
      ? Int32Array.from({ length: 500 }, () => rng.int(config.vocabSize))
      : clsBatchSource(clsSet(taskType, seqLen, rng));
  const trainer = new Trainer(model, adapter, source, {
    steps: 10,
    lr: 1e-3,
    batchSize,
    seqLen,
    seed: 1,
  });
  try {
    const predicted = predictLedger(config, adapter, plan.method.kind, {
      batchSize,
      seqLen,
      taskType,
    });
    await trainer.trainStep();
    const bytesBefore = tf.memory().numBytes;
    const prof = await tf.profile(async () => {
      await trainer.trainStep();
    });
    const measured = measureLedger(model, adapter, trainer, plan.method.kind, {
      peakBytes: prof.peakBytes,
      bytesBefore,
    });
    return {
      predicted,
      measured,
      profile: ledgerProfile(adapter),
      phases: activationPhases(config, adapter, { batchSize, seqLen, taskType }),
    };
  } finally {
    trainer.dispose();
    adapter.dispose();
    model.dispose();
  }
}

/**
 * Predicted over measured, allowed within [1 - tolerance, 1 + tolerance], the 10%, for
 * every method: the counts are exact for the large terms, and fit.py's worst case over its 5400
 * random shapes is 7.7% (LoKr); here every case is within 2.3% but PiSSA's (4%: the lora counts,
 * fitted on plain LoRA, see its rank-2r adapter as rank r).
 */
const ACT_TOLERANCE = 0.1;
const TOTAL_TOLERANCE = 0.1;

describe('memory ledger on wasm', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });
  afterAll(() => {
    tf.disposeVariables();
  });

  it('covers every method of the registry', () => {
    for (const m of METHOD_INFO) expect(VARIANTS.map((v) => v.method)).toContain(m.cliName);
  });

  /** The exact rows, and activations and total within the tolerances. */
  function expectClose(predicted: MemoryLedger, measured: MemoryLedger, profile: string): void {
    // The counts in use are fitted ones, not an empty table.
    expect(Object.keys(ACTIVATION_COUNTS[profile as keyof typeof ACTIVATION_COUNTS]).length).toBeGreaterThan(
      10,
    );
    expect(Object.keys(FORWARD_COUNTS[profile as keyof typeof FORWARD_COUNTS]).length).toBeGreaterThan(10);
    // Parameters, gradients and optimizer state are sizes of live variables: exact.
    expect(predicted.parameters).toBe(measured.parameters);
    expect(predicted.gradients).toBe(measured.gradients);
    expect(predicted.optimizer).toBe(measured.optimizer);
    expect(measured.activations).toBeGreaterThan(0);
    expect(Math.abs(predicted.activations / measured.activations - 1)).toBeLessThanOrEqual(ACT_TOLERANCE);
    expect(Math.abs(predicted.total / measured.total - 1)).toBeLessThanOrEqual(TOTAL_TOLERANCE);
  }

  it.each(CASES)('$name, $taskType: prediction within 10% of tfjs', async ({ method, config, taskType }) => {
    const { predicted, measured, profile } = await ledgers(method, config, taskType);
    expectClose(predicted, measured, profile);
  });

  it.each(LM_CASES)(
    '$name, CAUSAL_LM with a vocabulary of 2000: prediction within 10% of tfjs',
    async ({ method, config }) => {
      const { predicted, measured, profile } = await ledgers(
        method,
        config,
        'CAUSAL_LM',
        LM_BATCH,
        LM_SEQ_LEN,
        LM_CONFIG,
      );
      expectClose(predicted, measured, profile);
    },
  );

  it('a LoRA causal LM whose logits outweigh its layers peaks at the cross-entropy, not the backward end, and the ledger says so', async () => {
    // On wasm the cross-entropy's tail is our kernels' (kernels/wasm/cross-entropy.ts): its
    // forward holds 7 logit-sized tensors (the logits, the softmax and its saved copy, ...), while
    // its gradient is one kernel's output, and the frozen tied head's backward multiplies by wte
    // itself (no [V, C] transpose): the backward's end holds fewer than the forward's. With one
    // narrow layer and 48 tokens the logits decide the peak: the forward's prediction within 2%,
    // and the backward's below it (it was above while the gradient took OneHot, Sub and Mul).
    const { predicted, measured, phases } = await ledgers(
      'lora',
      { r: 4 },
      'CAUSAL_LM',
      4,
      12,
      NARROW_LM_CONFIG,
    );
    expect(phases.forward).toBeGreaterThan(phases.backward);
    expect(predicted.activations).toBe(phases.forward);
    expect(Math.abs(predicted.activations / measured.activations - 1)).toBeLessThanOrEqual(0.02);
    expect(phases.backward / measured.activations).toBeLessThan(0.98);
  });

  it('full fine-tuning of one short sequence no longer peaks in AdamW on wasm, and the ledger says so', async () => {
    // One 2-token example: the activations are small next to the embedding table [130, 20]. The
    // stock AdamW update held 14 tensors of its size, which made the peak; our SIMD kernel
    // (kernels/wasm/adamw.ts) holds one (the new value), so the backward's end peaks again.
    const { predicted, measured, phases } = await ledgers('full', {}, 'TOKEN_CLS', 1, 2);
    expect(phases.optimizer).toBeLessThan(phases.backward);
    expect(measured.activations).toBeLessThan(14 * 130 * 20 * 4);
    expect(Math.abs(predicted.activations / measured.activations - 1)).toBeLessThanOrEqual(ACT_TOLERANCE);
  });
});
