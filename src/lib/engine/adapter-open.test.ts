/**
 * Opening an adapter Python PEFT 0.21 saved on the Lab's default base (peftlab-s), through the
 * engine's importAdapter as the app does: it answers as PEFT does (logits to 1e-4, greedy tokens
 * exactly), and one that does not fit is refused with a named error that leaves everything as it was.
 * Fixtures: scripts/reference/adapter_open/make_fixtures.py.
 */
import 'fake-indexeddb/auto';
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import { LabEngine } from './lab-engine';
import { publicFetch } from './testing';
import { AdapterError, AdapterMismatchError } from '../errors';
import type { AdapterMismatchCode } from '../errors';
import type { Gpt2Model } from '../model/gpt2';
import { lmLogits } from '../model/heads';
import { adapterDecorator, virtualPositions } from '../peft/forward';
import type { Adapter } from '../peft/types';
import type { AdapterPayload } from '../protocol/lab-protocol';

const FIXTURES = join(process.cwd(), 'src/lib/peft/fixtures/peft-0.21-open');

interface Expected {
  prompt: string;
  prompt_ids: number[];
  max_new_tokens: number;
  greedy_ids: number[];
  greedy_text: string;
  logit_ids: number[][];
  logits_shape: number[];
  logits: number[];
}

function files(c: string): AdapterPayload {
  const w = readFileSync(join(FIXTURES, c, 'adapter_model.safetensors'));
  return {
    config: readFileSync(join(FIXTURES, c, 'adapter_config.json'), 'utf8'),
    weights: w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength) as ArrayBuffer,
  };
}

const expected = (c: string): Expected =>
  JSON.parse(readFileSync(join(FIXTURES, c, 'expected.json'), 'utf8')) as Expected;

/** The engine's model and active adapter, for the logits check (the app reads only answers). */
function inside(engine: LabEngine): { model: Gpt2Model; adapter: Adapter } {
  return engine as unknown as { model: Gpt2Model; adapter: Adapter };
}

async function freshEngine(): Promise<LabEngine> {
  const engine = new LabEngine(publicFetch);
  await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
  return engine;
}

describe('an adapter made by Python PEFT opens on the bundled base and answers as PEFT does', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  for (const c of ['lora', 'prompt_tuning']) {
    it(`${c}: logits to 1e-4 and PEFT's greedy tokens`, async () => {
      const exp = expected(c);
      const engine = await freshEngine();
      const summary = await engine.importAdapter({ ...files(c), source: c });
      expect(summary.name).toBe(c);
      expect(summary.taskType).toBe('CAUSAL_LM');

      const { model, adapter } = inside(engine);
      const ours = tf.tidy(() => {
        const ids = tf.tensor2d(exp.logit_ids, undefined, 'int32');
        let hidden = model.forward(adapterDecorator(model, adapter)({ ids }, true)).hidden; // first call: [1, n + T, C]
        const n = virtualPositions(adapter);
        if (n > 0) hidden = tf.slice(hidden, [0, n, 0], [-1, -1, -1]); // [1, T, C]
        return lmLogits(model, hidden); // [1, T, V]
      });
      expect(ours.shape).toEqual(exp.logits_shape);
      const got = ours.dataSync();
      ours.dispose();
      let worst = 0;
      exp.logits.forEach((v, i) => (worst = Math.max(worst, Math.abs(got[i]! - v))));
      expect(worst).toBeLessThan(1e-4);

      const req = { prompt: exp.prompt, maxNewTokens: exp.max_new_tokens, temperature: 0, seed: 0 };
      const adapted = await engine.generate({ ...req, useAdapter: true });
      expect(adapted.promptIds).toEqual(exp.prompt_ids);
      expect(adapted.generatedIds).toEqual(exp.greedy_ids);
      expect(adapted.text).toBe(exp.greedy_text);
      // The adapter is what makes the answer: the base alone says something else.
      const base = await engine.generate({ ...req, useAdapter: false });
      expect(base.generatedIds).not.toEqual(exp.greedy_ids);
    }, 120_000);
  }

  it('evaluates the opened adapter on a CAUSAL_LM task and refuses a classification task it has no head for', async () => {
    const engine = await freshEngine();
    await engine.importAdapter({ ...files('lora'), source: 'lora' });
    const score = await engine.evaluate({
      task: 'moby-dick',
      corpusUrl: 'data/moby-dick/',
      seqLen: 32,
      batchSize: 4,
    });
    expect(score.metricName).toBe('perplexity');
    expect(Number.isFinite(score.loss)).toBe(true);
    expect(score.metric).toBeCloseTo(Math.exp(score.loss), 3);
    await expect(
      engine.evaluate({ task: 'spam', corpusUrl: 'data/spam/', seqLen: 32, batchSize: 4 }),
    ).rejects.toThrow(/no SEQ_CLS head/);
  }, 120_000);
});

describe('an adapter that does not fit is refused before anything changes', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  /** Edits the LoRA fixture's config. */
  const withConfig = (edit: (j: Record<string, unknown>) => void): AdapterPayload => {
    const f = files('lora');
    const j = JSON.parse(f.config) as Record<string, unknown>;
    edit(j);
    return { ...f, config: JSON.stringify(j) };
  };

  const cases: [string, () => AdapterPayload, AdapterMismatchCode, RegExp][] = [
    [
      'made on another GPT-2 (64 wide)',
      () => files('lora_other_base'),
      'shape',
      /has shape \[2,64\] but this model needs \[2,96\]; open it on the base model/,
    ],
    [
      'an unknown peft_type',
      () => withConfig((j) => (j.peft_type = 'MAGIC')),
      'peft-type',
      /peft_type "MAGIC" is not supported; known: LORA.*cannot run this method/,
    ],
    [
      'a task_type LoRA has here but whose head is not in the file',
      () => withConfig((j) => (j.task_type = 'SEQ_CLS')),
      'head',
      /needs its head score\.weight .* missing; save it with modules_to_save/,
    ],
    [
      'a task_type no method has',
      () => withConfig((j) => (j.task_type = 'SEQ_2_SEQ_LM')),
      'task-type',
      /task_type "SEQ_2_SEQ_LM" is not available for LoRA/,
    ],
    [
      "Llama's target modules",
      () => withConfig((j) => (j.target_modules = ['q_proj', 'v_proj'])),
      'target-modules',
      /name no layer of this GPT-2 \(GPT2LMHeadModel\) model .*another architecture/,
    ],
    [
      'a rank the weights do not have',
      () => withConfig((j) => (j.r = 8)),
      'shape',
      /lora_A\.weight has shape \[4,96\] but this model needs \[8,96\]/,
    ],
    [
      'fewer targets than the file has tensors for',
      () => withConfig((j) => (j.target_modules = ['c_attn'])),
      'unexpected-keys',
      /unexpected tensor\(s\) .*c_fc/,
    ],
    [
      'more targets than the file has tensors for',
      () => withConfig((j) => (j.target_modules = ['c_attn', 'c_fc', 'c_proj'])),
      'missing-keys',
      /is missing/,
    ],
  ];

  it.each(cases)(
    '%s: a named error, and the model, the active adapter and the resident ones are untouched',
    async (_, make, code, message) => {
      const engine = await freshEngine();
      // A good adapter is resident and active before the bad one arrives.
      await engine.importAdapter({ ...files('prompt_tuning'), source: 'kept' });
      const req = { prompt: 'Call me Ishmael.', maxNewTokens: 6, temperature: 0, seed: 0, useAdapter: true };
      const before = await engine.generate(req);
      const tensors = engine.numTensors();

      const err = await engine.importAdapter({ ...make(), source: 'kept' }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AdapterMismatchError);
      expect(err).toBeInstanceOf(AdapterError);
      expect((err as AdapterMismatchError).code).toBe(code);
      expect((err as Error).message).toMatch(message);

      expect(engine.numTensors()).toBe(tensors);
      // Same name as the resident one: a refusal must not have dropped it, nor switched away from it.
      expect(await engine.useAdapter({ name: 'kept' })).toMatchObject({
        name: 'kept',
        peftType: 'PROMPT_TUNING',
      });
      expect((await engine.generate(req)).generatedIds).toEqual(before.generatedIds);
    },
    120_000,
  );
});
