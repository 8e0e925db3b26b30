/**
 * PiSSA and OLoRA start where PEFT 0.21 starts them (fixtures/peft-0.21/init_reference.json, made
 * by scripts/reference/peft_interop/make_init_reference.py): the same A, B and residual base
 * weight on the tiny GPT-2's layers, the model unchanged at the start, and a saved file that is
 * PEFT's plain-LoRA conversion.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../../backend/node';
import { tinyGpt2 } from '../../model/testing';
import { saveAdapter } from '../../io/peft-format';
import { PeftConfigError } from '../../errors';
import { lora } from '.';
import type { LoraConfig } from './config';
import { weightInit } from './weight-init';

interface Init {
  lora_A: number[];
  lora_B: number[];
  residual: number[];
}
const REF = JSON.parse(
  readFileSync(join(import.meta.dirname, '../fixtures/peft-0.21/init_reference.json'), 'utf8'),
) as {
  r: number;
  lora_alpha: number;
  layers: Record<string, { in: number; out: number; pissa: Init; olora: Init }>;
};

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
};

describe('PiSSA and OLoRA initialisation', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it.each(Object.keys(REF.layers).flatMap((l) => [`${l} pissa`, `${l} olora`]))(
    "%s: A, B and the residual weight are PEFT's",
    (name) => {
      const [layer, mode] = name.split(' ') as [string, 'pissa' | 'olora'];
      const { in: inDim, out: outDim, [mode]: ref } = REF.layers[layer]!;
      const r = REF.r;
      const model = tinyGpt2();
      const w = model.w(`h.0.${layer}.weight`).dataSync() as Float32Array;
      const ours = weightInit(w, inDim, outDim, r, REF.lora_alpha / r, mode);
      model.dispose();
      // PEFT's layouts: lora_A [r, in], lora_B [out, r]; ours A^T [in, r], B^T [r, out].
      const A = Array.from(
        { length: r * inDim },
        (_, k) => ours.aT[(k % inDim) * r + Math.floor(k / inDim)]!,
      );
      const B = Array.from({ length: outDim * r }, (_, k) => ours.bT[(k % r) * outDim + Math.floor(k / r)]!);
      if (mode === 'pissa') {
        // A singular pair's sign is arbitrary (flipping row c of A and column c of B together
        // changes nothing PiSSA trains): align each component to PEFT's before comparing.
        for (let c = 0; c < r; c++) {
          let dot = 0;
          for (let o = 0; o < outDim; o++) dot += B[o * r + c]! * ref.lora_B[o * r + c]!;
          if (dot < 0) {
            for (let o = 0; o < outDim; o++) B[o * r + c] = -B[o * r + c]!;
            for (let i = 0; i < inDim; i++) A[c * inDim + i] = -A[c * inDim + i]!;
          }
        }
      }
      // OLoRA's QR follows LAPACK's sign convention, so no alignment there.
      expect(maxAbs(A, ref.lora_A)).toBeLessThan(1e-4);
      expect(maxAbs(B, ref.lora_B)).toBeLessThan(1e-4);
      expect(maxAbs(ours.residual, ref.residual)).toBeLessThan(1e-5);
      // The start is not zero: the check above compares real factors.
      expect(Math.max(...B.map(Math.abs))).toBeGreaterThan(0.01);
    },
  );

  it.each(['pissa', 'olora', 'pissa_niter_4'])(
    '%s leaves the model unchanged at the start and saves as PEFT converts it',
    async (init) => {
      const model = tinyGpt2();
      const ids = tf.tensor2d([[1, 8, 4, 0, 7, 3]], undefined, 'int32');
      const logits = (): Float32Array =>
        tf.tidy(() => model.forward({ ids }).hidden.dataSync() as Float32Array);
      const plain = logits();
      const c: LoraConfig = {
        ...lora.defaults('CAUSAL_LM'),
        r: 4,
        loraAlpha: 8,
        targetModules: ['c_attn', 'mlp.c_proj'],
        initLoraWeights: init,
      };
      const adapter = lora.create(model, c, 0);
      expect(maxAbs(logits(), plain)).toBeLessThan(1e-5);
      // Trainable: A and B only, r (in + out) per layer as for LoRA.
      expect([...adapter.trainable().values()].reduce((n, v) => n + v.size, 0)).toBe(
        lora.countParams(model, c),
      );
      const files = await saveAdapter(adapter, 'tiny');
      expect(JSON.parse(files.config)).toMatchObject({ r: 8, lora_alpha: 16, init_lora_weights: true });
      const sd = await adapter.stateDict();
      expect(sd.get('base_model.model.transformer.h.0.attn.c_attn.lora_A.weight')!.shape).toEqual([8, 16]);
      expect(sd.get('base_model.model.transformer.h.0.attn.c_attn.lora_B.weight')!.shape).toEqual([48, 8]);
      adapter.dispose();
      ids.dispose();
      model.dispose();
    },
  );

  it('refuses inits it does not model, and PiSSA with DoRA', () => {
    const model = tinyGpt2();
    const c = lora.defaults('CAUSAL_LM');
    expect(() => lora.create(model, { ...c, initLoraWeights: 'loftq' }, 0)).toThrow(PeftConfigError);
    expect(() => lora.create(model, { ...c, initLoraWeights: 'pissa', useDora: true }, 0)).toThrow(
      /not supported yet/,
    );
    const json = lora.toPeftJson(c);
    expect(() => lora.fromPeftJson({ ...json, init_lora_weights: 'corda' }, 'x')).toThrow(/does not model/);
    expect(lora.fromPeftJson({ ...json, init_lora_weights: 'gaussian' }, 'x').initLoraWeights).toBe(true);
    expect(lora.fromPeftJson({ ...json, init_lora_weights: 'olora' }, 'x').initLoraWeights).toBe('olora');
    model.dispose();
  });
});
