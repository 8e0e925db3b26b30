/**
 * A WebGPU device destroyed mid-run (issue 17): the run goes on, on a new device or on wasm, from
 * its last snapshot, says so, and its losses equal an uninterrupted run's. Runs in Node on Dawn +
 * SwiftShader (skips with the reason where there is no adapter; fails in CI, see kernels/webgpu/testing.ts).
 */
import { describe, it, expect, beforeAll, afterEach } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import { loadGpt2 } from '../model/load';
import { METHODS } from '../peft/registry';
import type { PeftConfigBase } from '../peft/types';
import { Trainer } from './trainer';
import { webgpuForTests } from '../kernels/webgpu/testing';
import { RecoverableRun, currentGpuDevice, describeRecovery } from './device-loss';
import type { DeviceRecovery, RunParts } from './device-loss';

const FIX = join(import.meta.dirname, '../model/fixtures/tiny-gpt2');
const STREAM = Int32Array.from({ length: 600 }, (_, i) => (i * 7 + (i >> 3)) % 97);
const STEPS = 4;
const LOSE_AFTER = 2;
/** SwiftShader compiles every shader twice here (once per device): minutes on a loaded machine. */
const TIMEOUT = 300_000;

/** The model, a LoRA adapter and a trainer, built on the current backend from the same files and seeds. */
function build(): RunParts & { trainer: Trainer } {
  const model = loadGpt2({
    config: JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(FIX, 'model.safetensors'))),
  });
  const m = METHODS.lora!;
  const adapter = m.create(model, { ...m.defaults('CAUSAL_LM'), r: 4, loraDropout: 0 } as PeftConfigBase, 7);
  const trainer = new Trainer(model, adapter, STREAM, {
    steps: 20,
    lr: 1e-2,
    warmupSteps: 0,
    batchSize: 2,
    seqLen: 8,
    seed: 11,
  });
  return {
    trainer,
    dispose() {
      trainer.dispose();
      adapter.dispose();
      model.dispose();
    },
  };
}

async function uninterrupted(backend: 'webgpu' | 'wasm'): Promise<number[]> {
  await tf.setBackend(backend);
  const parts = build();
  const losses: number[] = [];
  for (let s = 0; s < STEPS; s++) losses.push((await parts.trainer.trainStep()).loss);
  parts.dispose();
  return losses;
}

function expectClose(got: number[], want: number[], rel: number): void {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => {
    const e = Math.abs(g - want[i]!) / Math.abs(want[i]!);
    expect(e, `step ${i + 1}: ${g} after the loss vs ${want[i]} uninterrupted`).toBeLessThan(rel);
  });
}

const gpu = await webgpuForTests();

describe.skipIf(!gpu)('a WebGPU device lost mid-run', () => {
  let gpuNav: GPU;
  beforeAll(async () => {
    await initNodeBackend('wasm'); // the fallback must be able to start
    gpuNav = navigator.gpu;
  });
  afterEach(async () => {
    Object.defineProperty(globalThis, 'navigator', {
      value: { gpu: gpuNav },
      configurable: true,
      writable: true,
    });
    await tf.setBackend('webgpu');
  });

  it(
    'between steps: the run goes on on a new device from its last step, with the same losses',
    async () => {
      const want = await uninterrupted('webgpu');
      const said: DeviceRecovery[] = [];
      const run = await RecoverableRun.start({
        build,
        snapshotEveryMs: 0,
        onRecovered: (r) => void said.push(r),
      });
      const losses: number[] = [];
      while (run.trainer.step < STEPS) {
        if (run.trainer.step === LOSE_AFTER && said.length === 0) currentGpuDevice()!.destroy();
        losses[run.trainer.step] = (await run.step()).loss;
      }
      run.close();
      expect(said).toHaveLength(1);
      const r = said[0]!;
      expect(r.loss.reason).toBe('destroyed');
      expect(r.backend).toBe('webgpu');
      expect(r.fromStep).toBe(LOSE_AFTER);
      expect(r.redone).toBe(0);
      expect(describeRecovery(r)).toMatch(/GPU device was lost .*new GPU device.*from step 2/);
      expect(tf.getBackend()).toBe('webgpu');
      expect(currentGpuDevice()).not.toBe(null);
      expectClose(losses, want, 1e-4);
      // The steps train: equal losses throughout would prove little.
      expect(want[STEPS - 1]).not.toBe(want[0]);
      run.trainer.dispose();
    },
    TIMEOUT,
  );

  it(
    'during a step with no new device: the run moves to wasm from its last snapshot and redoes the steps since',
    async () => {
      const want = await uninterrupted('wasm');
      await tf.setBackend('webgpu');
      const said: DeviceRecovery[] = [];
      // Snapshots only at the start: the steps before the loss are done again, from the same batches.
      const run = await RecoverableRun.start({
        build,
        snapshotEveryMs: 1e9,
        onRecovered: (r) => void said.push(r),
      });
      const losses: number[] = [];
      while (run.trainer.step < STEPS) {
        const step = run.step();
        if (run.trainer.step === LOSE_AFTER && said.length === 0) {
          // No adapter from now on, as when the GPU process is gone for good.
          Object.defineProperty(globalThis, 'navigator', {
            value: { gpu: { requestAdapter: async () => null } },
            configurable: true,
            writable: true,
          });
          setTimeout(() => currentGpuDevice()?.destroy(), 0);
        }
        const st = await step;
        losses[st.step - 1] = st.loss;
      }
      run.close();
      expect(said).toHaveLength(1);
      const r = said[0]!;
      expect(r.backend).toBe('wasm');
      expect(r.why).toMatch(/moved to wasm/);
      expect(r.fromStep).toBe(0);
      expect(r.redone).toBeGreaterThanOrEqual(LOSE_AFTER);
      expect(tf.getBackend()).toBe('wasm');
      // WebGPU's steps before the loss and wasm's after agree with all-wasm to the backends' rounding.
      expectClose(losses, want, 1e-4);
      run.trainer.dispose();
    },
    TIMEOUT,
  );
});
