/**
 * One table-driven test runs every registry entry (and the variants that change its structure:
 * init modes, encoders, projections, task heads) through: init, training steps, loss falls, the
 * frozen base unchanged bit for bit, trainable count = formula, save in PEFT's format, load into a
 * fresh model, identical outputs, no leaked tensors (ARCHITECTURE.md, habit 6).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import type { Gpt2Model } from '../model/gpt2';
import { lmLogits } from '../model/heads';
import type { ClsTask } from '../model/heads';
import type { EncodedSet } from '../data/cls-data';
import { padBatch } from '../data/cls-data';
import { adapterDecorator } from './forward';
import { METHODS, methodByCliName } from './registry';
import { METHOD_INFO, configForRun } from './catalog';
import type { Adapter, PeftConfigBase } from './types';
import type { TaskType } from '../data/tasks/registry';
import { Trainer } from '../train/trainer';
import type { BatchSource } from '../train/trainer';
import { clsBatchSource, clsLogits } from '../train/classification';
import { loadAdapter, saveAdapter } from '../io/peft-format';
import { countTrainable } from './state';
import { headFor, withHeadConfig } from './task-head';
import { tinyGpt2 } from '../model/testing';

/** A learnable stream: a repeating 11-token pattern. */
const STREAM = Int32Array.from({ length: 600 }, (_, i) => (i * 7) % 11);

/** SEQ_CLS: does the row hold token 5? TOKEN_CLS: each token's id mod 3. 32 rows of 6-9 tokens. */
function clsSet(task: ClsTask): EncodedSet {
  const examples = Array.from({ length: 32 }, (_, i) => {
    const ids = Array.from({ length: 6 + (i % 4) }, (_, t) => (i * 13 + t * 7) % 40);
    return { ids, label: task === 'SEQ_CLS' ? (ids.includes(5) ? 1 : 0) : ids.map((x) => x % 3) };
  });
  return { task, examples, padId: 96 };
}

interface Case {
  name: string;
  method: string;
  task: TaskType;
  config?: Record<string, unknown>;
  /**
   * Loss over the last 5 steps must fall below this fraction of the first 5's (default 0.9: a
   * random 2-layer, 16-wide model gives prompts and scales little to work with in 40 steps).
   */
  drop?: number;
}

/** Variants that change a method's structure (init modes, encoders, projections, heads). */
const VARIANTS: Case[] = [
  { name: 'LoRA', method: 'lora', task: 'CAUSAL_LM', drop: 0.8 },
  { name: 'DoRA (LoRA, useDora)', method: 'lora', task: 'CAUSAL_LM', config: { useDora: true }, drop: 0.8 },
  {
    name: 'PiSSA (LoRA, initLoraWeights "pissa")',
    method: 'lora',
    task: 'CAUSAL_LM',
    config: { initLoraWeights: 'pissa', targetModules: ['c_attn', 'mlp.c_fc'] },
    drop: 0.8,
  },
  {
    name: 'OLoRA, dropout, TOKEN_CLS head',
    method: 'lora',
    task: 'TOKEN_CLS',
    config: { initLoraWeights: 'olora', loraDropout: 0.1 },
  },
  {
    name: 'DoRA, dropout, SEQ_CLS head',
    method: 'lora',
    task: 'SEQ_CLS',
    config: { useDora: true, loraDropout: 0.1 },
  },
  // A budget that moves: 6 ranks per matrix fall to 2 between steps 5 and 25.
  {
    name: 'AdaLoRA',
    method: 'adalora',
    task: 'CAUSAL_LM',
    config: { initR: 6, targetR: 2, tinit: 5, tfinal: 5 },
  },
  { name: 'AdaLoRA, TOKEN_CLS head', method: 'adalora', task: 'TOKEN_CLS', config: { initR: 4, targetR: 2 } },
  { name: 'IA3', method: 'ia3', task: 'CAUSAL_LM' },
  {
    name: 'prompt tuning, TEXT',
    method: 'prompt-tuning',
    task: 'CAUSAL_LM',
    config: { numVirtualTokens: 5, promptTuningInit: 'TEXT', promptTuningInitText: 'ab' },
    // Real token embeddings start it lower than RANDOM's N(0, 1) vectors, so it has less to gain.
    drop: 0.93,
  },
  {
    name: 'prompt tuning, SAMPLE_VOCAB, TOKEN_CLS head',
    method: 'prompt-tuning',
    task: 'TOKEN_CLS',
    config: { numVirtualTokens: 4, promptTuningInit: 'SAMPLE_VOCAB' },
  },
  {
    name: 'prefix tuning, projection',
    method: 'prefix-tuning',
    task: 'CAUSAL_LM',
    config: { numVirtualTokens: 4, prefixProjection: true, encoderHiddenSize: 24 },
  },
  {
    name: 'P-tuning, LSTM, SEQ_CLS head',
    method: 'p-tuning',
    task: 'SEQ_CLS',
    config: {
      numVirtualTokens: 4,
      encoderReparameterizationType: 'LSTM',
      encoderHiddenSize: 8,
      encoderDropout: 0.1,
    },
  },
  {
    name: 'P-tuning v2, SEQ_CLS, verbalizer',
    method: 'p-tuning-v2',
    task: 'SEQ_CLS',
    config: { numVirtualTokens: 4, verbalizer: true },
  },
  {
    name: 'P-tuning v2, TOKEN_CLS, projection',
    method: 'p-tuning-v2',
    task: 'TOKEN_CLS',
    config: { numVirtualTokens: 4, prefixProjection: true },
  },
  {
    name: 'LoKr, both factors split, LyCORIS init, rank and module dropout',
    method: 'lokr',
    task: 'CAUSAL_LM',
    config: { r: 2, decomposeBoth: true, initWeights: 'lycoris', rankDropout: 0.1, moduleDropout: 0.1 },
  },
  {
    name: 'OFT, exact Cayley, one shared block, COFT',
    method: 'oft',
    task: 'CAUSAL_LM',
    config: {
      oftBlockSize: 8,
      useCayleyNeumann: false,
      blockShare: true,
      coft: true,
      eps: 1,
      targetModules: ['c_attn', 'mlp.c_fc', 'mlp.c_proj'],
    },
  },
  {
    name: 'BOFT, two butterfly factors, block dropout',
    method: 'boft',
    task: 'CAUSAL_LM',
    config: {
      boftBlockSize: 4,
      boftNButterflyFactor: 2,
      boftDropout: 0.25,
      targetModules: ['c_attn', 'mlp.c_fc'],
    },
  },
  { name: 'full fine-tuning', method: 'full', task: 'CAUSAL_LM', drop: 0.8 },
];

/** Short prompts so virtual tokens + 12 text tokens fit the tiny model's 32 positions. */
const SMALL: Record<string, Record<string, unknown>> = {
  'prompt-tuning': { numVirtualTokens: 4 },
  'prefix-tuning': { numVirtualTokens: 4 },
  'p-tuning': { numVirtualTokens: 4 },
  'p-tuning-v2': { numVirtualTokens: 4 },
  vera: { r: 8 },
  loha: { r: 4 },
  lokr: { r: 4 },
  // One block over the whole width of c_attn and mlp.c_fc: a rotation has few parameters to move.
  oft: { oftBlockSize: 16, targetModules: ['c_attn', 'mlp.c_fc'] },
  boft: { boftBlockSize: 8, targetModules: ['c_attn', 'mlp.c_fc'] },
};

/** Every method on every task type it supports (unless a variant above already runs that pair), then the variants. */
const CASES: Case[] = [
  ...METHOD_INFO.flatMap((m) =>
    m.taskTypes
      .filter((t) => !VARIANTS.some((v) => v.method === m.cliName && v.task === t && v.config === undefined))
      .map((task): Case => ({
        name: `${m.label}, ${task}`,
        method: m.cliName,
        task,
        config: SMALL[m.cliName],
      })),
  ),
  ...VARIANTS,
];

const STEPS = 40;
/** Rates for the tiny random model (our small pretrained ones use the catalog's). */
const LR: Record<string, number> = {
  lora: 2e-2,
  adalora: 3e-2,
  ia3: 5e-2,
  'ln-tuning': 5e-2,
  vera: 5e-2,
  loha: 2e-2,
  lokr: 2e-2,
  // A rotation of the input, bounded in what it can change: it needs larger steps.
  oft: 5e-2,
  boft: 5e-2,
  'prompt-tuning': 1e-1,
  'prefix-tuning': 5e-2,
  'p-tuning': 1e-2,
  'p-tuning-v2': 5e-2,
  full: 3e-3,
};

/** A char-per-token stand-in for the tokenizer (TEXT init, verbalizer words); spaces are dropped. */
const tokenize = (text: string): number[] => Array.from(text.trim(), (c) => c.charCodeAt(0) % 90);
/** Class names, also the verbalizer's label words (distinct first letters). */
const LABELS = { SEQ_CLS: ['no', 'yes'], TOKEN_CLS: ['a', 'b', 'c'] } as const;

function outputsOf(model: Gpt2Model, adapter: Adapter, task: TaskType, set: EncodedSet | null): Float32Array {
  return tf.tidy(() => {
    if (task === 'CAUSAL_LM') {
      const ids = tf.tensor2d([[1, 8, 4, 0, 7, 3]], undefined, 'int32');
      const r = model.forward(adapterDecorator(model, adapter)({ ids }, true));
      return lmLogits(model, r.hidden).dataSync() as Float32Array;
    }
    return clsLogits(
      model,
      adapter,
      adapter.head!,
      padBatch(set!, [0, 1, 2, 3]),
      false,
      0,
    ).dataSync() as Float32Array;
  });
}

function snapshot(model: Gpt2Model): Map<string, Float32Array> {
  return new Map([...model.weights].map(([k, v]) => [k, v.dataSync() as Float32Array]));
}

describe('every method: train, save, load, no leaks', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('covers every registry entry on every task type it supports', () => {
    for (const info of METHOD_INFO) {
      expect(Object.keys(METHODS)).toContain(info.cliName);
      for (const t of info.taskTypes) {
        expect(
          CASES.some((c) => c.method === info.cliName && c.task === t),
          `${info.cliName} ${t}`,
        ).toBe(true);
      }
    }
  });

  it("agrees with each method's description: names, capabilities, a size knob that grows the count", () => {
    const model = tinyGpt2();
    for (const info of METHOD_INFO) {
      const method = methodByCliName(info.cliName);
      expect([method.peftType, method.kind, method.label]).toEqual([info.peftType, info.kind, info.label]);
      const config = configForRun(method.defaults(info.taskTypes[0]!), 10);
      const adapter = method.create(model, config, 0);
      expect(typeof adapter.rankBudget === 'function', `${info.cliName} rankBudget`).toBe(
        info.capabilities.rankHistory === true,
      );
      if (info.capabilities.nearestTokens) expect(adapter.kind).toBe('prompt');
      adapter.dispose();
      const knob = info.sizeKnob(config);
      if (knob) {
        const at = (v: number): number => method.countParams(model, { ...config, [knob.field]: v });
        expect(at(2), `${info.cliName} ${knob.field}`).toBeGreaterThan(at(1));
      }
    }
    model.dispose();
  });

  it.each(CASES)('$name', async (c) => {
    const method = methodByCliName(c.method);
    const model = tinyGpt2();
    const base = snapshot(model);
    // The model's cached wte^T is model-owned, not a leak: drop it around each count.
    model.invalidateCaches();
    const tensorsBefore = tf.memory().numTensors;
    const config = {
      ...method.defaults(c.task),
      ...(c.method === 'adalora' ? { totalStep: STEPS } : {}),
      ...c.config,
    } as PeftConfigBase;
    method.validate(config as never, model);
    const set = c.task === 'CAUSAL_LM' ? null : clsSet(c.task);
    const cfg = c.task === 'CAUSAL_LM' ? config : withHeadConfig(config, LABELS[c.task], tokenize);
    const adapter = method.create(model, cfg as never, 42, { tokenize });
    let headParams = 0;
    if (c.task !== 'CAUSAL_LM') {
      const head = headFor(model, cfg, c.task, LABELS[c.task].length, 43);
      adapter.attachHead!(head);
      for (const p of head.params().values()) headParams += p.variable.size;
    }
    // Trainable count matches the formula (the head's parameters are counted apart).
    expect(countTrainable(adapter)).toBe(method.countParams(model, cfg as never) + headParams);

    const source: Int32Array | BatchSource = set ? clsBatchSource(set) : STREAM;
    const trainer = new Trainer(model, adapter, source, {
      steps: STEPS,
      lr: LR[c.method]!,
      batchSize: 8,
      seqLen: 12,
      seed: 7,
      warmupSteps: 3,
    });
    const losses: number[] = [];
    let afterFirst = 0;
    for (let i = 0; i < STEPS; i++) {
      losses.push((await trainer.trainStep()).loss);
      if (i === 0) afterFirst = tf.memory().numTensors;
    }
    // No tensor is leaked by a training step: optimizer and allocator state appear on the first
    // (AdaLoRA frees its importance scores once the pattern is fixed, so the count may fall).
    expect(tf.memory().numTensors).toBeLessThanOrEqual(afterFirst);
    const head = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const tail = losses.slice(-5).reduce((a, b) => a + b) / 5;
    expect(tail, losses.map((l) => l.toFixed(3)).join(' ')).toBeLessThan(head * (c.drop ?? 0.9));

    const trained = outputsOf(model, adapter, c.task, set);
    const files = await saveAdapter(adapter, 'tiny-gpt2');
    trainer.dispose();
    adapter.dispose();

    // The frozen base is unchanged bit for bit, and everything the adapter made is freed.
    for (const [k, v] of snapshot(model)) expect(v, k).toEqual(base.get(k));
    model.invalidateCaches();
    expect(tf.memory().numTensors).toBe(tensorsBefore);

    // A fresh model + the saved files give identical outputs. AdaLoRA saves only the ranks its budget kept, so
    // the loaded adapter multiplies narrower matrices than the trained one; where the wasm gemm fuses multiply-add
    // (relaxed SIMD) the two shapes can take different product routes and round differently in the last bit.
    const fresh = tinyGpt2();
    const loaded = loadAdapter(fresh, files, 'saved');
    const again = Array.from(outputsOf(fresh, loaded, c.task, set));
    if (c.method === 'adalora') {
      const gap = Math.max(...again.map((x, i) => Math.abs(x - trained[i]!)));
      expect(gap).toBeLessThan(1e-5);
    } else expect(again).toEqual(Array.from(trained));
    loaded.dispose();
    fresh.dispose();
    model.dispose();
  });
});
