/**
 * gpt2.ts's fused attention path (WebGPU, our kernels on, causal without past) against the stock
 * path on cpu: the hidden states and the presents, which that path cuts from c_attn's packed qkv
 * only when read (generation reads them; training does not).
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadGpt2 } from './load';
import { maxRelError, onBackend, webgpuForTests } from '../kernels/webgpu/testing';

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
});
