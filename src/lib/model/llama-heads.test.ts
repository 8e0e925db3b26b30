/**
 * SEQ_CLS and TOKEN_CLS heads on the Llama family against transformers' LlamaForSequenceClassification
 * and LlamaForTokenClassification on tiny-llama (scripts/reference/make_tiny_llama_heads.py): the
 * heads headFor builds, given transformers' head weights, give its logits on a right-padded batch.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import type { ClsBatch } from '../data/cls-data';
import { parseSafetensorsHeader, readTensorAsFloat32 } from '../io/safetensors';
import { methodByCliName } from '../peft/registry';
import { headFor } from '../peft/task-head';
import { clsLogits } from '../train/classification';
import { ClsHead } from './heads';
import { tinyLlama } from './testing';

const DIR = join(import.meta.dirname, 'fixtures/tiny-llama-heads');

interface Expected {
  input_ids: number[][];
  attention_mask: number[][];
  seq_cls_logits: number[][];
  token_cls_logits: number[][][];
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe("the Llama family's classification heads, against transformers", () => {
  const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as Expected;
  const bytes = new Uint8Array(readFileSync(join(DIR, 'heads.safetensors')));
  const tensors = new Map(
    parseSafetensorsHeader(bytes, 'heads.safetensors').tensors.map((t) => [
      t.name,
      { shape: t.shape, data: readTensorAsFloat32(bytes, t) },
    ]),
  );
  const B = expected.input_ids.length;
  const T = expected.input_ids[0]!.length;
  const batch = (task: ClsBatch['task']): ClsBatch => ({
    task,
    ids: Int32Array.from(expected.input_ids.flat()),
    mask: Float32Array.from(expected.attention_mask.flat()),
    labels: new Int32Array(task === 'SEQ_CLS' ? B : B * T),
    batch: B,
    seqLen: T,
  });
  /** HF's nn.Linear weight [out, in] into the head's [in, out]. */
  const load = (head: ClsHead, prefix: string): void => {
    const w = tensors.get(`${prefix}.score.weight`)!;
    head.weightT.assign(tf.tidy(() => tf.transpose(tf.tensor2d(w.data, w.shape as [number, number]))));
    const b = tensors.get(`${prefix}.score.bias`);
    if (b) head.bias!.assign(tf.tensor1d(b.data));
  };

  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('SEQ_CLS: score without bias, pooled at the last real token, gives LlamaForSequenceClassification logits', () => {
    const model = tinyLlama();
    const lora = methodByCliName('lora');
    const head = headFor(model, lora.defaults('SEQ_CLS'), 'SEQ_CLS', 3, 1) as ClsHead;
    expect(head).toBeInstanceOf(ClsHead);
    expect([...head.params().keys()]).toEqual(['score.weight']);
    load(head, 'seq_cls');
    const logits = tf.tidy(() => clsLogits(model, null, head, batch('SEQ_CLS'), false, 0));
    expect(logits.shape).toEqual([B, 3]);
    expect(maxAbsDiff(logits.dataSync(), expected.seq_cls_logits.flat())).toBeLessThan(1e-4);
    logits.dispose();
    head.dispose();
    model.dispose();
  });

  it("TOKEN_CLS: a head named score with bias (not GPT-2's classifier) gives LlamaForTokenClassification logits", () => {
    const model = tinyLlama();
    const lora = methodByCliName('lora');
    const head = headFor(model, lora.defaults('TOKEN_CLS'), 'TOKEN_CLS', 4, 1) as ClsHead;
    expect([...head.params().keys()].sort()).toEqual(['score.bias', 'score.weight']);
    load(head, 'token_cls');
    const logits = tf.tidy(() => clsLogits(model, null, head, batch('TOKEN_CLS'), false, 0));
    expect(logits.shape).toEqual([B, T, 4]);
    const got = logits.arraySync() as number[][][];
    // Real tokens only: a padded position's logits are not used (its label is ignored).
    let worst = 0;
    expected.attention_mask.forEach((row, b) =>
      row.forEach((m, t) => {
        if (m) worst = Math.max(worst, maxAbsDiff(got[b]![t]!, expected.token_cls_logits[b]![t]!));
      }),
    );
    expect(worst).toBeLessThan(1e-4);
    logits.dispose();
    head.dispose();
    model.dispose();
  });
});
