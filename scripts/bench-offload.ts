/**
 * `npm run bench:offload`: what offload costs, on tfjs wasm in this Node process, one run, side by
 * side. LoRA (r 8 on c_attn) on Moby-Dick windows; per configuration one untimed step (it records
 * the prefetch trace), then --steps timed ones; the median step is reported.
 *
 *   resident, one tape              stage 0: the ordinary trainer
 *   resident, checkpointed          gradient checkpointing: layers recomputed in the backward
 *   stage 3 at 1/2, 1/4, 1/8        the frozen layers paged under a budget of that share of their
 *                                   bytes, from memory or from files, with prefetch along the trace
 *                                   and trace eviction, or on demand with LRU
 * Budgets under one layer are refused by the pager and reported as such.
 *
 *   --model DIR (public/models/peftlab-l)  --batch N (8)  --seq N (64)  --steps N (4)
 *   --gpt2-small (also a random model of GPT-2 small's shape, batch 1 x 32, 2 steps, budget 1/4)
 *   --json FILE
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initNodeBackend } from '../src/lib/backend/node';
import { Gpt2Model } from '../src/lib/model/gpt2';
import { parseGpt2Config } from '../src/lib/model/config';
import { GPT2_SMALL_CONFIG } from './bench/gpt2-small';
import { loadModelFolder } from '../src/lib/model/folder';
import { requireGpt2 } from '../src/lib/model/decoder';
import { methodByCliName } from '../src/lib/peft/registry';
import { FilePageStore } from '../src/lib/offload/file-page-store';
import { LayerPager } from '../src/lib/offload/layer-pager';
import type { EvictionPolicy, PagerStats } from '../src/lib/offload/layer-pager';
import { layerwiseGradientFn } from '../src/lib/offload/layerwise';
import { MemoryPageStore } from '../src/lib/offload/page-store';
import type { PageStore } from '../src/lib/offload/page-store';
import { Trainer } from '../src/lib/train/trainer';

const { values: flags } = parseArgs({
  options: {
    model: { type: 'string', default: 'public/models/peftlab-l' },
    batch: { type: 'string', default: '8' },
    seq: { type: 'string', default: '64' },
    steps: { type: 'string', default: '4' },
    'gpt2-small': { type: 'boolean' },
    json: { type: 'string' },
  },
});

interface Row {
  model: string;
  config: string;
  store: string;
  budget: string;
  msPerStep: number | null;
  tokensPerSec: number | null;
  /** tf.profile's peak during one step, above the bytes resident before it. */
  stepPeakBytes: number | null;
  stallMsPerStep: number | null;
  /** Loss of the last timed step (every configuration sees the same batches). */
  lastLoss: number | null;
  hits: number | null;
  misses: number | null;
  note: string;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function measure(
  label: string,
  model: Gpt2Model,
  tokens: Int32Array,
  shape: { batch: number; seq: number; steps: number },
  mode: { layerwise: boolean; pager?: LayerPager },
): Promise<{ ms: number; tps: number; peak: number; loss: number }> {
  const lora = methodByCliName('lora');
  const adapter = lora.create(model, lora.defaults('CAUSAL_LM') as never, 1, {});
  const trainer = new Trainer(model, adapter, tokens, {
    steps: shape.steps + 2,
    lr: 3e-3,
    batchSize: shape.batch,
    seqLen: shape.seq,
    seed: 1,
    gradients: mode.layerwise ? layerwiseGradientFn(model, adapter, mode.pager ?? null) : undefined,
  });
  try {
    await trainer.trainStep(); // warm-up; records the trace
    const before = tf.memory().numBytes;
    const prof = await tf.profile(async () => void (await trainer.trainStep()));
    const ms: number[] = [];
    let loss = NaN;
    for (let s = 0; s < shape.steps; s++) {
      const st = await trainer.trainStep();
      ms.push(st.ms);
      loss = st.loss;
    }
    const m = median(ms);
    process.stderr.write(`${label}: ${m.toFixed(0)} ms/step\n`);
    return { ms: m, tps: (1000 * shape.batch * shape.seq) / m, peak: prof.peakBytes - before, loss };
  } finally {
    trainer.dispose();
    adapter.dispose();
  }
}

function layerBytes(model: Gpt2Model): number {
  let n = 0;
  for (const [name, v] of model.weights) if (/^h\.\d+\./.test(name)) n += 4 * v.size;
  return n;
}

async function benchModel(
  name: string,
  model: Gpt2Model,
  tokens: Int32Array,
  shape: { batch: number; seq: number; steps: number },
  budgets: [string, number][],
  stores: [string, () => PageStore][],
): Promise<Row[]> {
  const rows: Row[] = [];
  const base = {
    model: name,
    store: '-',
    budget: 'all',
    stallMsPerStep: null,
    hits: null,
    misses: null,
    note: '',
  };
  const one = await measure(`${name} resident one tape`, model, tokens, shape, { layerwise: false });
  rows.push({
    ...base,
    config: 'resident, one tape (stage 0)',
    msPerStep: one.ms,
    tokensPerSec: one.tps,
    stepPeakBytes: one.peak,
    lastLoss: one.loss,
  });
  const ck = await measure(`${name} resident checkpointed`, model, tokens, shape, { layerwise: true });
  rows.push({
    ...base,
    config: 'resident, checkpointed',
    msPerStep: ck.ms,
    tokensPerSec: ck.tps,
    stepPeakBytes: ck.peak,
    lastLoss: ck.loss,
  });
  const total = layerBytes(model);
  for (const [budgetName, share] of budgets) {
    for (const [storeName, makeStore] of stores) {
      for (const [cfg, policy, prefetch, int8] of [
        ['stage 3, prefetch + trace eviction', 'trace', true, false],
        ['stage 3, on demand + LRU', 'lru', false, false],
        ['stage 3, int8 pages, prefetch + trace', 'trace', true, true],
      ] as [string, EvictionPolicy, boolean, boolean][]) {
        const row: Row = {
          ...base,
          config: cfg,
          store: storeName,
          budget: budgetName,
          msPerStep: null,
          tokensPerSec: null,
          stepPeakBytes: null,
          lastLoss: null,
        };
        let pager: LayerPager | null = null;
        try {
          pager = await LayerPager.create(model, makeStore(), {
            budgetBytes: share * total,
            int8,
            policy,
            prefetch,
          });
          const r = await measure(`${name} ${cfg} ${storeName} ${budgetName}`, model, tokens, shape, {
            layerwise: true,
            pager,
          });
          const steps = shape.steps + 2;
          const s: PagerStats = pager.stats;
          Object.assign(row, {
            msPerStep: r.ms,
            tokensPerSec: r.tps,
            stepPeakBytes: r.peak,
            lastLoss: r.loss,
            stallMsPerStep: s.stallMs / steps,
            hits: s.prefetchHits,
            misses: s.misses,
          });
        } catch (e) {
          row.note = (e as Error).message.split(':')[0]!;
        } finally {
          await pager?.restore();
        }
        rows.push(row);
      }
    }
  }
  return rows;
}

function table(rows: Row[]): string {
  const resident = new Map(
    rows.filter((r) => r.config.startsWith('resident, one')).map((r) => [r.model, r.tokensPerSec!]),
  );
  const f = (x: number | null, d = 0): string => (x === null ? '-' : x.toFixed(d));
  const head =
    '| model | configuration | store | budget | ms/step | tokens/s | vs resident | step peak MiB | stall ms/step | hits / misses | last loss | note |';
  const lines = rows.map((r) => {
    const vs =
      r.tokensPerSec === null ? '-' : `${((100 * r.tokensPerSec) / resident.get(r.model)!).toFixed(0)}%`;
    const peak = r.stepPeakBytes === null ? '-' : (r.stepPeakBytes / 2 ** 20).toFixed(1);
    const hm = r.hits === null ? '-' : `${r.hits} / ${r.misses}`;
    return `| ${r.model} | ${r.config} | ${r.store} | ${r.budget} | ${f(r.msPerStep)} | ${f(r.tokensPerSec)} | ${vs} | ${peak} | ${f(r.stallMsPerStep, 1)} | ${hm} | ${f(r.lastLoss, 4)} | ${r.note} |`;
  });
  return [head, head.replace(/[^|]/g, '-'), ...lines].join('\n');
}

async function main(): Promise<void> {
  await initNodeBackend('wasm');
  const shape = { batch: Number(flags.batch), seq: Number(flags.seq), steps: Number(flags.steps) };
  const dir = flags.model!;
  const loaded = loadModelFolder({
    config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(dir, 'model.safetensors'))),
    source: dir,
    tokenizerJson: JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')),
  });
  const text = readFileSync('public/data/moby-dick/train.txt', 'utf8').slice(0, 400_000);
  const tokens = Int32Array.from(loaded.tokenizer!.encode(text));
  const tmp = mkdtempSync(join(tmpdir(), 'peft-lab-offload-'));
  const stores: [string, () => PageStore][] = [
    ['memory', () => new MemoryPageStore()],
    ['files', () => new FilePageStore(join(tmp, String(Math.random()).slice(2)))],
  ];
  const budgets: [string, number][] = [
    ['1/2', 1 / 2],
    ['1/4', 1 / 4],
    ['1/8', 1 / 8],
  ];
  const rows: Row[] = [];
  try {
    rows.push(
      ...(await benchModel(
        dir.split('/').pop()!,
        requireGpt2(loaded.model, 'The offload bench'),
        tokens,
        shape,
        budgets,
        stores,
      )),
    );
    loaded.model.dispose();
    if (flags['gpt2-small']) {
      const c = parseGpt2Config(GPT2_SMALL_CONFIG, 'GPT-2 small config');
      const big = Gpt2Model.random(c, 1);
      const ids = Int32Array.from({ length: 20_000 }, (_, i) => (i * 7919) % c.vocabSize);
      rows.push(
        ...(await benchModel(
          'gpt2-small shape',
          big,
          ids,
          { batch: 1, seq: 32, steps: 2 },
          [['1/4', 1 / 4]],
          stores.slice(1),
        )),
      );
      big.dispose();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const header = `wasm in Node ${process.version}, ${cpus().length} cores, load ${loadavg()[0]!.toFixed(2)}; LoRA r 8 on c_attn; batch ${shape.batch} x ${shape.seq}; median of ${shape.steps} steps after one untimed step`;
  console.log(`${header}\n\n${table(rows)}`);
  if (flags.json) writeFileSync(flags.json, JSON.stringify({ header, rows }, null, 1));
}

void main();
