import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../../backend/node';
import { loadGpt2 } from '../../model/load';
import { Gpt2Model } from '../../model/gpt2';
import { parseGpt2Config } from '../../model/config';
import { lmLogits } from '../../model/heads';
import { generate } from '../../model/generate';
import { lora } from './index';
import { LoraAdapter, loraScaling } from './lora';
import type { LoraConfig } from './config';
import { MAX_NONFINITE_STREAK, Trainer, lmBatchLoss } from '../../train/trainer';
import { loadAdapter, readAdapterWeights, saveAdapter } from '../../io/peft-format';
import { AdapterError, NonFiniteLossError, PeftConfigError } from '../../errors';

const FIX = join(import.meta.dirname, '../../model/fixtures/tiny-gpt2');
const tiny = (): Gpt2Model =>
  loadGpt2({
    config: JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(FIX, 'model.safetensors'))),
  });
const STREAM = Int32Array.from({ length: 600 }, (_, i) => (i * 7) % 11);
const cfg = (over: Partial<LoraConfig> = {}): LoraConfig => ({ ...lora.defaults('CAUSAL_LM'), ...over });

async function trained(
  model: Gpt2Model,
  config: LoraConfig,
  steps = 10,
  seed = 3,
): Promise<{ adapter: LoraAdapter; losses: number[] }> {
  const adapter = lora.create(model, config, seed) as LoraAdapter;
  const t = new Trainer(model, adapter, STREAM, {
    steps,
    lr: 3e-2,
    batchSize: 2,
    seqLen: 10,
    seed,
    warmupSteps: 1,
  });
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) losses.push((await t.trainStep()).loss);
  t.dispose();
  return { adapter, losses };
}

describe('LoRA', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it("saves PEFT's exact key names, shapes and snake_case config for GPT-2", async () => {
    const model = tiny();
    const { adapter } = await trained(
      model,
      cfg({ targetModules: ['c_attn', 'mlp.c_fc'], r: 4, loraAlpha: 16 }),
      2,
    );
    const files = await saveAdapter(adapter, 'tiny-gpt2');
    const json = JSON.parse(files.config) as Record<string, unknown>;
    expect(json).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 4,
      lora_alpha: 16,
      lora_dropout: 0,
      target_modules: ['c_attn', 'mlp.c_fc'],
      fan_in_fan_out: true,
      use_rslora: false,
      bias: 'none',
      base_model_name_or_path: 'tiny-gpt2',
      inference_mode: true,
    });
    const w = readAdapterWeights(files.weights, 'x');
    const shapes = Object.fromEntries([...w].map(([k, t]) => [k, t.shape]));
    expect(shapes).toEqual({
      'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight': [4, 16],
      'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight': [48, 4],
      'base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight': [4, 16],
      'base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight': [64, 4],
      'base_model.model.transformer.h.1.attn.c_attn.lora_A.weight': [4, 16],
      'base_model.model.transformer.h.1.attn.c_attn.lora_B.weight': [48, 4],
      'base_model.model.transformer.h.1.mlp.c_fc.lora_A.weight': [4, 16],
      'base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight': [64, 4],
    });
    adapter.dispose();
    model.dispose();
  });

  it('initialises A in +-1/sqrt(in) and B at zero, so the first forward equals the base model', () => {
    const model = tiny();
    const ids = tf.tensor2d([[3, 1, 4, 1, 5]], undefined, 'int32');
    const base = lmLogits(model, model.forward({ ids }).hidden).dataSync();
    const adapter = lora.create(model, cfg(), 1);
    const a = [...adapter.trainable().values()][0]!.dataSync();
    expect(Math.max(...Array.from(a, Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(16));
    expect(Math.max(...Array.from(a, Math.abs))).toBeGreaterThan(0.5 / Math.sqrt(16));
    const withLora = lmLogits(model, model.forward({ ids }).hidden).dataSync();
    expect(Array.from(withLora)).toEqual(Array.from(base));
    adapter.dispose();
    model.dispose();
  });

  it('matches the reference formula x W + b + x A^T B^T alpha/r on a layer', () => {
    const model = tiny();
    const config = cfg({ r: 2, loraAlpha: 6, useRslora: true });
    const adapter = lora.create(model, config, 9) as LoraAdapter;
    const [aT, bT] = [...adapter.trainable().values()] as tf.Variable[];
    bT!.assign(tf.randomNormal(bT!.shape, 0, 0.5, 'float32', 4));
    const x = tf.randomNormal([3, 16], 0, 1, 'float32', 5) as tf.Tensor2D;
    const got = model.linear(0, 'attn.c_attn', x, { training: false, seed: 0 }).arraySync();
    // Independent: plain JS loops over the same numbers.
    const X = x.arraySync();
    const W = model.w('h.0.attn.c_attn.weight').arraySync() as number[][];
    const b = model.w('h.0.attn.c_attn.bias').arraySync() as number[];
    const A = aT!.arraySync() as number[][];
    const B = bT!.arraySync() as number[][];
    const s = 6 / Math.sqrt(2);
    expect(loraScaling(config)).toBeCloseTo(s, 12);
    for (let n = 0; n < 3; n++)
      for (let o = 0; o < 48; o++) {
        let y = b[o]!;
        for (let i = 0; i < 16; i++) y += X[n]![i]! * W[i]![o]!;
        let u = 0;
        for (let k = 0; k < 2; k++) {
          let xa = 0;
          for (let i = 0; i < 16; i++) xa += X[n]![i]! * A[i]![k]!;
          u += xa * B[k]![o]!;
        }
        expect(got[n]![o]!).toBeCloseTo(y + s * u, 4);
      }
    adapter.dispose();
    model.dispose();
  });

  it('merging gives the same greedy tokens as running unmerged; unmerge restores the base bit for bit', async () => {
    const model = tiny();
    const before = model.w('h.1.attn.c_attn.weight').dataSync().slice();
    const { adapter } = await trained(model, cfg({ targetModules: ['c_attn', 'c_proj'] }), 15);
    const unmerged = await generate(model, [5, 2, 9], { maxNewTokens: 12 });
    adapter.merge();
    expect(Array.from(model.w('h.1.attn.c_attn.weight').dataSync())).not.toEqual(Array.from(before));
    const merged = await generate(model, [5, 2, 9], { maxNewTokens: 12 });
    expect(merged).toEqual(unmerged);
    adapter.unmerge();
    expect(Array.from(model.w('h.1.attn.c_attn.weight').dataSync())).toEqual(Array.from(before));
    adapter.dispose();
    model.dispose();
  });

  it('computes no gradient for a frozen weight: only activation gradients flow through it', async () => {
    const model = tiny();
    const adapter = lora.create(model, cfg({ targetModules: ['mlp.c_fc'] }), 1);
    const vars = [...adapter.trainable().values()];
    const batch = {
      ids: Int32Array.from({ length: 10 }, (_, i) => i),
      labels: Int32Array.from({ length: 10 }, (_, i) => i + 1),
      batch: 1,
      seqLen: 10,
    };
    const info = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(() => lmBatchLoss(model, adapter, batch, true, 0), vars);
      tf.dispose([value, ...Object.values(grads)]);
    });
    // A weight gradient is a matmul whose output has the weight's shape. Frozen weights are
    // [16,48] (c_attn), [16,16] (c_proj), [16,64] (c_fc), [64,16] (mlp c_proj), [97,16] (wte):
    // no matmul may output them. The LoRA variables' own gradients ([16,8], [8,64]) must be there.
    const matmuls = info.kernels.filter((k) => /MatMul/.test(k.name));
    expect(matmuls.length).toBeGreaterThan(10);
    const shapes = matmuls.flatMap((k) => k.outputShapes.map((s) => JSON.stringify(s)));
    for (const frozen of ['[16,48]', '[16,16]', '[16,64]', '[64,16]', '[97,16]'])
      expect(shapes).not.toContain(frozen);
    expect(shapes).toContain('[16,8]');
    expect(shapes).toContain('[8,64]');
    adapter.dispose();
    model.dispose();
  });

  it('is deterministic: the same seed gives the same losses, another seed does not', async () => {
    const run = async (seed: number): Promise<number[]> => {
      const model = tiny();
      const { adapter, losses } = await trained(model, cfg({ loraDropout: 0.1 }), 6, seed);
      adapter.dispose();
      model.dispose();
      return losses;
    };
    const a = await run(11);
    expect(await run(11)).toEqual(a);
    expect(await run(12)).not.toEqual(a);
  });

  it('skips NaN steps, then stops with NonFiniteLossError, keeping the last good weights', async () => {
    const model = tiny();
    const adapter = lora.create(model, cfg(), 1);
    const t = new Trainer(model, adapter, STREAM, { steps: 5, lr: 1e-2, batchSize: 2, seqLen: 8, seed: 1 });
    await t.trainStep();
    const good = [...adapter.trainable().values()].map((v) => v.dataSync().slice());
    model.w('ln_f.weight').assign(tf.fill([16], NaN));
    // NaN in the base's weights fails every step: skipped (the rate halved) until the streak ends it.
    for (let i = 1; i < MAX_NONFINITE_STREAK; i++) expect((await t.trainStep()).skipped).toBe(true);
    await expect(t.trainStep()).rejects.toThrow(NonFiniteLossError);
    expect([...adapter.trainable().values()].map((v) => v.dataSync().slice())).toEqual(good);
    t.dispose();
    adapter.dispose();
    model.dispose();
  });

  it('refuses configs and adapter files that do not fit, naming the fault', async () => {
    const model = tiny();
    expect(() => lora.create(model, cfg({ targetModules: ['q_proj'] }), 0)).toThrow(
      /matches no linear layer/,
    );
    expect(() => lora.create(model, cfg({ r: 0 }), 0)).toThrow(PeftConfigError);
    expect(() => lora.create(model, cfg({ r: 64 }), 0)).toThrow(/larger than the model width/);
    expect(() => lora.create(model, cfg({ loraDropout: 1.5 }), 0)).toThrow(/loraDropout/);
    const { adapter } = await trained(model, cfg({ r: 4 }), 1);
    const files = await saveAdapter(adapter, 'tiny');
    adapter.dispose();
    // A rank that does not match its tensors.
    const lying = { ...files, config: files.config.replace('"r": 4', '"r": 2') };
    expect(() => loadAdapter(model, lying, 'lying')).toThrow(
      /lora_A.weight has shape \[4,16\] but this model needs \[2,16\]/,
    );
    // Unknown peft_type, bad JSON, another model's shapes.
    expect(() =>
      loadAdapter(model, { ...files, config: files.config.replace('"LORA"', '"NOT_A_TUNER"') }),
    ).toThrow(/peft_type "NOT_A_TUNER" is not supported/);
    expect(() => loadAdapter(model, { ...files, config: '{nope' })).toThrow(AdapterError);
    const wide = Gpt2Model.random(
      parseGpt2Config({ vocab_size: 97, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 4 }),
    );
    expect(() => loadAdapter(wide, files, 'for-tiny')).toThrow(
      /has shape \[4,16\] but this model needs \[4,32\]/,
    );
    expect(wide.hooks.size).toBe(0);
    wide.dispose();
    expect(model.hooks.size).toBe(0);
    model.dispose();
  });
});
