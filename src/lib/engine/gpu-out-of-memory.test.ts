/**
 * The Lab and Compare engines out of GPU memory on WebGPU (issue 17), injected in Node on Dawn +
 * SwiftShader (backend/gpu-memory.ts's limitGpuMemory: past a ceiling the device's buffers come back
 * unusable with a GPUOutOfMemoryError, as on a real device). A step that cannot get its memory
 * pauses the run, saying what to lower; nothing is lost (resumed once there is room, the run's
 * losses are an uninterrupted run's), and a run with a lowered batch and length trains under the
 * same ceiling. Skips without an adapter, fails in CI (kernels/webgpu/testing.ts).
 */
import 'fake-indexeddb/auto';
import { describe, it, expect, beforeAll, afterEach } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { webgpuForTests } from '../kernels/webgpu/testing';
import { freeReusableBuffers, limitGpuMemory } from '../backend/gpu-memory';
import { LabEngine } from './lab-engine';
import { CompareEngine } from './compare-engine';
import type { LabEvents, TrainProgress } from '../protocol/lab-protocol';
import type { CompareEvents } from '../protocol/compare-protocol';
import { mobyPart, publicFetch } from './testing';

// BIG has 4 times SMALL's tokens (a step's buffers grow with them) and is small enough that, on
// SwiftShader, it reuses most of SMALL's compiled shaders and a step takes about a second.
const BIG = { batchSize: 2, seqLen: 16 };
const SMALL = { batchSize: 1, seqLen: 8 };
const TRAIN = { steps: 2, lr: 5e-3, seed: 1, warmupSteps: 1, evalEvery: 0 };

const smallTask = (): Promise<{ task: string; corpusUrl: string }> => mobyPart('data-moby-oom');

/** Bytes of GPU buffers tfjs holds now (in use and kept for reuse). */
function gpuBytes(): number {
  return (tf.backend() as unknown as { bufferManager: { numBytesAllocated: number } }).bufferManager
    .numBytesAllocated;
}

/** How the test plays the device and the person: when the ceiling goes on, what to do once paused. */
interface Fault {
  /** Room on the device beyond what is held when training starts (its pool of free buffers emptied). */
  room: number;
  /** Once paused: 'resume' after lifting the ceiling (memory freed elsewhere). */
  onPause: 'resume';
}

interface LabRun {
  losses: number[];
  paused: string[];
  steps: number;
  /** GPU bytes a training step added (the first step's, measured from an emptied pool). */
  stepBytes: number;
}

async function labRun(
  lab: LabEngine,
  task: { task: string; corpusUrl: string },
  size: { batchSize: number; seqLen: number },
  fault: Fault | null,
  events: { on?: (kind: string, data: unknown) => void },
): Promise<LabRun> {
  const losses: number[] = [];
  const paused: string[] = [];
  let base = 0;
  let stepBytes = 0;
  events.on = (kind, data) => {
    if (kind === 'status') {
      const st = data as LabEvents['status'];
      if (st.phase === 'training' && st.message.startsWith('training ')) {
        freeReusableBuffers();
        base = gpuBytes();
        if (fault) limitGpuMemory(base + fault.room);
      }
      if (st.phase === 'paused') {
        paused.push(st.message);
        limitGpuMemory(null);
        // After the gate has started waiting (the event comes just before).
        setTimeout(() => void lab.resume(), 0);
      }
    }
    if (kind === 'progress') {
      const p = data as TrainProgress;
      if (p.step === 1) stepBytes = gpuBytes() - base;
      losses[p.step - 1] = p.loss;
    }
  };
  const result = await lab.train({
    method: 'lora',
    config: { r: 4 },
    train: { ...TRAIN, ...size },
    ...task,
  });
  limitGpuMemory(null);
  return { losses, paused, steps: result.steps, stepBytes };
}

const gpu = await webgpuForTests();

describe.skipIf(!gpu)('the engines out of GPU memory on WebGPU', () => {
  let task: { task: string; corpusUrl: string };
  beforeAll(async () => {
    await tf.setBackend('webgpu');
    task = await smallTask();
  });
  afterEach(() => limitGpuMemory(null));

  it('Lab: the run pauses saying what to lower, resumes with nothing lost, and a lowered run trains under the same ceiling', async () => {
    const events: { on?: (kind: string, data: unknown) => void } = {};
    const lab = new LabEngine(publicFetch, (kind, data) => events.on?.(kind, data));
    await lab.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const small = await labRun(lab, task, SMALL, null, events);
    const want = await labRun(lab, task, BIG, null, events);
    // Room for twice what a step of the lowered run takes: a step of the big run needs far more.
    const room = 2 * small.stepBytes;
    expect(want.stepBytes).toBeGreaterThan(room);
    const got = await labRun(lab, task, BIG, { room, onPause: 'resume' }, events);
    expect(got.paused).toHaveLength(1);
    expect(got.paused[0]).toMatch(
      /^paused: training at step 1 ran out of memory \(the GPU could not allocate memory for a training step \(batch 2 x 16 tokens\).*\): lower the batch size \(now 2\), the sequence length \(now 16\), .*smaller than peftlab-s$/,
    );
    expect(got.steps).toBe(TRAIN.steps);
    for (let s = 0; s < TRAIN.steps; s++) {
      const rel = Math.abs(got.losses[s]! - want.losses[s]!) / Math.abs(want.losses[s]!);
      expect(rel, `step ${s + 1}: ${got.losses[s]} vs ${want.losses[s]}`).toBeLessThan(1e-4);
    }
    // Lowered, under the same ceiling: no pause, every step made.
    const lowered = await labRun(lab, task, SMALL, { room, onPause: 'resume' }, events);
    expect(lowered.paused).toEqual([]);
    expect(lowered.steps).toBe(TRAIN.steps);
    expect(lowered.losses.every(Number.isFinite)).toBe(true);
  }, 600_000);

  it('Compare: the race pauses saying what to lower and, resumed, every lane trains as in an uninterrupted race', async () => {
    const race = async (
      fault: boolean,
    ): Promise<{ losses: Record<string, number[]>; paused: string[]; statuses: string[] }> => {
      const losses: Record<string, number[]> = {};
      const paused: string[] = [];
      let evals = 0;
      let compare: CompareEngine | null = null;
      compare = new CompareEngine(publicFetch, (kind, data) => {
        if (kind === 'eval' && ++evals === 2 && fault) {
          // Both lanes evaluated before training: the first step of the race is next.
          freeReusableBuffers();
          limitGpuMemory(gpuBytes() + 16 * 1024);
        }
        if (kind === 'step') {
          const s = data as CompareEvents['step'];
          (losses[s.laneId] ??= [])[s.point.step - 1] = s.point.loss;
        }
        if (kind === 'status') {
          const st = data as CompareEvents['status'];
          if (st.phase === 'paused') {
            paused.push(st.message);
            limitGpuMemory(null);
            setTimeout(() => void compare!.resume(), 0);
          }
        }
      });
      await compare.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
      const snap = await compare.race({
        ...task,
        settings: { steps: 2, ...BIG, seed: 1, evalEvery: 0 },
        lanes: [{ method: 'lora' }, { method: 'ia3' }],
      });
      return { losses, paused, statuses: snap.lanes.map((l) => l.status) };
    };
    const want = await race(false);
    const got = await race(true);
    expect(got.paused).toHaveLength(1);
    expect(got.paused[0]).toMatch(
      /^paused: the LoRA lane ran out of memory \(the GPU could not allocate memory for a training step \(batch 2 x 16 tokens\).*\): lower the batch size \(now 2\), the sequence length \(now 16\)/,
    );
    expect(got.statuses).toEqual(['done', 'done']);
    expect(Object.keys(got.losses)).toEqual(Object.keys(want.losses));
    for (const [lane, ls] of Object.entries(want.losses)) {
      ls.forEach((w, i) => {
        const g = got.losses[lane]![i]!;
        expect(Math.abs(g - w) / Math.abs(w), `${lane} step ${i + 1}: ${g} vs ${w}`).toBeLessThan(1e-4);
      });
    }
  }, 600_000);
});
