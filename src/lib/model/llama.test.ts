import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import { GQA_FORWARD } from '../kernels/wasm/attention';
import { setWasmKernels } from '../kernels/wasm/heap';
import { ModelConfigError, WeightsMismatchError } from '../errors';
import { parseModelConfig } from './family';
import { generate } from './generate';
import { lmLogits } from './heads';
import { LlamaModel, ropeAttentionScaling, ropeInverseFrequencies } from './llama';
import { parseLlamaConfig } from './llama-config';
import { loadModel } from './load';
import { generationWindow } from './family';
import {
  TINY_LLAMA_FIXTURES,
  TINY_ROPE_FIXTURES,
  readFixtureFolder,
  tinyExpected,
  tinyLlama,
} from './testing';

function maxAbsDiff(a: Float32Array | number[], b: number[]): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('Llama-family checkpoints written by transformers', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it.each(TINY_LLAMA_FIXTURES)('%s: logits match transformers within 1e-4', (name) => {
    const before = tf.memory().numTensors;
    const model = tinyLlama(name);
    const expected = tinyExpected(name);
    expect(model).toBeInstanceOf(LlamaModel);
    const logits = tf.tidy(() =>
      lmLogits(model, model.forward({ ids: tf.tensor2d(expected.input_ids, undefined, 'int32') }).hidden),
    );
    const diff = maxAbsDiff(logits.dataSync() as Float32Array, expected.logits.flat(2));
    logits.dispose();
    model.dispose();
    // Nothing left behind, the cached lm_head^T included.
    expect(tf.memory().numTensors).toBe(before);
    expect(diff).toBeLessThan(1e-4);
  });

  it.each(TINY_LLAMA_FIXTURES)(
    '%s: greedy tokens with the KV cache equal model.generate(do_sample=False)',
    async (name) => {
      const before = tf.memory().numTensors;
      const model = tinyLlama(name);
      const expected = tinyExpected(name);
      const out = await generate(model, expected.prompt, {
        maxNewTokens: expected.greedy.length,
        temperature: 0,
      });
      model.dispose();
      expect(tf.memory().numTensors).toBe(before);
      expect(out).toEqual(expected.greedy);
    },
  );

  // Past max_position_embeddings (dynamic: 16) or original_max_position_embeddings (longrope: 16,
  // yarn: 32), where the frequencies depend on the length; the greedy runs above go there too (45
  // positions) with the KV cache.
  it.each(TINY_ROPE_FIXTURES)('%s: logits of a 40-token row match transformers within 1e-4', (name) => {
    const model = tinyLlama(name);
    const expected = tinyExpected(name);
    const ids = expected.long_input_ids!;
    const logits = tf.tidy(() =>
      lmLogits(model, model.forward({ ids: tf.tensor2d(ids, undefined, 'int32') }).hidden),
    );
    const diff = maxAbsDiff(logits.dataSync() as Float32Array, expected.long_logits!.flat(2));
    logits.dispose();
    model.dispose();
    expect(diff).toBeLessThan(1e-4);
  });

  it('rope scaling: length-dependent frequencies, attention factors and generation windows', () => {
    const dynamic = parseLlamaConfig(readFixtureFolder('tiny-llama-dynamic').config);
    const plain = parseLlamaConfig({
      ...(readFixtureFolder('tiny-llama-dynamic').config as Record<string, unknown>),
      rope_parameters: { rope_type: 'default', rope_theta: 10000 },
    });
    // Dynamic NTK is the plain rotary table up to max_position_embeddings, and slower past it.
    expect(ropeInverseFrequencies(dynamic, 16)).toEqual(ropeInverseFrequencies(plain));
    expect(ropeInverseFrequencies(dynamic, 40)[3]!).toBeLessThan(ropeInverseFrequencies(plain)[3]!);
    expect(generationWindow(dynamic)).toBe(64);
    const yarn = parseLlamaConfig(readFixtureFolder('tiny-qwen2-yarn').config);
    expect(yarn.ropeScaling).toMatchObject({ type: 'yarn', factor: 4, originalMaxPositionEmbeddings: 32 });
    expect(ropeAttentionScaling(yarn)).toBeCloseTo(0.1 * Math.log(4) + 1, 12);
    expect(generationWindow(yarn)).toBe(128);
    const longrope = parseLlamaConfig(readFixtureFolder('tiny-llama-longrope').config);
    // No factor given: max_position_embeddings / original (64 / 16) sets the attention factor.
    expect(ropeAttentionScaling(longrope)).toBeCloseTo(Math.sqrt(1 + Math.log(4) / Math.log(16)), 12);
    expect(ropeInverseFrequencies(longrope, 16)[3]! / ropeInverseFrequencies(longrope, 17)[3]!).toBeCloseTo(
      4,
      12,
    );
  });

  it.each([
    ['tiny-llama', 9],
    ['tiny-qwen2', 9],
    ['tiny-mistral', 6], // its sliding window of 6 hides no key from 6 positions: fused too
  ] as const)(
    '%s: attention fused on wasm gives the stock path hidden states and gradients (T %i)',
    async (name, T) => {
      const model = tinyLlama(name);
      const C = model.config.nEmbd;
      const run = (): Float32Array[] =>
        tf.tidy(() => {
          const e = tf.randomNormal([2, T, C], 0, 1, 'float32', 5) as tf.Tensor3D;
          const w = tf.randomNormal([2, T, C], 0, 1, 'float32', 6);
          const f = (x: tf.Tensor): tf.Tensor =>
            model.forward({ inputsEmbeds: x as tf.Tensor3D, training: true }).hidden;
          const [h, g] = [f(e), tf.grad((x: tf.Tensor) => tf.sum(tf.mul(f(x), w)))(e)];
          return [h.dataSync() as Float32Array, g.dataSync() as Float32Array];
        });
      const fused = run();
      const profile = await tf.profile(() => void run());
      expect(profile.kernelNames).toContain(GQA_FORWARD);
      setWasmKernels(false);
      try {
        const stock = run();
        expect(maxAbsDiff(fused[0]!, [...stock[0]!])).toBeLessThan(1e-4);
        expect(maxAbsDiff(fused[1]!, [...stock[1]!])).toBeLessThan(1e-4);
      } finally {
        setWasmKernels(true);
        model.dispose();
      }
    },
  );

  it('the cache gives the same last logits as a full pass (GQA, sliding window)', () => {
    const model = tinyLlama('tiny-mistral');
    const ids = [5, 17, 42, 7, 99, 3, 250, 12, 64, 8];
    const [full, cached] = tf.tidy(() => {
      const all = lmLogits(model, model.forward({ ids: tf.tensor2d([ids], undefined, 'int32') }).hidden);
      const first = model.forward({
        ids: tf.tensor2d([ids.slice(0, 9)], undefined, 'int32'),
        returnPresents: true,
      });
      const next = model.forward({
        ids: tf.tensor2d([ids.slice(9)], undefined, 'int32'),
        past: first.presents,
      });
      return [tf.slice(all, [0, 9, 0], [1, 1, -1]), lmLogits(model, next.hidden)];
    });
    expect(maxAbsDiff(cached.dataSync() as Float32Array, [...full.dataSync()])).toBeLessThan(1e-4);
    tf.dispose([full, cached]);
    model.dispose();
  });

  it('reads the config fields of each model type', () => {
    const llama = parseLlamaConfig(readFixtureFolder('tiny-llama').config);
    expect(llama).toMatchObject({
      modelType: 'llama',
      nKvHead: 2,
      headDim: 8,
      tieWordEmbeddings: false,
      qkvBias: false,
    });
    expect(llama.ropeScaling.type).toBe('llama3');
    const qwen = parseLlamaConfig(readFixtureFolder('tiny-qwen2').config);
    expect(qwen).toMatchObject({
      modelType: 'qwen2',
      tieWordEmbeddings: true,
      qkvBias: true,
      oBias: false,
      ropeTheta: 1e6,
    });
    const mistral = parseLlamaConfig(readFixtureFolder('tiny-mistral').config);
    expect(mistral).toMatchObject({ modelType: 'mistral', nKvHead: 1, headDim: 16, slidingWindow: [6, 6] });
    // The Hub's older layout: rope_theta and rope_scaling at the top level.
    const hub = { ...(readFixtureFolder('tiny-llama').config as Record<string, unknown>) };
    delete hub.rope_parameters;
    Object.assign(hub, { rope_theta: 500000, rope_scaling: { type: 'linear', factor: 4 } });
    expect(parseLlamaConfig(hub)).toMatchObject({
      ropeTheta: 500000,
      ropeScaling: { type: 'linear', factor: 4 },
    });
  });

  it('names what it found and what it reads for an unknown architecture or a bad field', () => {
    expect(() => parseModelConfig({ model_type: 'phi3', architectures: ['Phi3ForCausalLM'] })).toThrow(
      ModelConfigError,
    );
    expect(() => parseModelConfig({ model_type: 'phi3', architectures: ['Phi3ForCausalLM'] })).toThrow(
      /"phi3".*Phi3ForCausalLM.*LlamaForCausalLM \("llama"\), Qwen2ForCausalLM \("qwen2"\), MistralForCausalLM/,
    );
    const cfg = { ...(readFixtureFolder('tiny-llama').config as Record<string, unknown>) };
    expect(() => parseModelConfig({ ...cfg, num_key_value_heads: 3 })).toThrow(/num_key_value_heads 3/);
    expect(() => parseModelConfig({ ...cfg, hidden_size: undefined })).toThrow(
      /"hidden_size" must be an integer/,
    );
    // transformers' "proportional" (Gemma's partial rotation) has no place in this family.
    expect(() =>
      parseModelConfig({
        ...cfg,
        rope_parameters: { rope_type: 'proportional', factor: 4, rope_theta: 1e4 },
      }),
    ).toThrow(
      /rope_parameters type "proportional" is not supported; PEFT Lab reads "default", "linear", "llama3", "dynamic", "yarn", "longrope"/,
    );
    expect(() =>
      parseModelConfig({
        ...cfg,
        rope_parameters: { rope_type: 'yarn', factor: 4, rope_theta: 1e4, partial_rotary_factor: 0.5 },
      }),
    ).toThrow(/partial_rotary_factor 0.5 is not supported/);
    expect(() =>
      parseModelConfig({
        ...cfg,
        rope_parameters: {
          rope_type: 'longrope',
          rope_theta: 1e4,
          short_factor: [1, 1],
          long_factor: [1, 2],
        },
      }),
    ).toThrow(/"short_factor" must be a list of 4 positive numbers/);
    // YaRN with no original length takes max_position_embeddings, as transformers does; the Hub's
    // top-level original_max_position_embeddings wins over the scaling's.
    expect(
      parseLlamaConfig({ ...cfg, rope_parameters: { rope_type: 'yarn', factor: 2, rope_theta: 1e4 } })
        .ropeScaling,
    ).toMatchObject({ originalMaxPositionEmbeddings: 64, betaFast: 32, betaSlow: 1, truncate: true });
    expect(
      parseLlamaConfig({
        ...cfg,
        original_max_position_embeddings: 8,
        rope_parameters: {
          rope_type: 'yarn',
          factor: 2,
          rope_theta: 1e4,
          original_max_position_embeddings: 16,
        },
      }).ropeScaling,
    ).toMatchObject({ originalMaxPositionEmbeddings: 8 });
  });

  it('refuses weights that do not fit the config, naming the tensor', () => {
    const files = readFixtureFolder('tiny-llama');
    expect(() =>
      loadModel({ ...files, config: { ...(files.config as object), intermediate_size: 64 } }),
    ).toThrow(WeightsMismatchError);
    const sharded = readFixtureFolder('tiny-qwen2-sharded');
    const oneShardMissing = { ...sharded, weights: (sharded.weights as Uint8Array[]).slice(1) };
    expect(() => loadModel(oneShardMissing)).toThrow(/tensor .* is missing/);
  });
});
