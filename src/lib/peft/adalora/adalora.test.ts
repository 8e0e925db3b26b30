/**
 * AdaLoRA against its formulas (Zhang et al. 2023; PEFT's RankAllocator): the cubic budget
 * schedule, the smoothed importance and triplet scores, the masking to budget, the orthogonal
 * regulariser, merge = forward, and PEFT's saved shapes once the ranks are cut.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../backend/node';
import { lmLogits } from '../../model/heads';
import { Trainer } from '../../train/trainer';
import { saveAdapter } from '../../io/peft-format';
import { readAdapterWeights } from '../../io/peft-format';
import { adalora } from '.';
import { AdaLoraAdapter } from './adalora';
import { RankAllocator, budgetSchedule } from './rank-allocator';
import type { AdaLoraConfig } from './config';
import { tinyGpt2 } from '../../model/testing';

const config = (over: Partial<AdaLoraConfig> = {}): AdaLoraConfig => ({
  ...adalora.defaults('CAUSAL_LM'),
  initR: 4,
  targetR: 2,
  tinit: 2,
  tfinal: 3,
  totalStep: 20,
  ...over,
});

describe('AdaLoRA', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('budget schedule: full budget until tinit, cubic fall, target budget after totalStep - tfinal', () => {
    const c = { tinit: 5, tfinal: 5, deltaT: 2, totalStep: 30 };
    expect(budgetSchedule(c, 24, 8, 5)).toEqual({ budget: 24, maskInd: false });
    // mul = 1 - (15 - 5) / (30 - 5 - 5) = 0.5: int(16 * 0.125 + 8) = 10; step 15 is not a multiple of deltaT.
    expect(budgetSchedule(c, 24, 8, 15)).toEqual({ budget: 10, maskInd: false });
    expect(budgetSchedule(c, 24, 8, 16)).toEqual({ budget: Math.trunc(16 * 0.45 ** 3 + 8), maskInd: true });
    expect(budgetSchedule(c, 24, 8, 26)).toEqual({ budget: 8, maskInd: true });
  });

  it('importance, triplet scores and masking follow the formulas', async () => {
    const a = tf.variable(
      tf.tensor2d([
        [0.5, -1, 2],
        [1, 0.25, -0.5],
      ]),
    ); // P^T [in 2, r 3]
    const e = tf.variable(tf.tensor1d([0.3, -0.2, 0.1]));
    const b = tf.variable(
      tf.tensor2d([
        [1, 2],
        [-1, 0.5],
        [0.2, 0.2],
      ]),
    ); // Q^T [r 3, out 2]
    const grads = [
      [
        tf.tensor2d([
          [1, 1, 1],
          [2, 0, -1],
        ]),
        tf.tensor1d([1, -2, 0.5]),
        tf.tensor2d([
          [0.1, 0.2],
          [0.3, 0.4],
          [1, -1],
        ]),
      ],
      [
        tf.tensor2d([
          [-1, 2, 0],
          [0, 1, 1],
        ]),
        tf.tensor1d([0.5, 1, -1]),
        tf.tensor2d([
          [1, 0],
          [0, 1],
          [0.5, 0.5],
        ]),
      ],
    ];
    const c = { ...config({ beta1: 0.8, beta2: 0.6 }), totalStep: 20 };
    const al = new RankAllocator(c, [{ name: 'm.lora_E', a, e, b }]);
    // Independent: I = |w g|, Ī ← β1 Ī + (1-β1) I, Ū ← β2 Ū + (1-β2) |I - Ī| (new Ī), s = Ī Ū.
    const vals = [await a.array(), await e.array(), await b.array()].map((v) => [v].flat(2) as number[]);
    const ipt = vals.map((v) => v.map(() => 0));
    const unc = vals.map((v) => v.map(() => 0));
    for (const g of grads) {
      al.updateIpt(
        new Map<tf.Variable, tf.Tensor>([
          [a, g[0]!],
          [e, g[1]!],
          [b, g[2]!],
        ]),
      );
      const gs = await Promise.all(g.map(async (t) => [await t.array()].flat(2) as number[]));
      vals.forEach((v, p) =>
        v.forEach((w, i) => {
          const cur = Math.abs(w * gs[p]![i]!);
          ipt[p]![i] = 0.8 * ipt[p]![i]! + 0.2 * cur;
          unc[p]![i] = 0.6 * unc[p]![i]! + 0.4 * Math.abs(cur - ipt[p]![i]!);
        }),
      );
    }
    const s = ipt.map((v, p) => v.map((x, i) => x * unc[p]![i]!));
    // Triplet i: s(Λ_i) + mean over P's row i (a column of P^T) + mean over Q's column i (a row of Q^T).
    const want = [0, 1, 2].map(
      (i) => s[1]![i]! + (s[0]![i]! + s[0]![3 + i]!) / 2 + (s[2]![2 * i]! + s[2]![2 * i + 1]!) / 2,
    );
    const [got] = await al.tripletScores();
    want.forEach((w, i) => expect(got![i]).toBeCloseTo(w, 6));
    // A budget of 2 of 3 cuts the lowest triplet: its Λ becomes zero, the others stay.
    const pattern = await al.maskToBudget(2);
    const lowest = want.indexOf(Math.min(...want));
    expect(pattern['m.lora_E']).toEqual([0, 1, 2].map((i) => i !== lowest));
    const eNow = (await e.data()) as Float32Array;
    expect(eNow[lowest]).toBe(0);
    expect(Array.from(eNow).filter((x) => x !== 0)).toHaveLength(2);
    al.dispose();
    tf.dispose([a, e, b, ...grads.flat()]);
  });

  it('the orthogonal regulariser is the mean of ||P P^T - I||_F and ||Q^T Q - I||_F, times its weight', async () => {
    const model = tinyGpt2();
    const adapter = new AdaLoraAdapter(model, config({ orthRegWeight: 0.7 }), 3);
    const t = adapter.trainable();
    let sum = 0;
    let count = 0;
    for (const [k, v] of t) {
      if (!k.endsWith('lora_A') && !k.endsWith('lora_B')) continue;
      const m = (await v.array()) as number[][];
      // P^T is [in, r]: P P^T = (P^T)^T P^T; Q^T is [r, out]: Q^T Q = Q^T (Q^T)^T.
      const rows = k.endsWith('lora_A') ? m[0]!.map((_, j) => m.map((row) => row[j]!)) : m;
      let fro = 0;
      rows.forEach((ri, i) =>
        rows.forEach(
          (rj, j) => (fro += (ri.reduce((s, x, q) => s + x * rj[q]!, 0) - (i === j ? 1 : 0)) ** 2),
        ),
      );
      sum += Math.sqrt(fro);
      count++;
    }
    const loss = adapter.extraLoss()!;
    expect((await loss.data())[0]).toBeCloseTo((0.7 * sum) / count, 4);
    loss.dispose();
    adapter.dispose();
    model.dispose();
  });

  it('merge gives the same outputs; after training the saved matrices are cut to the kept ranks', async () => {
    const model = tinyGpt2();
    const adapter = new AdaLoraAdapter(model, config(), 3);
    const stream = Int32Array.from({ length: 400 }, (_, i) => (i * 5) % 13);
    const trainer = new Trainer(model, adapter, stream, {
      steps: 20,
      lr: 3e-2,
      batchSize: 4,
      seqLen: 10,
      seed: 1,
    });
    for (let i = 0; i < 20; i++) await trainer.trainStep();
    trainer.dispose();
    const ids = tf.tensor2d([[1, 2, 3, 4, 5]], undefined, 'int32');
    const out = async (): Promise<Float32Array> => {
      const t = tf.tidy(() => lmLogits(model, model.forward({ ids }).hidden));
      const d = (await t.data()) as Float32Array;
      t.dispose();
      return d;
    };
    const hooked = await out();
    adapter.merge();
    const merged = await out();
    adapter.unmerge();
    hooked.forEach((x, i) => expect(Math.abs(x - merged[i]!)).toBeLessThan(1e-4));

    // 2 layers x initR 4 = 8 ranks fall to targetR 2 x 2 = 4 (ties at the threshold may cut more).
    const ranks = adapter.ranks();
    expect(ranks.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(4);
    expect(adapter.rankHistory.length).toBeGreaterThan(0);
    const files = await saveAdapter(adapter, 'tiny');
    const cfg = JSON.parse(files.config) as { rank_pattern: Record<string, boolean[]>; peft_type: string };
    expect(cfg.peft_type).toBe('ADALORA');
    const w = readAdapterWeights(files.weights, 'saved');
    for (const [i, layer] of [0, 1].entries()) {
      const name = `transformer.h.${layer}.attn.c_attn`;
      const k = cfg.rank_pattern[`${name}.lora_E`]!.filter(Boolean).length;
      expect(k).toBe(ranks[i]);
      expect(w.get(`base_model.model.${name}.lora_A`)!.shape).toEqual([k, 16]);
      expect(w.get(`base_model.model.${name}.lora_E`)!.shape).toEqual([k, 1]);
      expect(w.get(`base_model.model.${name}.lora_B`)!.shape).toEqual([48, k]);
    }
    ids.dispose();
    adapter.dispose();
    model.dispose();
  });
});
