/**
 * Trains one P-tuning lane exactly as lesson 5's race does (Trainer, AdamW, clip 1.0, warmup +
 * cosine, batch 8, seqLen 48, the manual prompt and the verbalizer) and writes everything PEFT needs
 * to repeat the run in PyTorch (peft_train.py): the tokenized examples, each step's batch indices,
 * the encoder's initial weights, the verbalizer ids, and our per-step losses, gradient norms and
 * first-step gradients, plus the held-out predictions.
 *
 *   npx tsx scripts/reference/p_tuning_training/dump_ours.ts --model peftlab-s --steps 200 \
 *     --lr 1e-2 [--encoder MLP|LSTM] [--hidden 96] [--method p-tuning] --out /tmp/ours.json
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../../src/lib/backend/node';
import { loadModelFolder } from '../../../src/lib/model/folder';
import { loadTaskData } from '../../../src/lib/data/task-data';
import { taskById } from '../../../src/lib/data/tasks/registry';
import { sampleIndices } from '../../../src/lib/data/cls-data';
import { createAdapter, planAdapter } from '../../../src/lib/train/plan';
import { Trainer } from '../../../src/lib/train/trainer';
import type { BatchSource } from '../../../src/lib/train/trainer';
import { clsBatchSource, evaluateClassification } from '../../../src/lib/train/classification';
import { Rng } from '../../../src/lib/util/rng';
import { MANUAL_PROMPT } from '../../../src/lib/learn/lessons/p-tuning';
import { LESSON_RUN } from '../../../src/lib/learn/build';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string', default: 'peftlab-s' },
    method: { type: 'string', default: 'p-tuning' },
    steps: { type: 'string', default: '200' },
    lr: { type: 'string', default: '1e-2' },
    encoder: { type: 'string', default: 'MLP' },
    hidden: { type: 'string' },
    seed: { type: 'string', default: '0' },
    out: { type: 'string', default: '/tmp/ours.json' },
  },
});
const steps = Number(a.steps);
const lr = Number(a.lr);
const seed = Number(a.seed);
const { batchSize, seqLen, evalExamples } = LESSON_RUN;

await initNodeBackend('wasm');
const dir = join(process.cwd(), 'public/models', a.model!);
const { model, tokenizer } = loadModelFolder({
  config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
  weights: new Uint8Array(readFileSync(join(dir, 'model.safetensors'))),
  source: a.model,
  tokenizerJson: JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')),
});
const info = taskById('spam')!;
const data = await loadTaskData(
  info,
  tokenizer!,
  async (f) => readFileSync(join(process.cwd(), 'public', info.dataDir, f), 'utf8'),
  { seqLen, evalExamples, template: MANUAL_PROMPT },
);
if (data.kind !== 'cls') throw new Error('spam is a classification task');

const overrides: Record<string, unknown> = { verbalizer: true };
if (a.method === 'p-tuning') {
  overrides.encoderReparameterizationType = a.encoder;
  if (a.hidden) overrides.encoderHiddenSize = Number(a.hidden);
}
const { method, config } = planAdapter(model, a.method!, overrides, info, { steps, seqLen, seed }, a.model!);
const adapter = createAdapter(model, tokenizer!, method, config, info, seed);
const vars = adapter.trainable();
const init: Record<string, { shape: number[]; data: number[] }> = {};
for (const [k, v] of vars) init[k] = { shape: v.shape, data: Array.from(await v.data()) };

// The batches the trainer draws, recorded by replaying its generator before each draw.
const batches: number[][] = [];
const inner = clsBatchSource(data.train);
const source: BatchSource = {
  draw(rng, B, accum) {
    batches.push(sampleIndices(data.train.examples.length, B * accum, new Rng(rng.state)));
    return inner.draw(rng, B, accum);
  },
};
const trainer = new Trainer(model, adapter, source, { steps, lr, batchSize, seqLen, seed, maxGradNorm: 1.0 });

// Gradients of the first batch (unclipped), from the initial weights.
const first = source.draw(new Rng(trainer.rng.state), batchSize, 1)[0]!;
batches.pop();
const { value, grads } = tf.variableGrads(() => first.loss(model, adapter, true, 0), [...vars.values()]);
const byName = new Map([...vars].map(([k, v]) => [v.name, k]));
const grad0: Record<string, number[]> = {};
for (const [vn, g] of Object.entries(grads)) grad0[byName.get(vn)!] = Array.from(await g.data());
const loss0 = (await value.data())[0]!;
tf.dispose([value, ...Object.values(grads)]);

const before = await evaluateClassification(model, adapter, adapter.head!, data.valid);
const stepLog: { loss: number; gradNorm: number; lr: number }[] = [];
for (let s = 0; s < steps; s++) {
  const st = await trainer.trainStep();
  stepLog.push({ loss: st.loss, gradNorm: st.gradNorm, lr: st.lr });
}
const after = await evaluateClassification(model, adapter, adapter.head!, data.valid);
const count = (p: Int32Array, c: number): number => p.filter((x) => x === c).length;
console.log(
  `${a.method} ${a.encoder} ${a.model} lr ${lr} steps ${steps}: loss0 ${loss0.toFixed(5)}, ` +
    `acc ${before.accuracy.toFixed(3)} -> ${after.accuracy.toFixed(3)}, macro-F1 ${after.macroF1.toFixed(3)}, ` +
    `predicted spam ${count(after.predictions, 1)}/${after.predictions.length}; ` +
    `last losses ${stepLog
      .slice(-5)
      .map((x) => x.loss.toFixed(3))
      .join(' ')}`,
);
writeFileSync(
  a.out!,
  JSON.stringify({
    model: a.model,
    method: a.method,
    config: adapter.config,
    steps,
    lr,
    batchSize,
    seqLen,
    warmupSteps: Math.min(100, Math.floor(steps / 10)),
    padId: data.train.padId,
    verbalizerTokenIds: (adapter.config as { verbalizerTokenIds?: number[] }).verbalizerTokenIds,
    train: data.train.examples.map((e) => [e.ids, e.label]),
    valid: data.valid.examples.map((e) => [e.ids, e.label]),
    batches,
    init,
    loss0,
    grad0,
    steps_log: stepLog,
    before: { accuracy: before.accuracy, macroF1: before.macroF1 },
    after: { accuracy: after.accuracy, macroF1: after.macroF1, spam: count(after.predictions, 1) },
  }),
);
