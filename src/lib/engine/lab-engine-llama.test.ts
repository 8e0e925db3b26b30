/**
 * The Lab's engine on the Llama family: a sharded Qwen2 folder (written by transformers) loads
 * through loadModelFiles as the Models screen sends it, its summary names the architecture, it
 * generates, trains LoRA on q_proj/v_proj (PEFT's default for the
 * family) and LN tuning on its RMSNorms, also under stage-3 offload with gradient checkpointing, and
 * answers with the adapter.
 */
import 'fake-indexeddb/auto';
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import { LabEngine } from './lab-engine';
import { publicFetch } from './testing';
import { folderWeights } from '../model/shards';

const DIR = join(process.cwd(), 'src/lib/model/fixtures/tiny-qwen2-sharded');
const TRAIN = { steps: 4, lr: 2e-2, batchSize: 2, seqLen: 32, seed: 1, warmupSteps: 1, evalEvery: 0 };

function bytes(file: string): ArrayBuffer {
  const b = readFileSync(join(DIR, file));
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** The folder as a drop gives it: file name -> bytes. */
function folder(): Record<string, ArrayBuffer> {
  const names = ['config.json', 'tokenizer.json', 'model.safetensors.index.json'];
  for (let i = 1; i <= 4; i++) names.push(`model-0000${i}-of-00004.safetensors`);
  return Object.fromEntries(names.map((n) => [n, bytes(n)]));
}

describe('LabEngine on a Llama-family model', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('loads sharded Qwen2, generates, trains LoRA on q_proj/v_proj', async () => {
    const engine = new LabEngine(publicFetch);
    const files = folder();
    const summary = await engine.loadModelFiles({
      id: 'local: tiny-qwen2',
      config: files['config.json']!,
      tokenizer: files['tokenizer.json']!,
      ...folderWeights(files, 'tiny-qwen2'),
    });
    expect(summary).toMatchObject({
      family: 'qwen2',
      architecture: 'Qwen2 (Qwen2ForCausalLM), 2 layers, 4 heads / 2 key-value heads, RoPE theta 10,000',
      nLayer: 2,
      nHead: 4,
      nKvHead: 2,
      nEmbd: 32,
      ropeTheta: 10000,
      nPositions: 64,
    });
    expect(summary.bytes).toBe(38528 + 33960 + 34416 + 21376);

    // Greedy tokens equal transformers' in model/llama.test.ts; here the engine's path answers.
    const req = { prompt: 'Call me Ishmael.', maxNewTokens: 8 };
    const base = await engine.generate({ ...req, temperature: 0, seed: 0, useAdapter: false });
    expect(base.generatedIds.length).toBe(8);
    expect(base.generatedIds.every((t) => t >= 0 && t < 300)).toBe(true);

    const result = await engine.train({
      method: 'lora',
      config: { r: 4 },
      train: TRAIN,
      corpusUrl: 'data/moby-dick/',
    });
    expect(result.steps).toBe(4);
    expect(Number.isFinite(result.finalLoss)).toBe(true);
    // q_proj 32 -> 32 and v_proj 32 -> 16 (2 key/value heads of 8) in 2 layers, r 4.
    expect(result.trainableParams).toBe(2 * 4 * (32 + 32 + 32 + 16));
    const tuned = await engine.generate({ ...req, temperature: 0, seed: 0, useAdapter: true });
    expect(tuned.generatedIds.length).toBeGreaterThan(0);

    // LN tuning with PEFT's default for qwen2: post_attention_layernorm's gain in each of 2 layers.
    const ln = await engine.train({
      method: 'ln-tuning',
      config: {},
      train: TRAIN,
      corpusUrl: 'data/moby-dick/',
    });
    expect(ln.steps).toBe(4);
    expect(Number.isFinite(ln.finalLoss)).toBe(true);
    expect(ln.trainableParams).toBe(2 * 32);
    const offload = {
      stage: 3 as const,
      budgetMB: 0.06,
      policy: 'lru' as const,
      prefetch: false,
      int8: false,
      gradientCheckpointing: true,
      device: 'memory' as const,
    };
    // Paging the layers (60 kB holds one of this model's layers, about 43 kB, at a time) and
    // recomputing them: the same run, the same loss.
    const paged = await engine.train({
      method: 'lora',
      config: { r: 4 },
      train: TRAIN,
      corpusUrl: 'data/moby-dick/',
      offload,
    });
    expect(paged.finalLoss).toBeCloseTo(result.finalLoss, 4);
    // LN tuning's trained norm copies sit in the weight table: they stay resident while the rest pages.
    const lnPaged = await engine.train({
      method: 'ln-tuning',
      config: {},
      train: TRAIN,
      corpusUrl: 'data/moby-dick/',
      offload,
    });
    expect(lnPaged.finalLoss).toBeCloseTo(ln.finalLoss, 4);
    // The LN tuning and offloaded runs left the engine usable, the base as it was.
    const again = await engine.generate({ ...req, temperature: 0, seed: 0, useAdapter: false });
    expect(again.generatedIds).toEqual(base.generatedIds);
  });
});
