/**
 * weightsF16 on the Llama family (model/llama.ts halfKeys and linear()): the seven linear-layer
 * matrices of every layer held as f16 halves on WebGPU, read by frozenLinear and by LoRA's fused
 * kernel; the embedding, the norms, Qwen2's q/k/v biases and the LM head stay f32. On the tiny
 * checkpoint transformers wrote (tiny-llama: no biases, untied head): the bytes of those matrices
 * halved, logits within the stated tolerance of f32 and equal to the stock f32 ops on cpu with the
 * same rounded weights up to summation order. LoRA steps through the engine, against f32, are in
 * engine/lab-engine-weights-f16.test.ts. Node on Dawn + SwiftShader (skips with the reason where
 * there is no adapter; fails in CI). One fixture, forward only: SwiftShader compiles every new
 * pipeline, and that is most of the time here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import { SettingsError } from '../errors';
import { roundToHalves } from '../kernels/webgpu/halves';
import { webgpuForTests } from '../kernels/webgpu/testing';
import type { DecoderModel } from '../model/decoder';
import { lmLogits } from '../model/heads';
import { tinyLlama } from '../model/testing';

/** Token ids below vocab_size 300, spread over the vocabulary. */
const IDS = Array.from({ length: 2 * 16 }, (_, i) => (i * 393 + ((i * 3) >> 2) * 17) % 300);
const LINEAR = /^layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/;

/** The fixture with its linear-layer matrices rounded to f16 in place, still f32 (the reference). */
async function roundedModel(name: 'tiny-llama'): Promise<DecoderModel> {
  const model = tinyLlama(name);
  for (const [n, v] of model.weights) {
    if (LINEAR.test(n)) v.assign(tf.tensor(roundToHalves((await v.data()) as Float32Array), v.shape));
  }
  return model;
}

async function logits(model: DecoderModel): Promise<Float32Array> {
  const out = tf.tidy(() =>
    lmLogits(model, model.forward({ ids: tf.tensor2d(IDS, [2, 16], 'int32') }).hidden),
  );
  const v = (await out.data()) as Float32Array;
  out.dispose();
  return v;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const gpu = await webgpuForTests();

describe.skipIf(!gpu)('weightsF16 on the Llama family (WebGPU)', () => {
  const report: string[] = [];
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });
  afterAll(() => console.log(report.join('\n')));

  it('tiny-llama: halves the linear layers, the rest stays f32, logits within the stated tolerance of f32 and equal to stock ops on the rounded weights', async () => {
    const name = 'tiny-llama';
    await tf.setBackend('cpu');
    const refModel = await roundedModel(name);
    const stockRounded = await logits(refModel);
    refModel.dispose();

    await tf.setBackend('webgpu');
    const model = tinyLlama(name);
    const f32 = await logits(model);
    const linear = [...model.weights].filter(([n]) => LINEAR.test(n));
    expect(linear).toHaveLength(7 * model.config.nLayer);
    const linearBytes = linear.reduce((s, [, v]) => s + v.size * 4, 0);
    const kept = [...model.weights.keys()].filter((n) => !LINEAR.test(n));
    model.invalidateCaches(); // the cached lm_head^T the forward made is no part of the weights
    const before = tf.memory().numBytes;
    const freed = await model.packWeightsF16();
    const after = tf.memory().numBytes;
    expect(freed).toBe(linearBytes / 2);
    expect(before - after).toBe(linearBytes / 2);
    // The embedding, the norms and the (untied) head stay f32 variables.
    expect([...model.weights.keys()].sort()).toEqual(kept.sort());
    expect(model.weightsF16).toBe(true);
    const f16 = await logits(model);

    const cost = maxAbsDiff(f16, f32);
    const arith = maxAbsDiff(f16, stockRounded);
    let peak = 0;
    for (const v of f32) peak = Math.max(peak, Math.abs(v));
    report.push(
      `${name}: GPU bytes of the weights ${before} -> ${after} (linear layers ${linearBytes} -> ${linearBytes / 2}); ` +
        `logits max |f16 - f32| ${cost.toExponential(3)} (max |logit| ${peak.toFixed(2)}), ` +
        `max |ours f16 - stock cpu on rounded weights| ${arith.toExponential(3)}`,
    );
    // Each weight moves by at most 2^-11 of itself. Measured 1.03e-2 on logits up to 5.82, 1.8e-3
    // of the largest (SwiftShader, 2026-12-05); the bound is 5e-3 of the largest logit.
    expect(cost).toBeLessThan(5e-3 * peak);
    expect(cost).toBeGreaterThan(0); // the rounding is real
    // The arithmetic: our kernels on halves against stock f32 ops on cpu differ only in summation
    // order (measured 8.3e-6).
    expect(arith).toBeLessThan(1e-4);

    // A reader of a packed matrix's f32 is told what to do; unpacking gives f32 back.
    expect(() => model.w('layers.0.mlp.up_proj.weight')).toThrow(SettingsError);
    model.unpackWeightsF16();
    model.invalidateCaches();
    expect(tf.memory().numBytes).toBe(before);
    expect(maxAbsDiff(await logits(model), f16)).toBeLessThan(1e-5);
    model.dispose();
  });
});
