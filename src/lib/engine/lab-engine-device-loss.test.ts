/**
 * The Lab's engine when the GPU device is destroyed mid-run (issue 17): the run finishes, says that
 * the device was lost and where it went on (the `deviceLost` event the Lab shows, with the backend
 * now running), and its losses equal an uninterrupted run's. Node, Dawn + SwiftShader; skips
 * without an adapter, fails in CI (kernels/webgpu/testing.ts).
 */
import 'fake-indexeddb/auto';
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import { webgpuForTests } from '../kernels/webgpu/testing';
import { currentGpuDevice } from '../train/device-loss';
import { LabEngine } from './lab-engine';
import type { LabEvents, TrainProgress } from '../protocol/lab-protocol';
import { mobyPart, publicFetch } from './testing';

const TRAIN = { steps: 3, lr: 5e-3, batchSize: 2, seqLen: 8, seed: 1, warmupSteps: 1, evalEvery: 0 };

const smallTask = (): Promise<{ task: string; corpusUrl: string }> => mobyPart('data-moby-small');

async function run(
  task: { task: string; corpusUrl: string },
  loseAfter: number | null,
): Promise<{
  losses: number[];
  lost: LabEvents['deviceLost'][];
  steps: number;
}> {
  await tf.setBackend('webgpu');
  const losses: number[] = [];
  const lost: LabEvents['deviceLost'][] = [];
  let destroyed = false;
  const engine = new LabEngine(publicFetch, (kind, data) => {
    if (kind === 'deviceLost') lost.push(data as LabEvents['deviceLost']);
    if (kind !== 'progress') return;
    const p = data as TrainProgress;
    losses[p.step - 1] = p.loss;
    // Destroyed from the progress event, while the run goes on to its next step.
    if (p.step === loseAfter && !destroyed) {
      destroyed = true;
      currentGpuDevice()!.destroy();
    }
  });
  await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
  const result = await engine.train({
    method: 'lora',
    config: { r: 4 },
    train: TRAIN,
    ...task,
  });
  return { losses, lost, steps: result.steps };
}

const gpu = await webgpuForTests();

describe.skipIf(!gpu)('LabEngine: the GPU device lost mid-run', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('goes on on a new device, says so with the backend now running, and trains as an uninterrupted run', async () => {
    const task = await smallTask();
    const want = await run(task, null);
    const got = await run(task, 1);
    expect(want.lost).toHaveLength(0);
    expect(got.steps).toBe(TRAIN.steps);
    expect(got.lost).toHaveLength(1);
    const d = got.lost[0]!;
    expect(d.backend.name).toBe('webgpu');
    expect(d.backend.reason).toBe(d.message);
    expect(d.message).toMatch(/GPU device was lost \(destroyed/);
    expect(d.fromStep).toBeLessThanOrEqual(1);
    expect(tf.getBackend()).toBe('webgpu');
    for (let s = 0; s < TRAIN.steps; s++) {
      const rel = Math.abs(got.losses[s]! - want.losses[s]!) / Math.abs(want.losses[s]!);
      expect(rel, `step ${s + 1}: ${got.losses[s]} vs ${want.losses[s]}`).toBeLessThan(1e-4);
    }
  }, 300_000);
});
