/**
 * `npm run pretrain`: pretrains a base model from scratch with PEFT Lab's own engine (tfjs on wasm
 * in Node), resumable from its last checkpoint, writing a HuggingFace GPT-2 folder.
 *   npm run pretrain -- --id peftlab-s-ours [--tokens 6000000] [--out DIR]
 * It reads the token files of scripts/prepare-corpus.ts (.cache/corpus/). Progress goes to stdout and
 * .cache/pretrain-ours/<id>/log.txt; a checkpoint is written every --ckpt-every steps, atomically
 * (new files, then a rename), and a rerun resumes from it with the same losses as an uninterrupted run.
 * Our engine is several times slower than PyTorch here, so the larger bundled models are made by
 * scripts/pretrain/pretrain_torch.py (see scripts/pretrain/README.md); this is the same job in TypeScript.
 */
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  appendFileSync,
  copyFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initNodeBackend } from '../src/lib/backend/node';
import { parseGpt2Config } from '../src/lib/model/config';
import { Gpt2Model } from '../src/lib/model/gpt2';
import { saveGpt2 } from '../src/lib/model/load';
import { full } from '../src/lib/peft/full/full';
import { Trainer, evaluateLm } from '../src/lib/train/trainer';
import { loadCheckpoint, saveCheckpoint } from '../src/lib/train/checkpoint';

const SIZES: Record<string, { n_embd: number; n_layer: number; n_head: number; tokens: number; lr: number }> =
  {
    'peftlab-s-ours': { n_embd: 96, n_layer: 3, n_head: 4, tokens: 6_000_000, lr: 3e-3 },
    'peftlab-xs-ours': { n_embd: 64, n_layer: 2, n_head: 4, tokens: 2_000_000, lr: 3e-3 },
  };
const { values } = parseArgs({
  options: {
    id: { type: 'string', default: 'peftlab-s-ours' },
    tokens: { type: 'string' },
    out: { type: 'string' },
    'ckpt-every': { type: 'string', default: '100' },
    batch: { type: 'string', default: '16' },
    'seq-len': { type: 'string', default: '128' },
  },
});
const size = SIZES[values.id!];
if (!size) throw new Error(`unknown --id ${values.id}; choose one of ${Object.keys(SIZES).join(', ')}`);
const corpus = '.cache/corpus';
if (!existsSync(join(corpus, 'train.bin')))
  throw new Error('no corpus: run `npx tsx scripts/prepare-corpus.ts` first');
const work = join('.cache/pretrain-ours', values.id!);
const out = values.out ?? join(work, 'model');
mkdirSync(work, { recursive: true });
const stats = JSON.parse(readFileSync(join(corpus, 'stats.json'), 'utf8')) as {
  vocabSize: number;
  eosId: number;
};
const read = (f: string): Uint16Array => {
  const b = readFileSync(join(corpus, f));
  return new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
};
const train = read('train.bin');
const val = read('val.bin');
const batch = Number(values.batch);
const seqLen = Number(values['seq-len']);
const tokens = Number(values.tokens ?? size.tokens);
const steps = Math.floor(tokens / (batch * seqLen));

await initNodeBackend('wasm');
const config = parseGpt2Config({
  vocab_size: stats.vocabSize,
  n_positions: 256,
  n_embd: size.n_embd,
  n_layer: size.n_layer,
  n_head: size.n_head,
  bos_token_id: stats.eosId,
  eos_token_id: stats.eosId,
});
const model = Gpt2Model.random(config, 1234);
const adapter = full.create(model, full.defaults('CAUSAL_LM'), 0);
const trainer = new Trainer(model, adapter, train, {
  steps,
  lr: size.lr,
  batchSize: batch,
  seqLen,
  seed: 1234,
  warmupSteps: Math.min(200, Math.floor(steps / 10)),
  weightDecay: 0.1,
  maxGradNorm: 1.0,
});
const ckptDir = join(work, 'ckpt');
let wall = 0;
if (existsSync(join(ckptDir, 'state.json'))) {
  const st = loadCheckpoint(trainer, {
    tensors: new Uint8Array(readFileSync(join(ckptDir, 'tensors.safetensors'))),
    state: readFileSync(join(ckptDir, 'state.json'), 'utf8'),
  });
  wall = Number(st.wall ?? 0);
  console.log(`resumed at step ${trainer.step}/${steps}`);
}
console.log(
  `${values.id}: ${steps} steps of ${batch}x${seqLen} tokens on ${(await import('@tensorflow/tfjs')).getBackend()}`,
);
const log = (entry: Record<string, unknown>): void => {
  const line = JSON.stringify(entry);
  console.log(line);
  appendFileSync(join(work, 'log.txt'), line + '\n');
};
let t = performance.now();
let running = NaN;
while (trainer.step < steps) {
  const s = await trainer.trainStep();
  if (s.skipped) {
    // A non-finite step changed nothing but the learning rate: it stays out of the running loss.
    console.warn(`step ${s.step + 1} skipped (loss ${s.loss}); learning rate halved to ${s.lr}`);
    continue;
  }
  running = Number.isNaN(running) ? s.loss : 0.98 * running + 0.02 * s.loss;
  if (trainer.step % 20 === 0 || trainer.step === steps) {
    const now = performance.now();
    wall += (now - t) / 1000;
    t = now;
    log({
      step: trainer.step,
      tokens: trainer.step * batch * seqLen,
      train_loss: +running.toFixed(4),
      wall_s: +wall.toFixed(1),
      tokens_per_s: Math.round((s.tokens / s.ms) * 1000),
    });
  }
  if (trainer.step % Number(values['ckpt-every']) === 0 || trainer.step === steps) {
    const files = await saveCheckpoint(trainer, { wall });
    const tmp = `${ckptDir}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    writeFileSync(join(tmp, 'tensors.safetensors'), files.tensors);
    writeFileSync(join(tmp, 'state.json'), files.state);
    rmSync(ckptDir, { recursive: true, force: true });
    renameSync(tmp, ckptDir);
  }
}
const evalRes = await evaluateLm(model, null, val, { batchSize: 16, seqLen, maxBatches: 64 });
const saved = await saveGpt2(model);
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'config.json'), saved.config);
writeFileSync(join(out, 'model.safetensors'), saved.weights);
copyFileSync(join(corpus, 'tokenizer.json'), join(out, 'tokenizer.json'));
const result = {
  id: values.id,
  steps,
  tokens_seen: steps * batch * seqLen,
  wall_s: wall,
  val_loss_first_64_batches: evalRes.loss,
};
writeFileSync(join(out, 'training.json'), JSON.stringify(result, null, 1));
log(result);
