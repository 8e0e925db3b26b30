/**
 * llama.ts's fused attention path on WebGPU (our grouped-query kernel: no past, causal or causal
 * but for padded keys, and no sliding window hiding keys within the call) against the stock path on
 * cpu: hidden states and their gradient for the input embeddings, with a padding mask.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it, vi } from 'vitest';
import { ATT_GQA_LSE } from '../kernels/webgpu/attention';
import { maxRelError, onBackend, randomValues, webgpuForTests, weightedSum } from '../kernels/webgpu/testing';
import { tinyLlama } from './testing';

const gpu = await webgpuForTests();

/** A full row, a row with one real token, a left-padded row with a hole, then full rows. */
function maskRows(B: number, T: number): number[] {
  const rows = [
    Array.from({ length: T }, () => 1),
    Array.from({ length: T }, (_, j) => (j < 1 ? 1 : 0)),
    Array.from({ length: T }, (_, j) => (j < 2 || j === T - 2 ? 0 : 1)),
  ];
  return Array.from({ length: B }, (_, b) => rows[b] ?? rows[0]!).flat();
}

/** Hidden states and d(weighted sum)/d inputsEmbeds of a fixture, and how often our kernel ran. */
async function compare(
  name: 'tiny-llama' | 'tiny-mistral',
  B: number,
  T: number,
  masked: boolean,
  grad: boolean,
): Promise<{ err: number[]; fused: number; maskEffect: number }> {
  const run = (withMask: boolean) => () => {
    const model = tinyLlama(name);
    const C = model.config.nEmbd;
    const x = tf.mul(tf.tensor3d(randomValues(B * T * C, 73), [B, T, C]), 0.5) as tf.Tensor3D;
    const attentionMask = withMask ? tf.tensor2d(maskRows(B, T), [B, T]) : undefined;
    const f = (e: tf.Tensor3D) => model.forward({ inputsEmbeds: e, attentionMask }).hidden;
    const outs: tf.Tensor[] = [f(x)];
    if (grad) outs.push(tf.grad((e) => weightedSum(f(e as tf.Tensor3D), 5))(x));
    const kept = outs.map((t) => t.clone());
    model.dispose();
    return kept;
  };
  const want = await onBackend('cpu', run(masked));
  const spy = vi.spyOn(tf.engine(), 'runKernel');
  const got = await onBackend('webgpu', run(masked));
  const fused = spy.mock.calls.filter(
    ([kernel, inputs]) => kernel === ATT_GQA_LSE && masked === 'keyMask' in inputs,
  ).length;
  spy.mockRestore();
  const other = masked ? await onBackend('cpu', run(false)) : want;
  return {
    err: got.map((g, i) => maxRelError(g, want[i]!)),
    fused,
    maskEffect: maxRelError(other[0]!, want[0]!),
  };
}

describe.skipIf(!gpu)('LlamaModel.forward on webgpu with the grouped-query attention kernel', () => {
  it('tiny-llama (4 heads, 2 key/value heads), padded: hidden states and gradient match cpu', async () => {
    const r = await compare('tiny-llama', 3, 6, true, true);
    expect(r.fused).toBe(4); // both layers of both forwards (the value, the gradient's), with the key mask
    expect(r.err[0], 'hidden').toBeLessThan(1e-4);
    expect(r.err[1], 'd hidden / d inputsEmbeds').toBeLessThan(1e-4);
    // The mask changes the hidden states here, so a kernel that ignored it would fail above.
    expect(r.maskEffect).toBeGreaterThan(1e-2);
  });

  it('tiny-mistral (window 6, 1 key/value head): fused within the window, stock past it', async () => {
    const inside = await compare('tiny-mistral', 2, 6, false, false);
    expect(inside.fused).toBe(2);
    expect(inside.err[0]).toBeLessThan(1e-4);
    // 8 positions: the window hides keys, which our kernel cannot, so the stock mask runs.
    const past = await compare('tiny-mistral', 2, 8, true, false);
    expect(past.fused).toBe(0);
    expect(past.err[0]).toBeLessThan(1e-4);
  });
});
