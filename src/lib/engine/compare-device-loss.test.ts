/**
 * A Compare race when the GPU device is destroyed mid-race (issue 17): the race goes on on a new
 * device, or on wasm when there is none, from its lanes' last snapshot (every lane rebuilt on the model read again, its state and
 * history put back), says so, and every lane's losses and history equal an uninterrupted race's.
 * Node, Dawn + SwiftShader; skips without an adapter, fails in CI (kernels/webgpu/testing.ts).
 */
import 'fake-indexeddb/auto';
import { describe, it, expect, beforeAll, afterEach } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import { webgpuForTests } from '../kernels/webgpu/testing';
import { currentGpuDevice } from '../train/device-loss';
import { CompareEngine } from './compare-engine';
import type { CompareEvents } from '../protocol/compare-protocol';
import type { LaneState } from '../race/race';
import { mobyPart, publicFetch } from './testing';

const STEPS = 3;

const smallTask = (): Promise<{ task: string; corpusUrl: string }> => mobyPart('data-moby-race');

async function race(
  task: { task: string; corpusUrl: string },
  lose: boolean,
  noNewDevice = false,
): Promise<{ losses: Record<string, number[]>; said: string[]; lanes: LaneState[] }> {
  await tf.setBackend('webgpu');
  const losses: Record<string, number[]> = {};
  const said: string[] = [];
  let destroyed = false;
  const compare = new CompareEngine(publicFetch, (kind, data) => {
    if (kind === 'status') {
      const st = data as CompareEvents['status'];
      if (/GPU device was lost/.test(st.message)) said.push(st.message);
    }
    if (kind !== 'step') return;
    const s = data as CompareEvents['step'];
    (losses[s.laneId] ??= [])[s.point.step - 1] = s.point.loss;
    // The first lane's first step is in; the device goes before the second lane's.
    if (lose && !destroyed && s.laneId === 'lane-1' && s.point.step === 1) {
      destroyed = true;
      if (noNewDevice) {
        // No adapter from now on, as when the GPU process is gone for good.
        Object.defineProperty(globalThis, 'navigator', {
          value: { gpu: { requestAdapter: async () => null } },
          configurable: true,
          writable: true,
        });
      }
      currentGpuDevice()!.destroy();
    }
  });
  await compare.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
  const snap = await compare.race({
    ...task,
    settings: { steps: STEPS, batchSize: 2, seqLen: 16, seed: 1, evalEvery: 0 },
    lanes: [{ method: 'lora' }, { method: 'ia3' }],
  });
  return { losses, said, lanes: snap.lanes };
}

const gpu = await webgpuForTests();

describe.skipIf(!gpu)('CompareEngine: the GPU device lost mid-race', () => {
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

  it('goes on on a new device, or on wasm, from the lanes last snapshot, says so, and every lane trains as in an uninterrupted race', async () => {
    const task = await smallTask();
    const want = await race(task, false);
    const got = await race(task, true);
    expect(want.said).toEqual([]);
    expect(got.said).toHaveLength(1);
    // The snapshot is the one taken as the race's first step began (the next is due after 15 s):
    // both lanes go back to step 0 and the first lane's step 1 is made again.
    expect(got.said[0]).toMatch(
      /^the GPU device was lost \(destroyed.*\): the browser gave a new GPU device; training goes on from step 0, doing 1 step again$/,
    );
    expect(tf.getBackend()).toBe('webgpu');
    expect(got.lanes.map((l) => l.status)).toEqual(['done', 'done']);
    for (const lane of got.lanes) {
      // The history was put back with the state: each step once, in order.
      expect(lane.steps.map((p) => p.step)).toEqual([1, 2, 3]);
      expect(lane.evals.map((e) => e.step)).toEqual([0, STEPS]);
    }
    expect(Object.keys(got.losses)).toEqual(['lane-1', 'lane-2']);
    for (const [lane, ls] of Object.entries(want.losses)) {
      expect(ls).toHaveLength(STEPS);
      ls.forEach((w, i) => {
        const g = got.losses[lane]![i]!;
        expect(Math.abs(g - w) / Math.abs(w), `${lane} step ${i + 1}: ${g} vs ${w}`).toBeLessThan(1e-4);
      });
      // The lanes train: equal losses throughout would prove little.
      expect(ls[STEPS - 1]).not.toBe(ls[0]);
    }

    // No new device: the race moves to wasm, where WebGPU's and wasm's steps agree with an
    // all-WebGPU race to the two backends' rounding.
    const moved = await race(task, true, true);
    expect(moved.said).toHaveLength(1);
    expect(moved.said[0]).toMatch(
      /^the GPU device was lost \(destroyed.*\): .*so the run moved to wasm; training goes on from step 0, doing 1 step again$/,
    );
    expect(tf.getBackend()).toBe('wasm');
    expect(moved.lanes.map((l) => l.status)).toEqual(['done', 'done']);
    for (const [lane, ls] of Object.entries(want.losses)) {
      ls.forEach((w, i) => {
        const g = moved.losses[lane]![i]!;
        expect(Math.abs(g - w) / Math.abs(w), `${lane} step ${i + 1} on wasm: ${g} vs ${w}`).toBeLessThan(
          1e-4,
        );
      });
    }
  }, 600_000);
});
