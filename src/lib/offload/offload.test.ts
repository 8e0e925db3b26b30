import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import { Gpt2Model } from '../model/gpt2';
import type { Gpt2Config } from '../model/config';
import { METHOD_INFO } from '../peft/catalog';
import { methodByCliName } from '../peft/registry';
import type { Adapter } from '../peft/types';
import type { TaskType } from '../data/tasks/registry';
import { headFor } from '../peft/task-head';
import { Rng } from '../util/rng';
import { Trainer, lmBatchSource } from '../train/trainer';
import type { BatchSource } from '../train/trainer';
import { clsBatchSource } from '../train/classification';
import type { EncodedSet } from '../data/cls-data';
import { LayerPager, dequantizeInt8, quantizeInt8 } from './layer-pager';
import { layerwiseGradientFn, layerwiseGradients } from './layerwise';
import { MemoryPageStore } from './page-store';
import { FilePageStore } from './file-page-store';
import { OptimizerPager } from './optimizer-pager';
import { OffloadSession } from './session';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CONFIG: Gpt2Config = {
  vocabSize: 61,
  nPositions: 40,
  nEmbd: 16,
  nLayer: 3,
  nHead: 2,
  nInner: 64,
  layerNormEpsilon: 1e-5,
  bosTokenId: 0,
  eosTokenId: 0,
};
const TOKENS = Int32Array.from({ length: 3000 }, (_, i) => (i * 7 + ((i * i) % 13)) % CONFIG.vocabSize);

function clsSet(task: 'SEQ_CLS' | 'TOKEN_CLS'): EncodedSet {
  const rng = new Rng(5);
  return {
    task,
    padId: 0,
    examples: Array.from({ length: 20 }, () => {
      const n = 3 + Math.floor(rng.next() * 6);
      const ids = Array.from({ length: n }, () => 1 + Math.floor(rng.next() * 59));
      return { ids, label: task === 'SEQ_CLS' ? ids[0]! % 3 : ids.map((t) => t % 3) };
    }),
  };
}

function build(
  model: Gpt2Model,
  method: string,
  taskType: TaskType,
  extra: Record<string, unknown> = {},
): Adapter {
  const m = methodByCliName(method);
  const cfg = { ...m.defaults(taskType), totalStep: 20, loraDropout: 0.1, ...extra };
  const adapter = m.create(model, cfg as never, 3, {
    tokenize: (t) => [...t].map((c) => c.charCodeAt(0) % 60),
  });
  if (taskType !== 'CAUSAL_LM') adapter.attachHead!(headFor(model, adapter.config, taskType, 3, 4));
  return adapter;
}

function source(taskType: TaskType): BatchSource {
  return taskType === 'CAUSAL_LM' ? lmBatchSource(TOKENS, 12) : clsBatchSource(clsSet(taskType));
}

let model: Gpt2Model;
beforeAll(async () => {
  await initNodeBackend('wasm');
  model = Gpt2Model.random(CONFIG, 7);
});

const CASES = METHOD_INFO.flatMap((m) => m.taskTypes.map((t) => [m.cliName, t] as [string, TaskType])).concat(
  [
    ['prefix-tuning', 'CAUSAL_LM'],
    ['p-tuning', 'SEQ_CLS'],
  ],
);
const EXTRA: Record<string, Record<string, unknown>> = {
  'prefix-tuning': { prefixProjection: true, encoderHiddenSize: 8 },
  'p-tuning': { encoderReparameterizationType: 'LSTM', encoderHiddenSize: 8 },
};

describe('layer-by-layer gradients (gradient checkpointing)', () => {
  it.each(CASES.map(([m, t], i) => [m, t, i >= CASES.length - 2]))(
    '%s on %s equal the one-tape gradients',
    async (method, taskType, variant) => {
      const adapter = build(
        model,
        method as string,
        taskType as TaskType,
        variant ? EXTRA[method as string] : {},
      );
      const vars = [...adapter.trainable().values()];
      const [mb] = source(taskType as TaskType).draw(new Rng(9), 4, 1);
      // The one-tape pass first: it builds the model's cached wte^T, which stays.
      const ref = tf.variableGrads(() => mb!.loss(model, adapter, true, 11), vars);
      const before = tf.memory().numTensors;
      const got = await layerwiseGradients(model, adapter, mb!, vars, 11, null);
      expect(Object.keys(got.grads).sort()).toEqual(Object.keys(ref.grads).sort());
      expect(await got.value.data()).toEqual(await ref.value.data());
      for (const [k, g] of Object.entries(ref.grads)) {
        const a = await g.data();
        const b = await got.grads[k]!.data();
        const scale = Math.max(1e-6, ...Array.from(a, Math.abs));
        let worst = 0;
        for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j]! - b[j]!) / scale);
        expect(worst, k).toBeLessThan(1e-4);
      }
      tf.dispose([got.value, ...Object.values(got.grads)]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([ref.value, ...Object.values(ref.grads)]);
      adapter.dispose();
    },
  );
});

describe('ZeRO-1 optimizer offload', () => {
  it.each([
    ['memory', () => new MemoryPageStore()],
    ['files', () => new FilePageStore(mkdtempSync(join(tmpdir(), 'peft-lab-optim-')))],
  ] as const)(
    'moves AdamW state out between steps (%s) and trains exactly as resident',
    async (_n, makeStore) => {
      const losses = async (paged: boolean): Promise<{ losses: number[]; pager: OptimizerPager | null }> => {
        const adapter = build(model, 'lora', 'CAUSAL_LM');
        const trainer = new Trainer(model, adapter, TOKENS, {
          steps: 5,
          lr: 1e-2,
          batchSize: 2,
          seqLen: 12,
          seed: 2,
        });
        const shapes = new Map([...adapter.trainable()].map(([k, v]) => [k, v.shape]));
        const pager = paged ? new OptimizerPager(trainer.optimizer, makeStore(), shapes) : null;
        trainer.optimizerPaging = pager;
        const out: number[] = [];
        try {
          for (let i = 0; i < 5; i++) {
            out.push((await trainer.trainStep()).loss);
            if (pager) {
              await pager.pageIn().then(() => pager.pageOut()); // settle the write, as between steps
              expect(trainer.optimizer.bytes()).toBe(0);
            }
          }
        } finally {
          trainer.dispose();
          adapter.dispose();
        }
        return { losses: out, pager };
      };
      const resident = await losses(false);
      const paged = await losses(true);
      expect(paged.losses).toEqual(resident.losses);
      const lora = 3 * (16 * 8 + 8 * 48); // A and B of each layer's c_attn, r 8
      expect(paged.pager!.stats.bytesOut).toBe(2 * 4 * lora * 10); // m and v, 5 steps + 5 settles
    },
  );
});

describe('ZeRO-3 paging of the frozen layers', () => {
  async function run(pager: LayerPager | null, steps: number): Promise<number[]> {
    const adapter = build(model, 'lora', 'CAUSAL_LM');
    const trainer = new Trainer(model, adapter, TOKENS, {
      steps,
      lr: 1e-2,
      batchSize: 2,
      seqLen: 12,
      seed: 1,
      gradients: layerwiseGradientFn(model, adapter, pager),
    });
    const losses: number[] = [];
    for (let s = 0; s < steps; s++) losses.push((await trainer.trainStep()).loss);
    trainer.dispose();
    adapter.dispose();
    return losses;
  }

  async function oneTape(steps: number): Promise<number[]> {
    const adapter = build(model, 'lora', 'CAUSAL_LM');
    const trainer = new Trainer(model, adapter, TOKENS, {
      steps,
      lr: 1e-2,
      batchSize: 2,
      seqLen: 12,
      seed: 1,
    });
    const losses: number[] = [];
    for (let s = 0; s < steps; s++) losses.push((await trainer.trainStep()).loss);
    trainer.dispose();
    adapter.dispose();
    return losses;
  }

  const layerBytes = 4 * (2 * 16 + 16 * 48 + 48 + 16 * 16 + 16 + 2 * 16 + 16 * 64 + 64 + 64 * 16 + 16);

  async function paged(
    budgetLayers: number,
    policy: 'trace' | 'lru',
    prefetch: boolean,
  ): Promise<LayerPager['stats']> {
    const reference = await oneTape(4);
    const pager = await LayerPager.create(model, new MemoryPageStore(), {
      budgetBytes: budgetLayers * layerBytes,
      policy,
      prefetch,
    });
    expect(pager.residentBytes).toBe(0);
    expect(model.weights.has('h.0.attn.c_attn.weight')).toBe(false);
    try {
      const losses = await run(pager, 4);
      for (let i = 0; i < 4; i++) expect(losses[i]).toBeCloseTo(reference[i]!, 5);
      expect(pager.stats.peakResidentBytes).toBeLessThanOrEqual(budgetLayers * layerBytes);
    } finally {
      await pager.restore();
    }
    expect(model.weights.has('h.0.attn.c_attn.weight')).toBe(true);
    // Resident again: the same run without the pager.
    const again = await run(null, 4);
    for (let i = 0; i < 4; i++) expect(again[i]).toBeCloseTo(reference[i]!, 5);
    return pager.stats;
  }

  it('trains LoRA exactly as the resident model with room for one layer, paging on demand', async () => {
    const stats = await paged(1.5, 'lru', false);
    // Per step the layers are needed 0 1 2 1 0 (the last layer's forward and backward share one
    // tape); with room for one, every access but (after the first step) the first pages in:
    // 5 + 3 x 4 misses, 3 hits, and restore() pages in the two layers not resident at the end.
    expect(stats).toMatchObject({ misses: 17, prefetchHits: 3, pageIns: 19 });
  });

  it('with room for two layers, prefetch along the trace finds more layers ready than on demand', async () => {
    const ahead = await paged(2.5, 'trace', true);
    const onDemand = await paged(2.5, 'lru', false);
    expect(ahead.prefetchHits).toBeGreaterThan(onDemand.prefetchHits);
    expect(ahead.misses).toBeLessThan(onDemand.misses);
  });

  it('int8 pages: fewer bytes moved, and a LoRA loss curve within 1% of float32', async () => {
    const reference = await oneTape(4);
    const pagedRun = async (int8: boolean) => {
      const p = await LayerPager.create(model, new MemoryPageStore(), {
        budgetBytes: 1.5 * layerBytes,
        policy: 'lru',
        prefetch: false,
        int8,
      });
      try {
        const losses = await run(p, 4);
        return { losses, stats: { ...p.stats } };
      } finally {
        await p.restore();
      }
    };
    const f32 = (await pagedRun(false)).stats;
    const { losses, stats } = await pagedRun(true);
    for (let i = 0; i < 4; i++)
      expect(Math.abs(losses[i]! - reference[i]!) / reference[i]!).toBeLessThan(0.01);
    expect(losses).not.toEqual(reference); // the weights really were rounded
    // ... and restore() put the float32 originals back: the base is exactly what it was.
    expect(await oneTape(4)).toEqual(reference);
    // Per layer: the four matrices as int8 plus a float32 scale per column, the six vectors as
    // float32; on this narrow model the scales and vectors keep it above a quarter.
    const int8Layer = 16 * 48 + 4 * 48 + (16 * 16 + 4 * 16) + (16 * 64 + 4 * 64) + (64 * 16 + 4 * 16);
    const vectors = 4 * (2 * 16 + 48 + 16 + 2 * 16 + 64 + 16);
    expect(stats.pageIns).toBe(f32.pageIns);
    expect(stats.bytesIn / f32.bytesIn).toBeCloseTo((int8Layer + vectors) / layerBytes, 10);
  });

  it('reads int8 records ahead along the trace, nearest first and one at a time, within the budget', async () => {
    /** Pages in memory that take a moment to read, with every read logged and the most at once counted. */
    class SlowStore extends MemoryPageStore {
      readonly reads: string[] = [];
      private inFlight = 0;
      mostAtOnce = 0;
      override async get(key: string): Promise<Uint8Array> {
        this.reads.push(key);
        this.mostAtOnce = Math.max(this.mostAtOnce, ++this.inFlight);
        await new Promise((r) => setTimeout(r, 2));
        try {
          return await super.get(key);
        } finally {
          this.inFlight--;
        }
      }
    }
    const pagedRun = async (prefetch: boolean) => {
      const store = new SlowStore();
      // Room for one float32 layer and one int8 record (about a third of a layer here), not two.
      const p = await LayerPager.create(model, store, {
        budgetBytes: 1.5 * layerBytes,
        policy: 'trace',
        prefetch,
        int8: true,
      });
      try {
        const losses = await run(p, 4);
        return { losses, stats: { ...p.stats }, store };
      } finally {
        await p.restore();
      }
    };
    const ahead = await pagedRun(true);
    const onDemand = await pagedRun(false);
    expect(ahead.losses).toEqual(onDemand.losses); // reading ahead changes when, never what
    const layers = ahead.store.reads
      .filter((k) => !k.includes('/f32/'))
      .map((k) => Number(/h\.(\d+)#/.exec(k)![1]));
    // Step 1 records the trace 0 1 2 1 0 on demand. From then on layer 0 is still resident when a
    // step starts, and each later layer's record is read while the one before computes: 1 (at the end
    // of the step before), 2, 1, 0; the last step reads the next one's layer 1 too.
    expect(layers).toEqual([0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1]);
    expect(ahead.stats.readAheadHits).toBe(12);
    expect(onDemand.stats.readAheadHits).toBe(0);
    expect(ahead.store.mostAtOnce).toBe(1);
    expect(ahead.stats.peakHeldBytes).toBeLessThanOrEqual(1.5 * layerBytes);
    expect(ahead.stats.peakHeldBytes).toBeGreaterThan(ahead.stats.peakResidentBytes);
    expect(onDemand.stats.peakHeldBytes).toBe(onDemand.stats.peakResidentBytes);
  });

  it.each([
    ['indexeddb', 'auto', true],
    ['memory', 'auto', false],
    ['indexeddb', false, false],
    ['memory', true, true],
  ] as const)('pages read from %s, int8 %s: int8 pages %s', async (device, choice, int8) => {
    const adapter = build(model, 'lora', 'CAUSAL_LM');
    const layers = new MemoryPageStore();
    const session = await OffloadSession.start(
      model,
      adapter,
      {
        stage: 3,
        budgetMB: (1.5 * layerBytes) / 2 ** 20,
        prefetch: true,
        policy: 'trace',
        int8: choice,
        gradientCheckpointing: false,
        device,
      },
      async (kind) => (kind === 'layers' ? layers : new MemoryPageStore()),
    );
    // int8 keeps a record of the float32 originals beside each layer's record, for restore.
    expect(layers.size).toBe(int8 ? 6 : 3);
    expect(session.notes.some((n) => n.startsWith('int8 pages, chosen automatically'))).toBe(
      choice === 'auto' && int8,
    );
    await session.end();
    adapter.dispose();
  });

  it('int8 rounding is within half a step of each output channel', () => {
    const rows = 5;
    const cols = 3;
    const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * (1 + (i % cols)));
    const back = dequantizeInt8(quantizeInt8(w, rows, cols), rows, cols);
    for (let j = 0; j < cols; j++) {
      let max = 0;
      for (let i = 0; i < rows; i++) max = Math.max(max, Math.abs(w[i * cols + j]!));
      for (let i = 0; i < rows; i++) {
        expect(Math.abs(back[i * cols + j]! - w[i * cols + j]!)).toBeLessThanOrEqual(max / 127 / 2 + 1e-7);
      }
    }
    expect(Array.from(dequantizeInt8(quantizeInt8(new Float32Array(4), 2, 2), 2, 2))).toEqual([0, 0, 0, 0]);
  });

  it('refuses a budget below one layer and trainable base weights', async () => {
    await expect(
      LayerPager.create(model, new MemoryPageStore(), {
        budgetBytes: layerBytes - 4,
        policy: 'trace',
        prefetch: true,
      }),
    ).rejects.toThrow(/cannot hold one layer/);
    const full = build(model, 'full', 'CAUSAL_LM');
    await expect(
      LayerPager.create(model, new MemoryPageStore(), { budgetBytes: 1e9, policy: 'trace', prefetch: true }),
    ).rejects.toThrow(/trains, and this pager moves frozen weights only/);
    full.dispose();
  });
});
