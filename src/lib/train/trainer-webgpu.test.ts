/**
 * Whole training steps on WebGPU through our kernels (kernels/webgpu, wired in behind
 * kernels/webgpu/active.ts) against the same steps on wasm: the losses of three optimizer steps
 * agree, and a step costs fewer shader dispatches than stock tfjs on the same adapter. Runs in Node
 * on Dawn + SwiftShader (skips with the reason where there is no adapter; fails in CI).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import { loadGpt2 } from '../model/load';
import { METHODS } from '../peft/registry';
import type { PeftConfigBase } from '../peft/types';
import { Trainer } from './trainer';
import { setFusedKernels } from '../kernels/webgpu/active';
import { countDispatches } from '../kernels/webgpu/dispatch-counter';
import { webgpuForTests } from '../kernels/webgpu/testing';

const FIX = join(import.meta.dirname, '../model/fixtures/tiny-gpt2');
const STREAM = Int32Array.from({ length: 600 }, (_, i) => (i * 7 + (i >> 3)) % 97);
const STEPS = 3;

/** The methods compared, with settings our fused paths cover (LoRA without dropout). */
const CASES: Record<string, (c: PeftConfigBase) => PeftConfigBase> = {
  lora: (c) => ({ ...c, r: 4, loraDropout: 0 }) as PeftConfigBase,
  full: (c) => c,
  'prompt-tuning': (c) => ({ ...c, numVirtualTokens: 4 }) as PeftConfigBase,
};

interface Run {
  losses: number[];
  gradNorms: number[];
  /** Dispatches and readbacks of the last step (the first compiles, allocates moments). */
  dispatches: number;
  readbacks: number;
}

async function train(backend: 'wasm' | 'webgpu', method: string, kernels: boolean): Promise<Run> {
  await tf.setBackend(backend);
  setFusedKernels(kernels);
  const model = loadGpt2({
    config: JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(FIX, 'model.safetensors'))),
  });
  const m = METHODS[method]!;
  const adapter = m.create(model, CASES[method]!(m.defaults('CAUSAL_LM')), 7);
  const t = new Trainer(model, adapter, STREAM, {
    steps: 10,
    lr: 1e-2,
    warmupSteps: 0,
    batchSize: 2,
    seqLen: 8,
    seed: 11,
  });
  const losses: number[] = [];
  const gradNorms: number[] = [];
  let dispatches = 0;
  let readbacks = 0;
  for (let s = 0; s < STEPS; s++) {
    if (backend === 'webgpu' && s === STEPS - 1) {
      const { result, counts } = await countDispatches(() => t.trainStep());
      losses.push(result.loss);
      gradNorms.push(result.gradNorm);
      dispatches = counts.dispatches;
      readbacks = counts.readbacks;
    } else {
      const r = await t.trainStep();
      losses.push(r.loss);
      gradNorms.push(r.gradNorm);
    }
  }
  t.dispose();
  adapter.dispose();
  model.dispose();
  setFusedKernels(true);
  return { losses, gradNorms, dispatches, readbacks };
}

const gpu = await webgpuForTests();

describe.skipIf(!gpu)('training steps on WebGPU with our kernels', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });
  afterAll(() => setFusedKernels(true));

  const table: string[] = [];
  afterAll(() => console.log(`dispatches per step, stock / ours:\n${table.join('\n')}`));

  for (const method of Object.keys(CASES)) {
    it(`${method}: three steps' losses match wasm, with fewer dispatches than stock`, async () => {
      const wasm = await train('wasm', method, true);
      const ours = await train('webgpu', method, true);
      const stock = await train('webgpu', method, false);
      for (let s = 0; s < STEPS; s++) {
        const rel = Math.abs(ours.losses[s]! - wasm.losses[s]!) / Math.abs(wasm.losses[s]!);
        expect(rel, `step ${s + 1}: ${ours.losses[s]} on webgpu vs ${wasm.losses[s]} on wasm`).toBeLessThan(
          1e-4,
        );
      }
      for (let s = 0; s < STEPS; s++) {
        const rel = Math.abs(ours.gradNorms[s]! - wasm.gradNorms[s]!) / Math.abs(wasm.gradNorms[s]!);
        expect(rel, `step ${s + 1}: gradient norm ${ours.gradNorms[s]} vs ${wasm.gradNorms[s]}`).toBeLessThan(
          1e-3,
        );
      }
      // The steps train: a comparison of three equal losses would prove little.
      expect(wasm.losses[2]).not.toBe(wasm.losses[0]);
      const ratio = stock.dispatches / ours.dispatches;
      table.push(
        `${method.padEnd(14)} ${stock.dispatches} / ${ours.dispatches} (${ratio.toFixed(2)}x), readbacks ${stock.readbacks} / ${ours.readbacks}`,
      );
      expect(ours.dispatches).toBeLessThan(stock.dispatches);
      // The aim of issue 14: at least 3x fewer launches than stock tfjs per training step (measured
      // here: LoRA 3.6x, full 3.3x, prompt tuning 3.2x on this 2-layer fixture, whose embedding, loss
      // and optimizer weigh most; deeper models gain more).
      expect(ratio).toBeGreaterThanOrEqual(3);
      // Only the loss (with the gradient norm, in one tensor) comes back in a step.
      expect(ours.readbacks).toBe(1);
    });
  }
});
