import 'fake-indexeddb/auto';
import { describe, it, expect, beforeAll } from 'vitest';
import { initNodeBackend } from '../backend/node';
import { PeftLabError, StorageError } from '../errors';
import { blobUsage } from '../storage/blobs';
import { getAdapter, saveAdapterRecord } from '../storage/adapters';
import { LabEngine } from './lab-engine';
import type { LabEvents, TrainRequest } from '../protocol/lab-protocol';
import { methodRequest } from '../peft/method-config';
import { publicFetch } from './testing';

const REQ: TrainRequest = {
  method: 'lora',
  config: {},
  task: 'moby-dick',
  corpusUrl: 'data/moby-dick/',
  train: { steps: 6, lr: 5e-3, batchSize: 2, seqLen: 24, seed: 2, warmupSteps: 1, evalEvery: 3 },
};

describe('LabEngine with offload and checkpoints', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('trains at ZeRO stage 3 under a budget of one layer to the resident losses, and reports what moved', async () => {
    const losses = async (
      offload: TrainRequest['offload'],
    ): Promise<{ l: number[]; snaps: LabEvents['offload'][] }> => {
      const l: number[] = [];
      const snaps: LabEvents['offload'][] = [];
      const engine = new LabEngine(publicFetch, (kind, data) => {
        if (kind === 'progress') l.push((data as LabEvents['progress']).loss);
        if (kind === 'offload') snaps.push(data as LabEvents['offload']);
      });
      await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
      await engine.train({ ...REQ, offload });
      // The model is whole again afterwards: it answers.
      await engine.generate({
        prompt: 'Call me',
        maxNewTokens: 2,
        temperature: 0,
        seed: 0,
        useAdapter: true,
      });
      return { l, snaps };
    };
    const resident = await losses(undefined);
    const layer = 4 * (2 * 96 + 96 * 288 + 288 + 96 * 96 + 96 + 2 * 96 + 96 * 384 + 384 + 384 * 96 + 96);
    const paged = await losses({
      stage: 3,
      budgetMB: (1.5 * layer) / 2 ** 20,
      prefetch: true,
      policy: 'trace',
      int8: false,
      gradientCheckpointing: true,
    });
    expect(paged.l.length).toBe(6);
    for (let i = 0; i < 6; i++) expect(paged.l[i]).toBeCloseTo(resident.l[i]!, 4);
    const last = paged.snaps.at(-1)!;
    expect(last.stage).toBe(3);
    expect(last.layers.filter((x) => x === 'resident').length).toBeLessThanOrEqual(1);
    expect(last.layerBytes).toBeLessThanOrEqual(1.5 * layer);
    expect(last.pager!.pageIns).toBeGreaterThan(6);
    expect(last.optimizer!.pageOuts).toBeGreaterThanOrEqual(5); // the last write-out finishes after the step returns
  });

  // AdaLoRA's budget moves at every step here, so its resume needs the importance averages and pattern too.
  it.each([
    { method: 'lora', config: {} },
    { method: 'adalora', config: { initR: 6, targetR: 2, tinit: 1, tfinal: 1, deltaT: 1 } },
  ])(
    'writes checkpoints and resumes a $method run after a "reload" with the losses it would have had',
    async ({ method, config }) => {
      const REQ_M: TrainRequest = { ...REQ, ...methodRequest(method, config) };
      const run = async (req: TrainRequest, stopAt = Infinity): Promise<number[]> => {
        const l: number[] = [];
        const engine: LabEngine = new LabEngine(publicFetch, (kind, data) => {
          if (kind !== 'progress') return;
          l.push((data as LabEvents['progress']).loss);
          if (l.length >= stopAt) void engine.stop();
        });
        await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
        await engine.train(req);
        return l;
      };
      const whole = await run(REQ_M);
      const first = await run({ ...REQ_M, checkpoint: { runId: 'reload', every: 2 } }, 4);
      expect(first).toEqual(whole.slice(0, 4));
      const engine = new LabEngine(publicFetch);
      const list = await engine.checkpoints();
      expect(list.find((m) => m.runId === 'reload')).toMatchObject({ step: 4 });
      const rest = await run({ ...REQ_M, checkpoint: { runId: 'reload', every: 2 }, resume: true });
      expect(rest).toEqual(whole.slice(4));
      await engine.deleteCheckpoint({ runId: 'reload' });
      await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
      await expect(
        engine.train({ ...REQ_M, checkpoint: { runId: 'reload', every: 2 }, resume: true }),
      ).rejects.toThrow(PeftLabError);
    },
  );

  it('stage 2 pages the gradients summed between micro-batches and trains exactly as resident', async () => {
    const run = async (offload: TrainRequest['offload']) => {
      const l: number[] = [];
      const snaps: LabEvents['offload'][] = [];
      const engine = new LabEngine(publicFetch, (kind, data) => {
        if (kind === 'progress') l.push((data as LabEvents['progress']).loss);
        if (kind === 'offload') snaps.push(data as LabEvents['offload']);
      });
      await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
      const train = { ...REQ.train, steps: 3, gradAccumSteps: 3, maxGradNorm: 0.5 };
      await engine.train({ ...REQ, method: 'full', config: {}, train, offload });
      return { l, snaps, engine };
    };
    const resident = await run(undefined);
    const stage2 = await run({
      stage: 2,
      budgetMB: 1,
      prefetch: true,
      policy: 'trace',
      int8: false,
      gradientCheckpointing: false,
    });
    expect(stage2.l).toEqual(resident.l);
    const g = stage2.snaps.at(-1)!.gradients!;
    // Three micro-batches a step: the sum leaves twice and comes back twice; every value of the
    // model (a full fine-tune) moves each way.
    expect(g).toMatchObject({ pageOuts: 6, pageIns: 6 });
    expect(g.bytesOut).toBe(g.bytesIn);
    expect(g.bytesOut / 6).toBeGreaterThan(4 * 500_000);
    await expect(stage2.engine.train({ ...REQ, train: { ...REQ.train, gradAccumSteps: 0 } })).rejects.toThrow(
      /gradient accumulation must be a whole number of micro-batches from 1 to 256, got 0/,
    );
    await expect(stage2.engine.train({ ...REQ, train: { ...REQ.train, maxGradNorm: -1 } })).rejects.toThrow(
      /gradient clipping must be a norm of 0 \(off\) or more/,
    );
  });

  it('a full disk while paging layers fails the run with the room it needs, leaves no pages, and keeps what was saved', async () => {
    const engine = new LabEngine(publicFetch);
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const req = { prompt: 'Call me', maxNewTokens: 4, temperature: 0, seed: 0, useAdapter: false };
    const before = await engine.generate(req);
    const kept = {
      id: 'kept',
      name: 'kept',
      createdAt: 1,
      baseModel: 'peftlab-s',
      peftType: 'LORA' as const,
      taskType: 'CAUSAL_LM' as const,
      method: 'lora',
      trainableParams: 4,
      steps: 1,
      finalLoss: 1,
      configJson: '{}',
      weights: new Uint8Array([1, 2, 3, 4]).buffer,
      sizeBytes: 0,
    };
    await saveAdapterRecord(kept);
    // The disk fills once the first layer's record is written (a layer is one record).
    const realPut = IDBObjectStore.prototype.put;
    let puts = 0;
    IDBObjectStore.prototype.put = function (
      this: IDBObjectStore,
      ...args: Parameters<IDBObjectStore['put']>
    ) {
      if (++puts > 1) throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      return realPut.apply(this, args);
    };
    let err: unknown;
    try {
      err = await engine
        .train({
          ...REQ,
          offload: {
            stage: 3,
            budgetMB:
              (1.5 * 4 * (2 * 96 + 96 * 288 + 288 + 96 * 96 + 96 + 2 * 96 + 96 * 384 + 384 + 384 * 96 + 96)) /
              2 ** 20,
            prefetch: false,
            policy: 'trace',
            int8: false,
            gradientCheckpointing: false,
            device: 'indexeddb',
          },
        })
        .catch((e: unknown) => e);
    } finally {
      IDBObjectStore.prototype.put = realPut;
    }
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(
      /^storage is full to save "offload:layers\/.*", which needs \d+ KB: delete/,
    );
    // No page of the failed run is left taking space, the model is whole, the saved adapter intact.
    // (Pages an earlier, finished run left in another store are that run's, kept until the next run.)
    expect((await blobUsage('offload:layers')).filter((u) => u.bytes > 0)).toEqual([]);
    expect((await engine.generate(req)).generatedIds).toEqual(before.generatedIds);
    expect(new Uint8Array((await getAdapter('kept'))!.weights)).toEqual(new Uint8Array([1, 2, 3, 4]));
  });

  it('checkpoints by the clock when no step interval is set (everyMs), so long runs have one by default', async () => {
    const written: number[] = [];
    const engine = new LabEngine(publicFetch, (kind, data) => {
      if (kind === 'checkpoint') written.push((data as LabEvents['checkpoint']).step);
    });
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const train = { ...REQ.train, steps: 3, evalEvery: 0 };
    await engine.train({ ...REQ, train, checkpoint: { runId: 'timed', every: 0, everyMs: 0 } });
    expect(written).toEqual([1, 2, 3]);
    await engine.train({ ...REQ, train, checkpoint: { runId: 'timed-long', every: 0, everyMs: 3_600_000 } });
    expect(written).toEqual([1, 2, 3]);
    expect((await engine.checkpoints()).map((m) => m.runId)).not.toContain('timed-long');
    await engine.deleteCheckpoint({ runId: 'timed' });
  });
});
