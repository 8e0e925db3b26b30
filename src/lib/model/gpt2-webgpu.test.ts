/**
 * gpt2.ts's fused attention path (WebGPU, our kernels on, causal without past) against the stock
 * path on cpu: the hidden states and the presents, which that path cuts from c_attn's packed qkv
 * only when read (generation reads them; training does not).
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { loadGpt2 } from './load';
import { ATT_PACKED_LSE } from '../kernels/webgpu/attention';
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
