/**
 * `npm run soak` (not in CI): the Lab's and Compare's engines, in one Node process on tfjs wasm, doing
 * what a long session does, over and over: train an adapter (LoRA and IA3 by turns), save it to
 * IndexedDB (fake-indexeddb) and read it back, load it onto the model, generate with it, drop it,
 * then race two methods in Compare and try every lane. After each cycle it samples tfjs's tensors
 * and bytes and the process's heap, prints them as a table row, and at the end fails when tensors
 * grew after warm-up or the heap grew by more than the bound.
 *   npm run soak -- [--minutes 30] [--warmup 2] [--heap-growth-mib 64]
 * Runs with --expose-gc (see package.json), so each heap sample is taken after a full collection.
 */
import 'fake-indexeddb/auto';
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { initNodeBackend } from '../src/lib/backend/node';
import { CompareEngine } from '../src/lib/engine/compare-engine';
import { LabEngine } from '../src/lib/engine/lab-engine';
import { publicFetch } from '../src/lib/engine/testing';
import { deleteAdapter, getAdapter, saveAdapterRecord } from '../src/lib/storage/adapters';
import { DEFAULT_DB_NAME } from '../src/lib/storage/db';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '2' },
    'heap-growth-mib': { type: 'string', default: '64' },
  },
});
const minutes = Number(values.minutes);
const warmup = Number(values.warmup);
const heapBoundMiB = Number(values['heap-growth-mib']);
if (!(minutes > 0) || !Number.isInteger(warmup) || warmup < 2 || !(heapBoundMiB > 0)) {
  console.error('usage: npm run soak -- [--minutes N] [--warmup CYCLES (2 or more)] [--heap-growth-mib N]');
  process.exit(2);
}

interface Sample {
  cycle: number;
  elapsedS: number;
  cycleS: number;
  numTensors: number;
  tensorMiB: number;
  heapMiB: number;
  rssMiB: number;
  externalMiB: number;
  loss: number;
}

const MiB = 2 ** 20;
const gc = (globalThis as { gc?: () => void }).gc;

function sample(cycle: number, started: number, cycleStarted: number, loss: number): Sample {
  gc?.();
  const mem = tf.memory();
  const p = process.memoryUsage();
  return {
    cycle,
    elapsedS: (performance.now() - started) / 1000,
    cycleS: (performance.now() - cycleStarted) / 1000,
    numTensors: mem.numTensors,
    tensorMiB: mem.numBytes / MiB,
    heapMiB: p.heapUsed / MiB,
    rssMiB: p.rss / MiB,
    externalMiB: p.external / MiB,
    loss,
  };
}

const HEAD = 'cycle  elapsed s  cycle s  tensors  tensor MiB  heap MiB  rss MiB  external MiB  final loss';
function row(s: Sample): string {
  return [
    String(s.cycle).padStart(5),
    s.elapsedS.toFixed(0).padStart(9),
    s.cycleS.toFixed(1).padStart(7),
    String(s.numTensors).padStart(8),
    s.tensorMiB.toFixed(2).padStart(11),
    s.heapMiB.toFixed(1).padStart(9),
    s.rssMiB.toFixed(0).padStart(8),
    s.externalMiB.toFixed(1).padStart(13),
    s.loss.toFixed(3).padStart(11),
  ].join('  ');
}

console.log(
  `soak: ${minutes} min on ${await initNodeBackend('wasm')}, warm-up ${warmup} cycles, gc ${gc ? 'on' : 'off (run through npm run soak)'}`,
);
const noEvents = (): void => {};
const lab = new LabEngine(publicFetch, noEvents);
const compare = new CompareEngine(publicFetch, noEvents);
await lab.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
await compare.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });

const started = performance.now();
const deadline = started + minutes * 60_000;
const samples: Sample[] = [];
console.log(HEAD);
for (let cycle = 1; performance.now() < deadline || samples.length <= warmup; cycle++) {
  const t0 = performance.now();
  const method = cycle % 2 ? 'lora' : 'ia3';
  // Train in the Lab.
  const train = { steps: 4, lr: 5e-3, batchSize: 2, seqLen: 32, seed: cycle, warmupSteps: 1, evalEvery: 4 };
  const corpusUrl = 'data/moby-dick/';
  const result = await lab.train(
    method === 'lora'
      ? { method, config: { r: 4 }, train, corpusUrl }
      : { method, config: {}, train, corpusUrl },
  );
  // Save it to IndexedDB and read it back, as the Lab's Save and the Storage screen's Open do.
  const files = await lab.exportAdapter();
  await saveAdapterRecord(
    {
      id: 'soak',
      name: `soak ${cycle}`,
      createdAt: Date.now(),
      baseModel: 'peftlab-s',
      peftType: result.peftType as 'LORA',
      taskType: 'CAUSAL_LM',
      method,
      trainableParams: result.trainableParams,
      steps: result.steps,
      finalLoss: result.finalLoss,
      configJson: files.config,
      weights: files.weights,
    },
    {},
    DEFAULT_DB_NAME,
  );
  const saved = await getAdapter('soak');
  if (!saved) throw new Error('the adapter just saved is not in IndexedDB');
  await lab.dropAdapter();
  await lab.importAdapter({ config: saved.configJson, weights: saved.weights, source: 'saved' });
  // Generate with it and without it.
  const req = { prompt: 'Call me Ishmael.', maxNewTokens: 8, temperature: 0.8, seed: cycle };
  await lab.generate({ ...req, useAdapter: true });
  await lab.generate({ ...req, useAdapter: false });
  await lab.dropAdapter();
  if (cycle % 5 === 0) await deleteAdapter('soak');
  // A race in Compare, and every lane's answer.
  await compare.race({
    task: 'spam',
    corpusUrl: 'data/spam/',
    settings: { steps: 3, batchSize: 2, seqLen: 24, seed: cycle, evalEvery: 3 },
    lanes: [{ method: 'lora' }, { method: cycle % 2 ? 'prompt-tuning' : 'ia3' }],
  });
  await compare.tryAll({ text: 'Win a free prize now, click here', maxNewTokens: 4 });

  const s = sample(cycle, started, t0, result.finalLoss);
  samples.push(s);
  console.log(row(s));
}

// After warm-up (caches such as the generation's transposed embedding are made once), nothing
// may grow: a tensor more per cycle is a leak however small, and the heap may move only by GC noise.
// Cycles repeat their work every PERIOD (LoRA and IA3 by turns), so each is held to the last warm-up
// cycle of its own kind: an IA3 race keeps other tensors than a prompt-tuning one.
const PERIOD = 2;
const baseOf = (s: Sample): Sample =>
  samples.filter((w) => w.cycle <= warmup && w.cycle % PERIOD === s.cycle % PERIOD).at(-1)!;
const base = samples[warmup - 1]!;
const after = samples.slice(warmup);
const problems: string[] = [];
for (const s of after) {
  const b = baseOf(s);
  if (s.numTensors > b.numTensors)
    problems.push(
      `cycle ${s.cycle} holds ${s.numTensors} tensors, cycle ${b.cycle} (same work) held ${b.numTensors}`,
    );
  if (s.tensorMiB > b.tensorMiB + 1e-9)
    problems.push(
      `cycle ${s.cycle} holds ${s.tensorMiB.toFixed(2)} MiB of tensors, cycle ${b.cycle} held ${b.tensorMiB.toFixed(2)}`,
    );
}
const maxTensors = Math.max(...after.map((s) => s.numTensors));
const maxBytes = Math.max(...after.map((s) => s.tensorMiB));
// The last few samples, not the peak: one sample can catch a collection not yet done.
const tail = after.slice(-3);
const heapEnd = Math.min(...tail.map((s) => s.heapMiB));
if (heapEnd - base.heapMiB > heapBoundMiB)
  problems.push(
    `heap grew from ${base.heapMiB.toFixed(1)} MiB to ${heapEnd.toFixed(1)} MiB (bound ${heapBoundMiB} MiB)`,
  );
console.log(
  `${samples.length} cycles in ${(samples.at(-1)!.elapsedS / 60).toFixed(1)} min; after warm-up: tensors ${samples
    .slice(0, warmup)
    .map((w) => w.numTensors)
    .join('/')} -> max ${maxTensors}, ` +
    `tensor MiB ${base.tensorMiB.toFixed(2)} -> max ${maxBytes.toFixed(2)}, heap MiB ${base.heapMiB.toFixed(1)} -> ${heapEnd.toFixed(1)} (last 3, min)`,
);
if (problems.length) {
  console.error(`soak FAILED: ${problems.join('; ')}`);
  process.exit(1);
}
console.log('soak passed: no growth');
process.exit(0);
