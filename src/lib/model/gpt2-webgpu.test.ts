/**
 * gpt2.ts's fused attention path (WebGPU, our kernels on, causal without past) against the stock
 * path on cpu: the hidden states and the presents, which that path cuts from c_attn's packed qkv
 * only when read (generation reads them; training does not).
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadGpt2 } from './load';
import { ATT_PACKED_LSE, ATT_PAST_LSE } from '../kernels/webgpu/attention';
import { setFusedKernels } from '../kernels/webgpu/active';
import { countDispatches } from '../kernels/webgpu/dispatch-counter';
import type { Gpt2Model, LayerKV } from './gpt2';
import { maxRelError, onBackend, randomValues, webgpuForTests, weightedSum } from '../kernels/webgpu/testing';

const gpu = await webgpuForTests();
const FIX = join(import.meta.dirname, 'fixtures/tiny-gpt2');

describe.skipIf(!gpu)('Gpt2Model.forward on webgpu with the fused attention kernel', () => {
  it('matches cpu: hidden states and the presents [B, H, T, D]', async () => {
    const run = () => {
      const model = loadGpt2({
        config: JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')),
        weights: new Uint8Array(readFileSync(join(FIX, 'model.safetensors'))),
      });
      const ids = tf.tensor2d(
        Array.from({ length: 16 }, (_, i) => (i * 5 + 3) % 50),
        [2, 8],
        'int32',
      );
      const r = model.forward({ ids, returnPresents: true });
      const out = [r.hidden, ...r.presents!.flatMap((p) => [p.k, p.v])];
      // Keep the outputs past the model's disposal: copies the tidy then tracks.
      const kept = out.map((t) => t.clone());
      model.dispose();
      return kept;
    };
    const want = await onBackend('cpu', run);
    const got = await onBackend('webgpu', run);
    expect(got.length).toBe(want.length);
    want.forEach((w, i) => expect(maxRelError(got[i]!, w), `output ${i}`).toBeLessThan(1e-4));
  });

  it('with a padding mask: hidden states and their input-embedding gradient match cpu, attention fused', async () => {
    const [B, T, C] = [3, 6, 16];
    // A full row, a row with one real token, a left-padded row with a hole (its first queries see
    // only padded keys; its real ones see padded keys among real ones).
    const maskRows = [
      [1, 1, 1, 1, 1, 1],
      [1, 0, 0, 0, 0, 0],
      [0, 0, 1, 1, 0, 1],
    ];
    const run = (masked: boolean) => () => {
      const model = loadGpt2({
        config: JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')),
        weights: new Uint8Array(readFileSync(join(FIX, 'model.safetensors'))),
      });
      const x = tf.mul(tf.tensor3d(randomValues(B * T * C, 71), [B, T, C]), 0.5) as tf.Tensor3D;
      const attentionMask = masked ? tf.tensor2d(maskRows.flat(), [B, T]) : undefined;
      const f = (e: tf.Tensor3D) => model.forward({ inputsEmbeds: e, attentionMask }).hidden;
      const kept = [f(x), tf.grad((e) => weightedSum(f(e as tf.Tensor3D), 5))(x)].map((t) => t.clone());
      model.dispose();
      return kept;
    };
    const want = await onBackend('cpu', run(true));
    const spy = vi.spyOn(tf.engine(), 'runKernel');
    const got = await onBackend('webgpu', run(true));
    const fused = spy.mock.calls.filter(([name, inputs]) => name === ATT_PACKED_LSE && 'keyMask' in inputs);
    spy.mockRestore();
    expect(fused.length).toBeGreaterThan(0);
    expect(maxRelError(got[0]!, want[0]!), 'hidden').toBeLessThan(1e-4);
    expect(maxRelError(got[1]!, want[1]!), 'd hidden / d inputsEmbeds').toBeLessThan(1e-4);
    // The mask changes both here, so a kernel that ignored it would fail the comparison.
    const unmasked = await onBackend('cpu', run(false));
    expect(maxRelError(unmasked[0]!, want[0]!)).toBeGreaterThan(1e-2);
    expect(maxRelError(unmasked[1]!, want[1]!)).toBeGreaterThan(1e-2);
  });
});

describe.skipIf(!gpu)(
  'Gpt2Model.forward on webgpu with past keys (prefix tuning): the fused past kernel',
  () => {
    // The tiny model: 2 layers, 4 heads of 4; 3 virtual tokens before 6 real ones, rows padded apart.
    const [B, P, T, C, H, D] = [3, 3, 6, 16, 4, 4];
    const maskRows = [
      [1, 1, 1, 1, 1, 1],
      [1, 1, 0, 0, 0, 0],
      [0, 1, 1, 1, 0, 1],
    ];
    const load = (): Gpt2Model =>
      loadGpt2({
        config: JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')),
        weights: new Uint8Array(readFileSync(join(FIX, 'model.safetensors'))),
      });
    const inputs = () => {
      const x = tf.mul(tf.tensor3d(randomValues(B * T * C, 91), [B, T, C]), 0.5) as tf.Tensor3D;
      const pasts = [92, 93, 94, 95].map(
        (s) => tf.mul(tf.tensor4d(randomValues(B * H * P * D, s), [B, H, P, D]), 0.5) as tf.Tensor4D,
      );
      const attentionMask = tf.tensor2d(
        maskRows.flatMap((r) => [1, 1, 1, ...r]),
        [B, P + T],
      );
      return { x, pasts, attentionMask };
    };
    const past = (t: tf.Tensor[]): LayerKV[] => [
      { k: t[0] as tf.Tensor4D, v: t[1] as tf.Tensor4D },
      { k: t[2] as tf.Tensor4D, v: t[3] as tf.Tensor4D },
    ];
    afterEach(() => setFusedKernels(true));

    it('hidden states, presents and the gradients of the embeddings and of every past key and value match cpu', async () => {
      const run = () => {
        const model = load();
        const { x, pasts, attentionMask } = inputs();
        const f = (e: tf.Tensor, ...p: tf.Tensor[]) =>
          model.forward({ inputsEmbeds: e as tf.Tensor3D, past: past(p), attentionMask }).hidden;
        const r = model.forward({ inputsEmbeds: x, past: past(pasts), attentionMask, returnPresents: true });
        const g = tf.grads((e, k0, v0, k1, v1) => weightedSum(f(e, k0, v0, k1, v1), 5))([x, ...pasts]);
        const kept = [r.hidden, r.presents![1]!.k, r.presents![1]!.v, ...g].map((t) => t.clone());
        model.dispose();
        return kept;
      };
      const want = await onBackend('cpu', run);
      const spy = vi.spyOn(tf.engine(), 'runKernel');
      const got = await onBackend('webgpu', run);
      const fused = spy.mock.calls.filter(([name, i]) => name === ATT_PAST_LSE && 'keyMask' in i).length;
      spy.mockRestore();
      expect(fused).toBeGreaterThan(0);
      const names = ['hidden', 'present k', 'present v', 'd embeds', 'd k0', 'd v0', 'd k1', 'd v1'];
      names.forEach((n, i) => expect(maxRelError(got[i]!, want[i]!), n).toBeLessThan(1e-4));
    });

    it('a forward and backward takes fewer dispatches than stock attention after the past', async () => {
      await tf.setBackend('webgpu');
      const model = load();
      const { x, pasts, attentionMask } = inputs();
      // pastAttention false: the context without pastKeyMask, so every layer's attention after the
      // past is the stock composition (what ran before this kernel), all else as fused.
      const step = (pastAttention: boolean) => () =>
        tf.grads((e, k0, v0, k1, v1) => {
          const {
            x: h0,
            mask,
            ctx,
          } = model.prelude({ inputsEmbeds: e as tf.Tensor3D, past: past([k0, v0, k1, v1]), attentionMask });
          if (!pastAttention) ctx.pastKeyMask = undefined;
          let h = h0;
          past([k0, v0, k1, v1]).forEach((p, i) => (h = model.block(i, h, mask, p, ctx).x));
          return weightedSum(model.finalNorm(h), 5);
        })([x, ...pasts]);
      const ours = await countDispatches(step(true));
      const before = await countDispatches(step(false));
      setFusedKernels(false);
      const stock = await countDispatches(step(false));
      tf.dispose([ours.result, before.result, stock.result, x, attentionMask, ...pasts]);
      model.dispose();
      const [o, b, s] = [ours, before, stock].map((r) => r.counts.dispatches);
      console.log(
        `tiny GPT-2 (2 layers) prefix forward+backward dispatches: stock ${s}, ours before the past kernel ${b}, ours ${o}`,
      );
      expect(o).toBeLessThan(b!);
      expect(b).toBeLessThan(s!);
    });
  },
);
