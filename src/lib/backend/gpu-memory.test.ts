/**
 * Out of GPU memory on WebGPU (issue 17), injected in Node on Dawn + SwiftShader: the device's
 * createBuffer is wrapped so that past a ceiling it does what a device out of memory does (an
 * unusable buffer, a GPUOutOfMemoryError dispatched as 'uncapturederror'; tfjs goes on as if
 * nothing happened). The step throws OutOfMemoryError before the optimizer touches anything, the
 * run is exactly as it was, and the CLI's loop says what to lower. Skips without an adapter, fails
 * in CI (kernels/webgpu/testing.ts).
 */
import { describe, it, expect, beforeAll, afterEach } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadGpt2 } from '../model/load';
import { METHODS } from '../peft/registry';
import type { PeftConfigBase } from '../peft/types';
import { Trainer } from '../train/trainer';
import { saveCheckpoint } from '../train/checkpoint';
import { webgpuForTests } from '../kernels/webgpu/testing';
import { OutOfMemoryError } from '../errors';
import { freeReusableBuffers, limitGpuMemory } from './gpu-memory';
import { runSteps } from '../../cli/run-steps';

const FIX = join(import.meta.dirname, '../model/fixtures/tiny-gpt2');
const STREAM = Int32Array.from({ length: 600 }, (_, i) => (i * 7 + (i >> 3)) % 97);
const KIB = 1024;

function build(batchSize = 4, seqLen = 16): { trainer: Trainer; dispose(): void } {
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
    batchSize,
    seqLen,
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

/** Bytes of GPU buffers tfjs holds now (in use and kept for reuse). */
function gpuBytes(): number {
  return (tf.backend() as unknown as { bufferManager: { numBytesAllocated: number } }).bufferManager
    .numBytesAllocated;
}

/** A ceiling just above what is held now, after the pool of reusable buffers is emptied: the next step must allocate and cannot. */
function tightenGpu(): void {
  freeReusableBuffers();
  limitGpuMemory(gpuBytes() + 16 * KIB);
}

const gpu = await webgpuForTests();

describe.skipIf(!gpu)('out of GPU memory on WebGPU', () => {
  beforeAll(async () => {
    await tf.setBackend('webgpu');
  });
  afterEach(() => limitGpuMemory(null));

  it('a step that cannot get its buffers throws OutOfMemoryError and leaves the run as it was; with room again it goes on as an uninterrupted run', async () => {
    const ref = build();
    const want: number[] = [];
    for (let s = 0; s < 3; s++) want.push((await ref.trainer.trainStep()).loss);
    ref.dispose();

    const parts = build();
    const { trainer } = parts;
    const got = [(await trainer.trainStep()).loss];
    const before = await saveCheckpoint(trainer);
    const tensors = tf.memory().numTensors;
    tightenGpu();
    const err = await trainer.trainStep().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutOfMemoryError);
    expect((err as Error).message).toMatch(
      /^the GPU could not allocate memory for a training step \(batch 4 x 16 tokens\) \(a buffer of .* MiB would pass the .* MiB on the GPU device/,
    );
    // Nothing the failed step made is left, and the run's state (weights, moments, step, batch
    // generator) is byte for byte what it was.
    expect(tf.memory().numTensors).toBe(tensors);
    const after = await saveCheckpoint(trainer);
    expect(after.state).toBe(before.state);
    expect(Buffer.from(after.tensors).equals(Buffer.from(before.tensors))).toBe(true);
    expect(trainer.step).toBe(1);

    // Failing twice in a row does not make it worse.
    tightenGpu();
    await expect(trainer.trainStep()).rejects.toThrow(OutOfMemoryError);
    limitGpuMemory(null);
    while (trainer.step < 3) got.push((await trainer.trainStep()).loss);
    got.forEach((g, i) => {
      expect(Math.abs(g - want[i]!) / want[i]!, `step ${i + 1}: ${g} vs ${want[i]}`).toBeLessThan(1e-4);
    });
    expect(want[2]).not.toBe(want[0]);
    parts.dispose();
  }, 300_000);

  it('the CLI training loop names what to lower, and a lowered batch and length train under the same ceiling', async () => {
    const model = loadGpt2({
      config: JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')),
      weights: new Uint8Array(readFileSync(join(FIX, 'model.safetensors'))),
    });
    const m = METHODS.lora!;
    const adapter = m.create(
      model,
      { ...m.defaults('CAUSAL_LM'), r: 4, loraDropout: 0 } as PeftConfigBase,
      7,
    );
    const trainer = (batchSize: number, seqLen: number): Trainer =>
      new Trainer(model, adapter, STREAM, { steps: 2, lr: 1e-2, batchSize, seqLen, seed: 11 });
    // What a step of batch 4 x 16 tokens holds on the GPU (its buffers stay in tfjs's pool after it),
    // and a device with room for twice that: a step of 8 x 32 needs several times more. 4 x 16 is
    // the first test's shape, whose shaders SwiftShader has compiled already (tens of seconds a shape).
    freeReusableBuffers();
    const base = gpuBytes();
    await runSteps(trainer(4, 16), 1);
    const need = gpuBytes() - base;
    freeReusableBuffers();
    limitGpuMemory(gpuBytes() + 2 * need);
    const err = await runSteps(trainer(8, 32), 2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutOfMemoryError);
    expect((err as Error).message).toMatch(
      /^training ran out of memory \(the GPU could not allocate memory for a training step \(batch 8 x 32 tokens\).*\): lower the batch size \(now 8\), the sequence length \(now 32\), .*smaller model$/,
    );
    const lowered = await runSteps(trainer(4, 16), 2);
    expect(Number.isFinite(lowered.last)).toBe(true);
    adapter.dispose();
    model.dispose();
  }, 300_000);
});
