/**
 * The engine's weightsF16 train setting (TrainSettings.weightsF16), as the Lab's worker runs it: on
 * webgpu a LoRA run on tiny-llama holds its frozen linear layers as f16 (the status says how much
 * GPU memory that freed) and its losses stay within the stated tolerance of an f32 run's (on wasm,
 * which compiles no shaders: SwiftShader's compiles are most of this file's time); full
 * fine-tuning, and any backend but webgpu, are refused with SettingsError saying what to do. The
 * webgpu part runs in Node on Dawn + SwiftShader (skips with the reason where there is no adapter;
 * fails in CI).
 */
import 'fake-indexeddb/auto';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import { SettingsError } from '../errors';
import { webgpuForTests } from '../kernels/webgpu/testing';
import type { LabEvents, ModelFileBytes, TrainRequest } from '../protocol/lab-protocol';
import type { MethodRequest } from '../peft/method-config';
import type { DecoderModel } from '../model/decoder';
import { LabEngine } from './lab-engine';
import { modelFromFiles } from './model-files';
import { mobyPart, publicFetch } from './testing';

const DIR = join(process.cwd(), 'src/lib/model/fixtures/tiny-llama');
const TRAIN = { steps: 2, lr: 2e-2, batchSize: 2, seqLen: 8, seed: 1, warmupSteps: 0, evalEvery: 0 };

function bytes(dir: string, file: string): ArrayBuffer {
  const b = readFileSync(join(dir, file));
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** tiny-llama's folder as the engine's loadModelFiles takes it. */
function files(): ModelFileBytes {
  return {
    config: bytes(DIR, 'config.json'),
    tokenizer: bytes(DIR, 'tokenizer.json'),
    weights: bytes(DIR, 'model.safetensors'),
  };
}

const smallTask = (): Promise<{ task: string; corpusUrl: string }> => mobyPart('data-moby-f16');

/** An engine with tiny-llama loaded on the backend now active, recording losses and status lines. */
async function engineWithLlama(): Promise<{ engine: LabEngine; losses: number[]; status: string[] }> {
  const losses: number[] = [];
  const status: string[] = [];
  const engine = new LabEngine(publicFetch, (kind, data) => {
    if (kind === 'progress') losses.push((data as LabEvents['progress']).loss);
    if (kind === 'status') status.push((data as LabEvents['status']).message);
  });
  await engine.loadModelFiles({ id: 'local: tiny-llama', ...files() });
  return { engine, losses, status };
}

function request(
  task: { task: string; corpusUrl: string },
  weightsF16 = false,
  method: MethodRequest = { method: 'lora', config: { r: 4 } },
): TrainRequest {
  return { ...method, train: { ...TRAIN, weightsF16 }, ...task };
}

/** The losses of a LoRA run on wasm with f32 weights: the reference (wasm compiles no shaders). */
let wasmLosses: number[] = [];

describe('LabEngine weightsF16 on wasm', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('refuses the setting with SettingsError naming the backend and what to do; trains f32 without it', async () => {
    const task = await smallTask();
    const { engine, losses } = await engineWithLlama();
    const run = engine.train(request(task, true));
    await expect(run).rejects.toThrow(SettingsError);
    await expect(run).rejects.toThrow(
      /webgpu backend.*wasm is running: pick webgpu, or leave f16 weights off/,
    );
    await engine.train(request(task));
    wasmLosses = losses.splice(0);
    expect(wasmLosses).toHaveLength(TRAIN.steps);
  });
});

const gpu = await webgpuForTests();

describe.skipIf(!gpu)('LabEngine weightsF16 on webgpu', () => {
  it('trains LoRA with f16 weights within the stated tolerance of f32, says what it freed, refuses full fine-tuning; a run without f16 after it has the weights as loaded', async () => {
    const task = await smallTask();
    await tf.setBackend('webgpu');
    const { engine, losses, status } = await engineWithLlama();
    const result = await engine.train(request(task, true));
    expect(result.steps).toBe(TRAIN.steps);
    // tiny-llama's 14 linear-layer matrices take 86,016 bytes as f32: half is freed
    // (model-level bytes in train/weights-f16-llama.test.ts).
    expect(status).toContain('frozen linear-layer weights held as f16: 0.04 MiB of GPU memory freed');
    const f16 = losses.splice(0);
    expect(f16).toHaveLength(TRAIN.steps);
    expect(wasmLosses).toHaveLength(TRAIN.steps);
    for (let s = 0; s < TRAIN.steps; s++) {
      // Losses near 7 nats: measured 7.8e-4 (SwiftShader, 2026-12-05); the bound is 1e-2.
      const d = Math.abs(f16[s]! - wasmLosses[s]!);
      expect(d, `step ${s + 1}: f16 on webgpu ${f16[s]} vs f32 on wasm ${wasmLosses[s]}`).toBeLessThan(1e-2);
    }
    console.log(
      `engine, tiny-llama LoRA r 4: f32 on wasm ${wasmLosses.join(' ')}; f16 on webgpu ${f16.join(' ')}`,
    );

    const full = engine.train(request(task, true, { method: 'full', config: {} }));
    await expect(full).rejects.toThrow(SettingsError);
    await expect(full).rejects.toThrow(/full fine-tuning trains the base weights/);

    // A run without f16 after it trains on the weights as loaded, not on their f16 rounding.
    await engine.train(request(task));
    const model = (engine as unknown as { model: DecoderModel }).model;
    expect(model.weightsF16).toBe(false);
    const fresh = modelFromFiles('fresh', files()).model;
    const names = [...fresh.weights.keys()].filter((k) => /_proj\.weight$/.test(k));
    expect(names).toHaveLength(14);
    for (const k of names) {
      expect(await model.weights.get(k)!.data(), k).toEqual(await fresh.weights.get(k)!.data());
    }
    fresh.dispose();
  }, 120_000);
});
