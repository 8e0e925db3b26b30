/**
 * Our engine's jobs: forward (model.forward + lmLogits), a LoRA step and a full fine-tuning step,
 * each through the code the app runs (Trainer.trainStep reads the loss back every step). Each job
 * has its own copy of the model, so the LoRA hooks never sit in the forward pass or the full run.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseGpt2Config } from '../../src/lib/model/config';
import { Gpt2Model } from '../../src/lib/model/gpt2';
import { lmLogits } from '../../src/lib/model/heads';
import { loadGpt2 } from '../../src/lib/model/load';
import { full } from '../../src/lib/peft/full/full';
import { lora } from '../../src/lib/peft/lora/index';
import type { Adapter } from '../../src/lib/peft/types';
import { Trainer } from '../../src/lib/train/trainer';
import type { Job } from './measure';

/** The bundled model's shape; the random stand-in has it when the folder is absent. */
export const STAND_IN_CONFIG = {
  vocab_size: 2048,
  n_positions: 256,
  n_embd: 96,
  n_layer: 3,
  n_head: 4,
};

export interface ModelChoice {
  /** A fresh copy of the model on every call. */
  make(): Gpt2Model;
  label: string;
  source: 'folder' | 'random';
  dir: string | null;
}

/**
 * The folder's model when it holds config.json and model.safetensors; otherwise, only when the
 * folder was not asked for explicitly, a random model of the bundled shape.
 */
export function chooseModel(dir: string, explicit: boolean): ModelChoice {
  const cfg = join(dir, 'config.json');
  const weights = join(dir, 'model.safetensors');
  if (existsSync(cfg) && existsSync(weights)) {
    const config = JSON.parse(readFileSync(cfg, 'utf8')) as unknown;
    const bytes = new Uint8Array(readFileSync(weights));
    return {
      make: () => loadGpt2({ config, weights: bytes, source: dir }),
      label: `pretrained weights from ${dir}`,
      source: 'folder',
      dir,
    };
  }
  if (explicit) throw new Error(`--model ${dir}: no config.json + model.safetensors there`);
  const config = parseGpt2Config(STAND_IN_CONFIG);
  return {
    make: () => Gpt2Model.random(config, 0),
    label: `random init of the bundled shape (${dir} not found)`,
    source: 'random',
    dir: null,
  };
}

export interface BenchShape {
  batch: number;
  seq: number;
}

function trainJob(
  what: string,
  make: () => Gpt2Model,
  attach: (m: Gpt2Model) => Adapter,
  tokens: Int32Array,
  s: BenchShape,
  steps: number,
): Job {
  const model = make();
  const adapter = attach(model);
  const trainer = new Trainer(model, adapter, tokens, {
    steps,
    lr: 1e-3,
    batchSize: s.batch,
    seqLen: s.seq,
    seed: 0,
  });
  return {
    engine: 'PEFT Lab',
    what,
    tokensPerRun: s.batch * s.seq,
    // Awaited whether trainStep is synchronous or async (it reads the loss back either way).
    run: async () => void (await trainer.trainStep()),
    trainedParams: () => [...adapter.trainable().values()].reduce((n, v) => n + v.size, 0),
    dispose: () => {
      trainer.dispose();
      adapter.dispose();
      model.dispose();
    },
  };
}

/** `steps` is the trainer's total (warm-up + timed), which sets its learning-rate schedule. */
export function ourJobs(choice: ModelChoice, tokens: Int32Array, s: BenchShape, steps: number): Job[] {
  const fwdModel = choice.make();
  const ids = tf.tensor2d(tokens.subarray(0, s.batch * s.seq), [s.batch, s.seq], 'int32');
  const forward: Job = {
    engine: 'PEFT Lab',
    what: 'forward + LM logits',
    tokensPerRun: s.batch * s.seq,
    run: () => {
      const logits = tf.tidy(() => lmLogits(fwdModel, fwdModel.forward({ ids, training: false }).hidden));
      logits.dataSync();
      logits.dispose();
    },
    trainedParams: () => null,
    dispose: () => {
      ids.dispose();
      fwdModel.dispose();
    },
  };
  return [
    forward,
    trainJob(
      'LoRA step (r 8, c_attn)',
      choice.make,
      (m) => lora.create(m, lora.defaults('CAUSAL_LM'), 0),
      tokens,
      s,
      steps,
    ),
    trainJob(
      'full fine-tune step',
      choice.make,
      (m) => full.create(m, full.defaults('CAUSAL_LM'), 0),
      tokens,
      s,
      steps,
    ),
  ];
}
