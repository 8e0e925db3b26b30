/**
 * Gradient checkpointing and ZeRO-3 paging on the Llama family (tiny checkpoints written by
 * transformers): layer-by-layer gradients equal the one-tape ones for every kind of method (hooks,
 * virtual tokens, prefixes through grouped-query and sliding-window attention), and an offload
 * session (stage 3 with checkpointing) trains LoRA with the losses of the resident model.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import type { DecoderModel } from '../model/decoder';
import { tinyLlama } from '../model/testing';
import { methodByCliName } from '../peft/registry';
import type { Adapter, PeftConfigBase } from '../peft/types';
import { withFamilyDefaults } from '../train/plan';
import { Rng } from '../util/rng';
import { Trainer, lmBatchSource } from '../train/trainer';
import { layerwiseGradients } from './layerwise';
import { MemoryPageStore } from './page-store';
import { OffloadSession } from './session';
import type { OffloadRequest, OffloadSnapshot } from './session';

const ALL_SEVEN = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const STREAM = Int32Array.from({ length: 800 }, (_, i) => (i * 7 + ((i * i) % 13)) % 290);

function build(model: DecoderModel, method: string, extra: Record<string, unknown> = {}): Adapter {
  const m = methodByCliName(method);
  const config = {
    ...withFamilyDefaults(m.defaults('CAUSAL_LM'), model),
    totalStep: 20,
    ...extra,
  } as PeftConfigBase;
  m.validate(config as never, model);
  return m.create(model, config as never, 3, { tokenize: (t) => [...t].map((c) => c.charCodeAt(0) % 90) });
}

describe('layer-by-layer gradients (gradient checkpointing) on the Llama family', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  const CASES: [string, 'tiny-llama' | 'tiny-qwen2' | 'tiny-mistral', string, Record<string, unknown>][] = [
    ['LoRA on all seven projections', 'tiny-llama', 'lora', { loraDropout: 0.1, targetModules: ALL_SEVEN }],
    ['IA3 (q/k/v biases of Qwen2)', 'tiny-qwen2', 'ia3', {}],
    ['prompt tuning', 'tiny-llama', 'prompt-tuning', { numVirtualTokens: 3 }],
    ['prefix tuning (GQA 4/2)', 'tiny-llama', 'prefix-tuning', { numVirtualTokens: 3 }],
    [
      'prefix tuning with projection (sliding window)',
      'tiny-mistral',
      'prefix-tuning',
      {
        numVirtualTokens: 3,
        prefixProjection: true,
        encoderHiddenSize: 8,
      },
    ],
    ['LoRA with a sliding window', 'tiny-mistral', 'lora', {}],
    ['full fine-tuning (tied head)', 'tiny-qwen2', 'full', {}],
  ];

  it.each(CASES)('%s equal the one-tape gradients', async (_name, fixture, method, extra) => {
    const model = tinyLlama(fixture);
    const adapter = build(model, method, extra);
    const vars = [...adapter.trainable().values()];
    const [mb] = lmBatchSource(STREAM, 12).draw(new Rng(9), 3, 1);
    // The one-tape pass first: it builds the model's cached lm_head^T, which stays.
    const ref = tf.variableGrads(() => mb!.loss(model, adapter, true, 11), vars);
    const before = tf.memory().numTensors;
    const got = await layerwiseGradients(model, adapter, mb!, vars, 11, null);
    expect(Object.keys(got.grads).sort()).toEqual(Object.keys(ref.grads).sort());
    expect(Object.keys(got.grads).length).toBeGreaterThan(0);
    expect((await got.value.data())[0]).toBeCloseTo((await ref.value.data())[0]!, 5);
    for (const [k, g] of Object.entries(ref.grads)) {
      const a = await g.data();
      const b = await got.grads[k]!.data();
      const scale = Math.max(1e-6, ...Array.from(a, Math.abs));
      let worst = 0;
      for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j]! - b[j]!) / scale);
      expect(worst, k).toBeLessThan(1e-4);
    }
    tf.dispose([got.value, ...Object.values(got.grads)]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([ref.value, ...Object.values(ref.grads)]);
    adapter.dispose();
    model.dispose();
  });
});

describe('an offload session on the Llama family', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  async function losses(model: DecoderModel, offload: OffloadRequest | null, steps: number) {
    const adapter = build(model, 'lora', { targetModules: ALL_SEVEN });
    const session = offload
      ? await OffloadSession.start(model, adapter, offload, () => Promise.resolve(new MemoryPageStore()))
      : null;
    const trainer = new Trainer(model, adapter, STREAM, {
      steps,
      lr: 2e-2,
      batchSize: 2,
      seqLen: 12,
      seed: 1,
      gradAccumSteps: 2,
      gradients: session?.gradients(),
    });
    session?.attach(trainer);
    const out: number[] = [];
    let snapshot: OffloadSnapshot | null;
    try {
      for (let s = 0; s < steps; s++) out.push((await trainer.trainStep()).loss);
      snapshot = session?.snapshot(steps, trainer) ?? null;
    } finally {
      await session?.end();
      trainer.dispose();
      adapter.dispose();
    }
    return { losses: out, snapshot };
  }

  const layerBytes = (model: DecoderModel, i: number): number =>
    [...model.weights].filter(([k]) => k.startsWith(`layers.${i}.`)).reduce((a, [, v]) => a + 4 * v.size, 0);

  it('stage 3 with checkpointing trains LoRA with the resident losses, one layer resident at a time', async () => {
    const model = tinyLlama('tiny-llama');
    const weights = new Map([...model.weights].map(([k, v]) => [k, v.dataSync().slice()]));
    const one = layerBytes(model, 0);
    const reference = await losses(model, null, 4);
    const checkpointed = await losses(
      model,
      { stage: 0, budgetMB: 0, prefetch: false, policy: 'lru', int8: false, gradientCheckpointing: true },
      4,
    );
    const paged = await losses(
      model,
      {
        stage: 3,
        budgetMB: (1.5 * one) / (1024 * 1024),
        prefetch: true,
        policy: 'trace',
        int8: false,
        gradientCheckpointing: true,
        device: 'memory',
      },
      4,
    );
    for (let i = 0; i < 4; i++) {
      expect(checkpointed.losses[i]).toBeCloseTo(reference.losses[i]!, 5);
      expect(paged.losses[i]).toBeCloseTo(reference.losses[i]!, 5);
    }
    // The pager really paged: it never held more than the budget, and every layer went in and out.
    const snap = paged.snapshot!;
    expect(snap.pager!.peakResidentBytes).toBeLessThanOrEqual(1.5 * one);
    expect(snap.pager!.pageIns).toBeGreaterThanOrEqual(4 * model.config.nLayer);
    expect(snap.layers).toHaveLength(model.config.nLayer);
    expect(snap.optimizer).not.toBeNull();
    expect(snap.gradients).not.toBeNull();
    // ... and end() left the base as it was.
    for (const [k, v] of model.weights) expect(v.dataSync(), k).toEqual(weights.get(k));
    model.dispose();
  });
});
