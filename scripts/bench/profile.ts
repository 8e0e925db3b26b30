/**
 * `npm run bench:profile`: where a forward, a LoRA step's gradient, a whole LoRA training step
 * (Trainer.trainStep: clipping, AdamW, the loss read back) and a whole full fine-tuning step go,
 * kernel by kernel, on
 * tfjs wasm in this process (tf.profile: each kernel timed on its own, so the sum exceeds the
 * step's wall time a little). Only kernels registered on the backend count: tf.profile also lists
 * composite entries (customGrad's `forward`, ops' scopes) whose time includes their kernels', and
 * summing both would count those twice. Grouped by kernel name and input shapes, the most
 * expensive first.
 *   --model DIR (public/models/peftlab-s)  --batch N (8)  --seq N (128)  --top N (25)
 *   --stock (our wasm kernels of src/lib/kernels/wasm off: the stock tfjs compositions, to compare)
 */
import * as tf from '@tensorflow/tfjs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initNodeBackend } from '../../src/lib/backend/node';
import { setWasmKernels } from '../../src/lib/kernels/wasm/heap';
import { lmLogits } from '../../src/lib/model/heads';
import { crossEntropy } from '../../src/lib/model/ops';
import { full } from '../../src/lib/peft/full/full';
import { lora } from '../../src/lib/peft/lora/index';
import { Trainer } from '../../src/lib/train/trainer';
import { chooseModel } from './ours';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const { values: f } = parseArgs({
  options: {
    model: { type: 'string' },
    batch: { type: 'string' },
    seq: { type: 'string' },
    top: { type: 'string' },
    stock: { type: 'boolean' },
  },
});
const B = Number(f.batch ?? 8);
const T = Number(f.seq ?? 128);
const top = Number(f.top ?? 25);
await initNodeBackend('wasm');
if (f.stock) setWasmKernels(false);
const choice = chooseModel(f.model ?? join(root, 'public/models/peftlab-s'), f.model !== undefined);
const model = choice.make();
const adapter = lora.create(model, lora.defaults('CAUSAL_LM'), 0);
const ids = tf.tensor2d(
  Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % model.config.vocabSize),
  [B, T],
  'int32',
);
const labels = Int32Array.from({ length: B * T }, (_, i) => (i * 104729) % model.config.vocabSize);
const vars = [...adapter.trainable().values()];

const forward = (): void => {
  const l = tf.tidy(() => lmLogits(model, model.forward({ ids, training: false }).hidden));
  l.dataSync();
  l.dispose();
};
const step = (): void => {
  const { value, grads } = tf.variableGrads(() => {
    const h = model.forward({ ids, training: true }).hidden;
    return crossEntropy(tf.reshape(lmLogits(model, h), [B * T, -1]) as tf.Tensor2D, labels);
  }, vars);
  value.dataSync();
  tf.dispose([value, ...Object.values(grads)]);
};

const trainer = new Trainer(model, adapter, labels, {
  steps: 100,
  lr: 1e-3,
  batchSize: B,
  seqLen: T,
  seed: 0,
});
const trainStep = async (): Promise<void> => void (await trainer.trainStep());
// Full fine-tuning on a model of its own (the LoRA hooks stay out of it): AdamW over every weight.
const fullModel = choice.make();
const fullAdapter = full.create(fullModel, full.defaults('CAUSAL_LM'), 0);
const fullTrainer = new Trainer(fullModel, fullAdapter, labels, {
  steps: 100,
  lr: 1e-3,
  batchSize: B,
  seqLen: T,
  seed: 0,
});
const fullStep = async (): Promise<void> => void (await fullTrainer.trainStep());

async function report(name: string, fn: () => void | Promise<void>): Promise<void> {
  await fn(); // warm-up: operator caches, first-call compilation
  const t0 = performance.now();
  await fn();
  const wall = performance.now() - t0;
  const profiled = await tf.profile(fn);
  const backend = tf.getBackend();
  const info = { kernels: profiled.kernels.filter((k) => tf.getKernel(k.name, backend) !== undefined) };
  const groups = new Map<string, { ms: number; n: number }>();
  let total = 0;
  for (const k of info.kernels) {
    const ms = Number(k.kernelTimeMs) || 0;
    total += ms;
    const key = `${k.name} ${k.inputShapes.map((s) => `[${(s ?? []).join(',')}]`).join(' ')}`;
    const g = groups.get(key) ?? { ms: 0, n: 0 };
    g.ms += ms;
    g.n++;
    groups.set(key, g);
  }
  const byName = new Map<string, number>();
  for (const k of info.kernels) byName.set(k.name, (byName.get(k.name) ?? 0) + (Number(k.kernelTimeMs) || 0));
  console.log(
    `\n== ${name}: ${wall.toFixed(1)} ms wall, ${info.kernels.length} kernels, ${total.toFixed(1)} ms in kernels`,
  );
  console.log(
    'by kernel:',
    [...byName]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([k, ms]) => `${k} ${ms.toFixed(1)}`)
      .join(', '),
  );
  for (const [k, g] of [...groups].sort((a, b) => b[1].ms - a[1].ms).slice(0, top)) {
    console.log(`${g.ms.toFixed(2).padStart(8)} ms  x${String(g.n).padEnd(4)} ${k}`);
  }
}

await report('forward + LM logits', forward);
await report('LoRA step gradient (forward + backward, no optimizer)', step);
await report('LoRA training step (Trainer.trainStep: gradient, clipping, AdamW)', trainStep);
await report('full fine-tuning step (Trainer.trainStep over every weight)', fullStep);
