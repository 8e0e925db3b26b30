import { describe, it, expect, beforeAll } from 'vitest';
import { initNodeBackend } from '../backend/node';
import { Gpt2Model } from '../model/gpt2';
import { parseGpt2Config } from '../model/config';
import { full } from '../peft/full/full';
import { lora } from '../peft/lora';
import { Trainer } from './trainer';
import { loadCheckpoint, saveCheckpoint } from './checkpoint';

const CFG = parseGpt2Config({ vocab_size: 40, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2 });
const STREAM = Int32Array.from({ length: 500 }, (_, i) => (i * 7 + (i >> 3)) % 40);
const OPTS = { steps: 8, lr: 1e-2, batchSize: 2, seqLen: 8, seed: 9, warmupSteps: 2 };

describe.each([
  ['full fine-tuning (pretraining from scratch)', full],
  ['LoRA', lora],
] as const)('checkpoint and resume: %s', (_, method) => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('a run resumed from step 4 gives exactly the losses of an uninterrupted run', async () => {
    const build = () => {
      const model = Gpt2Model.random(CFG, 1);
      const adapter = method.create(model, method.defaults('CAUSAL_LM') as never, 2);
      return { model, adapter, trainer: new Trainer(model, adapter, STREAM, OPTS) };
    };
    const a = build();
    const straight: number[] = [];
    for (let i = 0; i < 8; i++) straight.push((await a.trainer.trainStep()).loss);

    const b = build();
    const resumed: number[] = [];
    for (let i = 0; i < 4; i++) resumed.push((await b.trainer.trainStep()).loss);
    const ckpt = await saveCheckpoint(b.trainer, { note: 'x' });
    b.trainer.dispose();
    b.adapter.dispose();
    b.model.dispose();

    // A fresh process would build everything anew from the same settings, then load the checkpoint.
    const c = build();
    expect(loadCheckpoint(c.trainer, ckpt).note).toBe('x');
    for (let i = 0; i < 4; i++) resumed.push((await c.trainer.trainStep()).loss);
    expect(resumed).toEqual(straight);
    for (const x of [a, c]) {
      x.trainer.dispose();
      x.adapter.dispose();
      x.model.dispose();
    }
  });
});
