/**
 * Faults injected into training: a batch whose loss is NaN, gradients that are infinite while the
 * loss is finite, weights that turned NaN, an absurd learning rate. The step is skipped with the
 * weights and AdamW state untouched, the rate halves, repeated failures throw NonFiniteLossError,
 * and nothing non-finite is ever saved (adapter files or checkpoints).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import { Gpt2Model } from '../model/gpt2';
import { parseGpt2Config } from '../model/config';
import { lora } from '../peft/lora';
import { saveAdapter } from '../io/peft-format';
import { NonFiniteLossError, NonFiniteWeightsError } from '../errors';
import { lmBatchSource, MAX_LR_HALVINGS, MAX_NONFINITE_STREAK, Trainer } from './trainer';
import type { BatchSource, TrainerOptions } from './trainer';
import { loadCheckpoint, saveCheckpoint } from './checkpoint';

const CFG = parseGpt2Config({ vocab_size: 40, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2 });
const STREAM = Int32Array.from({ length: 500 }, (_, i) => (i * 7 + (i >> 3)) % 40);
const OPTS: TrainerOptions = { steps: 20, lr: 1e-2, batchSize: 2, seqLen: 8, seed: 3, warmupSteps: 0 };

type Fault = 'nan-loss' | 'inf-grad' | null;

/**
 * The next-token source with a fault injected into the draws listed in `faults` (0-based draw
 * index): 'nan-loss' multiplies the batch's loss by NaN (so the loss and every gradient are NaN),
 * 'inf-grad' adds 0 * sum(sqrt(w - w)) over a trainable variable: the value stays the finite loss,
 * but the gradient of sqrt at 0 is infinite and 0 * Inf makes it NaN.
 */
function faultySource(faults: Map<number, Fault>): BatchSource {
  const inner = lmBatchSource(STREAM, OPTS.seqLen);
  let draw = 0;
  return {
    draw(rng, B, accum) {
      const fault = faults.get(draw++) ?? null;
      return inner.draw(rng, B, accum).map((mb) => ({
        ...mb,
        loss: (model, adapter, training, seed) => {
          const loss = mb.loss(model, adapter, training, seed);
          if (fault === 'nan-loss') return tf.mul(loss, NaN);
          if (fault === 'inf-grad') {
            const w = [...adapter!.trainable().values()][0]!;
            return tf.add(loss, tf.mul(0, tf.sum(tf.sqrt(tf.sub(w, w)))));
          }
          return loss;
        },
      }));
    },
  };
}

function build(faults: Map<number, Fault>, opts: Partial<TrainerOptions> = {}) {
  const model = Gpt2Model.random(CFG, 1);
  const adapter = lora.create(model, lora.defaults('CAUSAL_LM'), 2);
  const trainer = new Trainer(model, adapter, faultySource(faults), { ...OPTS, ...opts });
  return {
    model,
    adapter,
    trainer,
    dispose() {
      trainer.dispose();
      adapter.dispose();
      model.dispose();
    },
  };
}

async function snapshot(t: Trainer): Promise<{ weights: number[][]; adam: unknown }> {
  const weights = [...t.adapter.trainable().values()].map((v) => Array.from(v.dataSync()));
  const st = await t.optimizer.state();
  return { weights, adam: { t: st.t, m: [...st.m.values()].map((d) => Array.from(d)) } };
}

describe('non-finite loss or gradients', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it.each(['nan-loss', 'inf-grad'] as const)(
    'a %s step is skipped: weights, AdamW state and step untouched, the rate halved',
    async (fault) => {
      const r = build(new Map([[1, fault]]));
      const first = await r.trainer.trainStep();
      expect(first.skipped).toBeUndefined();
      const before = await snapshot(r.trainer);
      const lrBefore = r.trainer.lrAt(1);
      const tensors = tf.memory().numTensors;
      const st = await r.trainer.trainStep();
      expect(st.skipped).toBe(true);
      if (fault === 'nan-loss') expect(st.loss).toBeNaN();
      else {
        expect(Number.isFinite(st.loss)).toBe(true);
        expect(Number.isFinite(st.gradNorm)).toBe(false);
      }
      expect(st.step).toBe(1);
      expect(r.trainer.step).toBe(1);
      expect(r.trainer.skippedSteps).toBe(1);
      expect(st.lr).toBeCloseTo(lrBefore / 2, 12);
      expect(await snapshot(r.trainer)).toEqual(before);
      // The skipped step's gradients and readback were all freed.
      expect(tf.memory().numTensors).toBe(tensors);
      // The next (clean) step trains at the lowered rate.
      const next = await r.trainer.trainStep();
      expect(next.skipped).toBeUndefined();
      expect(next.step).toBe(2);
      expect(next.lr).toBeCloseTo(lrBefore / 2, 12);
      expect(await snapshot(r.trainer)).not.toEqual(before);
      r.dispose();
    },
  );

  it(`throws NonFiniteLossError after ${MAX_NONFINITE_STREAK} non-finite steps in a row, with the last good weights`, async () => {
    const r = build(new Map([1, 2, 3, 4].map((i) => [i, 'nan-loss'] as const)));
    await r.trainer.trainStep();
    const good = await snapshot(r.trainer);
    for (let i = 1; i < MAX_NONFINITE_STREAK; i++) expect((await r.trainer.trainStep()).skipped).toBe(true);
    const err = await r.trainer.trainStep().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteLossError);
    expect((err as Error).message).toMatch(
      /the loss was NaN at step 2, 3 steps in a row.*lower the learning rate/,
    );
    expect(await snapshot(r.trainer)).toEqual(good);
    // After a pause the run may try again: the streak starts over, the lowered rate stays.
    r.trainer.clearNonFiniteStreak();
    expect((await r.trainer.trainStep()).skipped).toBe(true);
    expect((await r.trainer.trainStep()).skipped).toBeUndefined();
    expect(r.trainer.lrScale).toBe(1 / 2 ** MAX_NONFINITE_STREAK);
    r.dispose();
  });

  it(`halves the rate at most ${MAX_LR_HALVINGS} times over a run, then throws`, async () => {
    // Every other step is bad: the streak never builds, the halvings run out.
    const bad = Array.from({ length: MAX_LR_HALVINGS + 1 }, (_, i) => [2 * i + 1, 'inf-grad'] as const);
    const r = build(new Map(bad));
    for (let i = 0; i < MAX_LR_HALVINGS; i++) {
      expect((await r.trainer.trainStep()).skipped).toBeUndefined();
      expect((await r.trainer.trainStep()).skipped).toBe(true);
    }
    expect(r.trainer.lrScale).toBe(1 / 2 ** MAX_LR_HALVINGS);
    await r.trainer.trainStep();
    await expect(r.trainer.trainStep()).rejects.toThrow(/already halved 4 times/);
    r.dispose();
  });

  it('a huge learning rate ends in NonFiniteLossError, and no weight it leaves is NaN', async () => {
    const r = build(new Map(), { lr: 1e30 });
    let err: unknown = null;
    for (let i = 0; i < 10 && err === null; i++) {
      try {
        await r.trainer.trainStep();
      } catch (e) {
        err = e;
      }
    }
    expect(err).toBeInstanceOf(NonFiniteLossError);
    for (const v of r.adapter.trainable().values())
      expect(Array.from(v.dataSync()).every((x) => !Number.isNaN(x))).toBe(true);
    r.dispose();
  });

  it('saving an adapter or a checkpoint with a NaN is refused with NonFiniteWeightsError', async () => {
    const r = build(new Map());
    await r.trainer.trainStep();
    const goodCkpt = await saveCheckpoint(r.trainer);
    const [name, v] = [...r.adapter.trainable()][0]!;
    const poisoned = v.dataSync().slice();
    poisoned[3] = NaN;
    v.assign(tf.tensor(poisoned, v.shape));
    await expect(saveAdapter(r.adapter, 'tiny')).rejects.toThrow(NonFiniteWeightsError);
    await expect(saveAdapter(r.adapter, 'tiny')).rejects.toThrow(/lora_A.weight holds NaN at element \d+/);
    const err = await saveCheckpoint(r.trainer).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteWeightsError);
    expect((err as Error).message).toContain(`param/${name} holds NaN at element 3`);
    // The earlier checkpoint still restores the good weights, which save again.
    loadCheckpoint(r.trainer, goodCkpt);
    expect(Array.from(v.dataSync()).every(Number.isFinite)).toBe(true);
    await expect(saveAdapter(r.adapter, 'tiny')).resolves.toBeDefined();
    r.dispose();
  });

  it('a checkpoint keeps the lowered rate, so a resumed run does not jump back to the full one', async () => {
    const r = build(new Map([[1, 'nan-loss']]));
    await r.trainer.trainStep();
    await r.trainer.trainStep();
    await r.trainer.trainStep();
    const ckpt = await saveCheckpoint(r.trainer);
    const s = build(new Map());
    loadCheckpoint(s.trainer, ckpt);
    expect(s.trainer.lrScale).toBe(0.5);
    expect(s.trainer.skippedSteps).toBe(1);
    expect(s.trainer.lrAt(2)).toBe(r.trainer.lrAt(2));
    r.dispose();
    s.dispose();
  });
});
