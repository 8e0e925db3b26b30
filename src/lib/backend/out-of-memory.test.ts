/**
 * Out of memory, injected three ways through the real wasm backend: a tensor larger than a wasm
 * heap can ever hold, an allocator that returns 0 (what Emscripten's malloc does when the heap
 * cannot grow), and a heap ceiling that a real training run's batch passes. Each becomes
 * OutOfMemoryError at the allocation, tfjs keeps working afterwards, and the engines and the CLI
 * say what to lower.
 */
import 'fake-indexeddb/auto';
import { describe, it, expect, beforeAll, afterEach } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from './node';
import { guardMalloc, isOutOfMemory, limitWasmHeap, outOfMemoryAdvice } from './out-of-memory';
import { OutOfMemoryError, rebuildError, serializeError } from '../errors';
import { LabEngine } from '../engine/lab-engine';
import { CompareEngine } from '../engine/compare-engine';
import { publicFetch } from '../engine/testing';
import { Gpt2Model } from '../model/gpt2';
import { parseGpt2Config } from '../model/config';
import { lora } from '../peft/lora';
import { Trainer } from '../train/trainer';
import { runSteps } from '../../cli/run-steps';

const MIB = 1024 * 1024;

describe('out of memory', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });
  afterEach(() => limitWasmHeap(null));

  it('a tensor larger than the wasm heap can hold throws OutOfMemoryError, and tfjs goes on', async () => {
    const before = tf.memory().numTensors;
    // 2^30 floats = 4 GiB: past the 32-bit heap. Unguarded, tfjs would pass a size that wraps
    // around to 0 and write the tensor over the start of the heap.
    expect(() => tf.zeros([1024, 1024, 1024])).toThrow(OutOfMemoryError);
    expect(() => tf.zeros([1024, 1024, 1024])).toThrow(/4096 MiB does not fit in the wasm heap/);
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(await tf.add(tf.ones([3]), 1).data())).toEqual([2, 2, 2]);
  });

  it('an allocator that returns 0 (the heap could not grow) throws instead of handing out address 0', () => {
    let fail = false;
    const module = {
      HEAPU8: new Uint8Array(64 * MIB),
      _malloc: (n: number) => (fail ? 0 : n > 0 ? 1024 : 0),
    };
    guardMalloc(module);
    expect(module._malloc(16)).toBe(1024);
    fail = true;
    expect(() => module._malloc(32 * MIB)).toThrow(/wasm heap \(64 MiB\) could not grow by 32 MiB/);
    expect(module._malloc(0)).toBe(0); // a zero-byte request is not a failure
  });

  it('crosses the worker boundary as itself and recognises the runtime own out-of-memory errors', () => {
    const e = rebuildError(serializeError(new OutOfMemoryError('x')));
    expect(e).toBeInstanceOf(OutOfMemoryError);
    expect(isOutOfMemory(new RangeError('Array buffer allocation failed'))).toBe(true);
    expect(isOutOfMemory(new RangeError('WebAssembly.Memory.grow(): Maximum memory size exceeded'))).toBe(
      true,
    );
    expect(isOutOfMemory(Object.assign(new Error('no'), { name: 'GPUOutOfMemoryError' }))).toBe(true);
    expect(isOutOfMemory(new RangeError('Invalid array length'))).toBe(false);
    const other = new Error('boom');
    expect(outOfMemoryAdvice(other, 'training', { batchSize: 1, seqLen: 1 })).toBe(other);
  });

  it('the CLI training loop turns a batch past the heap limit into advice naming batch, length and model', async () => {
    const model = Gpt2Model.random(
      parseGpt2Config({ vocab_size: 40, n_positions: 64, n_embd: 16, n_layer: 1, n_head: 2 }),
      1,
    );
    const adapter = lora.create(model, lora.defaults('CAUSAL_LM'), 2);
    const stream = Int32Array.from({ length: 20000 }, (_, i) => (i * 7) % 40);
    const trainer = new Trainer(model, adapter, stream, {
      steps: 2,
      lr: 1e-3,
      batchSize: 64,
      seqLen: 64,
      seed: 1,
    });
    const baseline = tf.memory().numTensors;
    limitWasmHeap(tf.memory().numBytes + 2 * MIB);
    const err = await runSteps(trainer, 2).catch((e: unknown) => e);
    limitWasmHeap(null);
    expect(err).toBeInstanceOf(OutOfMemoryError);
    expect((err as Error).message).toMatch(
      /^training ran out of memory \(.*limit on the wasm heap\): lower the batch size \(now 64\), the sequence length \(now 64\), .*smaller model$/,
    );
    // Nothing the failed step made is left behind, and the same model trains at a smaller batch.
    expect(tf.memory().numTensors).toBe(baseline);
    const small = new Trainer(model, adapter, stream, {
      steps: 1,
      lr: 1e-3,
      batchSize: 2,
      seqLen: 8,
      seed: 1,
    });
    const st = await small.trainStep();
    expect(Number.isFinite(st.loss)).toBe(true);
    small.dispose();
    adapter.dispose();
    model.dispose();
  });

  it('the Lab and Compare engines name what to lower, and train again once it is lowered', async () => {
    const lab = new LabEngine(publicFetch);
    await lab.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const train = { steps: 2, lr: 1e-3, batchSize: 32, seqLen: 64, seed: 1, warmupSteps: 0, evalEvery: 0 };
    const req = { method: 'lora' as const, config: { r: 4 }, corpusUrl: 'data/moby-dick/' };
    limitWasmHeap(tf.memory().numBytes + 4 * MIB);
    const err = await lab.train({ ...req, train }).catch((e: unknown) => e);
    limitWasmHeap(null);
    expect(err).toBeInstanceOf(OutOfMemoryError);
    expect((err as Error).message).toMatch(
      /lower the batch size \(now 32\), the sequence length \(now 64\), .*smaller than peftlab-s$/,
    );
    const ok = await lab.train({ ...req, train: { ...train, batchSize: 2, seqLen: 16 } });
    expect(ok.steps).toBe(2);

    const compare = new CompareEngine(publicFetch);
    await compare.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    limitWasmHeap(tf.memory().numBytes + 4 * MIB);
    const raced = await compare
      .race({
        task: 'moby-dick',
        corpusUrl: 'data/moby-dick/',
        settings: { steps: 2, batchSize: 32, seqLen: 64, seed: 1, evalEvery: 0 },
        lanes: [{ method: 'lora' }],
      })
      .catch((e: unknown) => e);
    limitWasmHeap(null);
    expect(raced).toBeInstanceOf(OutOfMemoryError);
    expect((raced as Error).message).toMatch(/^the race ran out of memory .*lower the batch size \(now 32\)/);
  });
});
