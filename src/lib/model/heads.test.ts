/**
 * Classification heads on the tiny checkpoint, checked against plain-JS computations:
 * SEQ_CLS pools the last non-padding token, extra right padding changes nothing, TOKEN_CLS's loss
 * ignores -100 labels.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import { loadGpt2 } from './load';
import type { Gpt2Model } from './gpt2';
import { ClsHead, VerbalizerHead, lastTokenIndex, lmLogits, seqClsLogits, verbalizerTokenIds } from './heads';
import type { EncodedSet } from '../data/cls-data';
import { padBatch } from '../data/cls-data';
import { clsBatchLoss, clsLogits } from '../train/classification';

const FIX = join(import.meta.dirname, 'fixtures/tiny-gpt2');
const tiny = (): Gpt2Model =>
  loadGpt2({
    config: JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(FIX, 'model.safetensors'))),
  });

const PAD = 96; // the tiny model's eos

const seqSet = (rows: number[][]): EncodedSet => ({
  task: 'SEQ_CLS',
  padId: PAD,
  examples: rows.map((ids, i) => ({ ids, label: i % 3 })),
});

describe('classification heads', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('lastTokenIndex finds the last 1 of each mask row (0 for an empty row, as HF argmax does)', () => {
    expect(Array.from(lastTokenIndex([1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0], 3, 4))).toEqual([1, 3, 0]);
  });

  it('initialises as HF: score [L, C] without bias, classifier with a zero bias, N(0, 0.02)', async () => {
    const s = new ClsHead('SEQ_CLS', 64, 50, 1);
    const c = new ClsHead('TOKEN_CLS', 64, 5, 2);
    expect([...s.params().keys()]).toEqual(['score.weight']);
    expect([...c.params().keys()]).toEqual(['classifier.weight', 'classifier.bias']);
    const w = (await s.weightT.data()) as Float32Array;
    const mean = w.reduce((a, b) => a + b, 0) / w.length;
    const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
    expect(Math.abs(mean)).toBeLessThan(0.003);
    expect(std).toBeGreaterThan(0.018);
    expect(std).toBeLessThan(0.022);
    expect(Array.from(await c.bias!.data())).toEqual([0, 0, 0, 0, 0]);
    s.dispose();
    c.dispose();
  });

  it('SEQ_CLS pools the logits of the last non-padding token (checked in plain JS)', async () => {
    const model = tiny();
    const head = new ClsHead('SEQ_CLS', 16, 3, 5);
    const set = seqSet([
      [5, 9, 13, 2, 40],
      [7, 7, 1],
      [30, 31, 32, 33, 34, 35, 36, 37],
    ]);
    const b = padBatch(set, [0, 1, 2]);
    expect(b.seqLen).toBe(8);
    expect(Array.from(b.ids.subarray(8, 16))).toEqual([7, 7, 1, PAD, PAD, PAD, PAD, PAD]);
    const got = tf.tidy(() => clsLogits(model, null, head, b, false, 0));
    const hidden = tf.tidy(
      () =>
        model.forward({
          ids: tf.tensor2d(b.ids, [3, 8], 'int32'),
          attentionMask: tf.tensor2d(b.mask, [3, 8]),
        }).hidden,
    );
    const h = (await hidden.data()) as Float32Array;
    const w = (await head.weightT.data()) as Float32Array; // [C, L]
    const lens = [5, 3, 8];
    const ref: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t = lens[r]! - 1;
      for (let l = 0; l < 3; l++) {
        let acc = 0;
        for (let c = 0; c < 16; c++) acc += h[(r * 8 + t) * 16 + c]! * w[c * 3 + l]!;
        ref.push(acc);
      }
    }
    expect(got.shape).toEqual([3, 3]);
    const g = Array.from(await got.data());
    g.forEach((x, i) => expect(x).toBeCloseTo(ref[i]!, 5));
    tf.dispose([got, hidden]);
    head.dispose();
    model.dispose();
  });

  it('extra right padding does not change a row`s pooled logits', async () => {
    const model = tiny();
    const head = new ClsHead('SEQ_CLS', 16, 4, 6);
    const row = [3, 14, 15, 92, 65];
    const alone = padBatch(seqSet([row]), [0]); // T = 5, no padding
    const padded = padBatch(seqSet([row, Array.from({ length: 20 }, (_, i) => i + 1)]), [0, 1]); // T = 20
    const a = tf.tidy(() => clsLogits(model, null, head, alone, false, 0));
    const p = tf.tidy(() => tf.slice(clsLogits(model, null, head, padded, false, 0), [0, 0], [1, -1]));
    const av = Array.from(await a.data());
    const pv = Array.from(await p.data());
    av.forEach((x, i) => expect(Math.abs(x - pv[i]!)).toBeLessThan(1e-5));
    // Pooling the padded batch's final (pad) position instead would differ: the mask matters.
    const wrong = tf.tidy(() => {
      const hidden = model.forward({
        ids: tf.tensor2d(padded.ids, [2, 20], 'int32'),
        attentionMask: tf.tensor2d(padded.mask, [2, 20]),
      }).hidden;
      return tf.slice(seqClsLogits(head, hidden, Int32Array.from([19, 19])), [0, 0], [1, -1]);
    });
    const wv = Array.from(await wrong.data());
    expect(Math.max(...wv.map((x, i) => Math.abs(x - av[i]!)))).toBeGreaterThan(1e-4);
    tf.dispose([a, p, wrong]);
    head.dispose();
    model.dispose();
  });

  it('TOKEN_CLS loss ignores -100 labels (padding and later sub-tokens)', async () => {
    const model = tiny();
    const head = new ClsHead('TOKEN_CLS', 16, 5, 7);
    const set: EncodedSet = {
      task: 'TOKEN_CLS',
      padId: PAD,
      examples: [
        { ids: [4, 8, 15, 16], label: [1, -100, 3, 0] },
        { ids: [23, 42], label: [4, -100] },
      ],
    };
    const b = padBatch(set, [0, 1]);
    expect(Array.from(b.labels)).toEqual([1, -100, 3, 0, 4, -100, -100, -100]);
    const logits = tf.tidy(() => clsLogits(model, null, head, b, false, 0));
    const lg = (await logits.data()) as Float32Array;
    let sum = 0;
    let n = 0;
    b.labels.forEach((y, i) => {
      if (y < 0) return;
      const row = Array.from(lg.subarray(i * 5, i * 5 + 5));
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
      sum += lse - row[y]!;
      n++;
    });
    const loss = tf.tidy(() => clsBatchLoss(model, null, head, b, false, 0));
    expect((await loss.data())[0]).toBeCloseTo(sum / n, 5);
    // Different tokens under the padding (mask 0, label -100) change nothing.
    const other = { ...b, ids: Int32Array.from(b.ids, (id, i) => (b.mask[i] ? id : (i * 13) % 90)) };
    const loss2 = tf.tidy(() => clsBatchLoss(model, null, head, other, false, 0));
    expect((await loss2.data())[0]).toBeCloseTo(sum / n, 5);
    tf.dispose([logits, loss, loss2]);
    head.dispose();
    model.dispose();
  });

  it("a verbalizer's logits are the LM head's logits of its label tokens; shared first tokens are refused", async () => {
    const model = tiny();
    const ids = [7, 30, 2];
    const head = new VerbalizerHead('SEQ_CLS', model, ids);
    expect(head.params().size).toBe(0);
    const hidden = tf.randomNormal([2, 3, 16], 0, 1, 'float32', 3) as tf.Tensor3D;
    const got = (await head.logits(hidden).array()) as number[][][];
    const lm = (await lmLogits(model, hidden).array()) as number[][][];
    lm.forEach((row, b) =>
      row.forEach((pos, t) => ids.forEach((id, l) => expect(got[b]![t]![l]).toBeCloseTo(pos[id]!, 5))),
    );
    expect(() => verbalizerTokenIds((w) => [w.length], ['ham', 'spa'])).toThrow(
      /"ham" and "spa" start with the same token/,
    );
    expect(verbalizerTokenIds((w) => [w.charCodeAt(1), 0], ['ham', 'spam'])).toEqual([104, 115]);
    tf.dispose(hidden);
    head.dispose();
    model.dispose();
  });
});
