/**
 * The race on the Llama family (tiny-llama, written by transformers, with its own tokenizer): lanes
 * of the three kinds train side by side, each with a predicted and a measured memory ledger, equal
 * budgets size them by the family's shapes, and the parameter diagram places them in q_proj ...
 * down_proj, the rotary model's embeddings and its final RMSNorm.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import type { DecoderModel } from '../model/decoder';
import { loadModelFolder } from '../model/folder';
import { readFixtureFolder } from '../model/testing';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import { taskById } from '../data/tasks/registry';
import { loadTaskData } from '../data/task-data';
import type { TaskData } from '../data/task-data';
import { Race } from './race';
import type { RaceSettings } from './race';
import { defaultBudget, sizeToBudget } from './equal-budget';
import { parameterMap, mapModules, LLAMA_LAYER } from './where';

const PUBLIC = join(process.cwd(), 'public');
const SETTINGS: RaceSettings = { steps: 4, batchSize: 2, seqLen: 16, seed: 3, evalEvery: 2 };

let model: DecoderModel;
let tokenizer: TextTokenizer;
let data: TaskData;

beforeAll(async () => {
  await initNodeBackend('wasm');
  const loaded = loadModelFolder(readFixtureFolder('tiny-llama'));
  model = loaded.model;
  tokenizer = loaded.tokenizer!;
  const info = taskById('moby-dick')!;
  data = await loadTaskData(
    info,
    tokenizer,
    async (f) => readFileSync(join(PUBLIC, info.dataDir, f), 'utf8'),
    { seqLen: SETTINGS.seqLen, evalExamples: 8 },
  );
});

describe('the race on a Llama model', () => {
  it('races LoRA, prompt tuning and prefix tuning with a predicted and a measured ledger each', async () => {
    const before = tf.memory().numTensors;
    const race = new Race(model, tokenizer, 'tiny-llama', data, SETTINGS);
    const lora = race.addLane({ method: 'lora', config: { r: 4 } });
    const prompt = race.addLane({ method: 'prompt-tuning', config: { numVirtualTokens: 4 } });
    const prefix = race.addLane({ method: 'prefix-tuning', config: { numVirtualTokens: 4 } });
    // PEFT's default targets for llama: q_proj (32 -> 32) and v_proj (32 -> 16) in 2 layers.
    expect(lora.trainableParams).toBe(2 * 4 * (32 + 32 + 32 + 16));
    expect(lora.config).toMatchObject({ targetModules: ['q_proj', 'v_proj'] });
    await race.run();
    for (const lane of [lora, prompt, prefix]) {
      expect(lane.status, lane.error).toBe('done');
      expect(lane.steps).toHaveLength(4);
      expect(lane.steps.every((s) => Number.isFinite(s.loss))).toBe(true);
      const { predicted, measured } = lane.ledger;
      expect(measured).not.toBeNull();
      // Parameters, gradients and optimizer state are facts of the shapes: predicted exactly.
      expect(predicted.gradients).toBe(measured!.gradients);
      expect(predicted.optimizer).toBe(measured!.optimizer);
      expect(predicted.parameters).toBe(measured!.parameters);
      // Activations are predicted from counts fitted on GPT-2 (see ledger.ts): same order of size.
      // Here they come out 0.64 (prompt tuning) to 0.79 (prefix tuning) of the measured.
      expect(predicted.activations / measured!.activations, lane.name).toBeGreaterThan(0.5);
      expect(predicted.activations / measured!.activations, lane.name).toBeLessThan(1.25);
    }
    race.dispose();
    // The untied lm_head's cached transpose was built during the run; it is the model's, not a lane's.
    model.invalidateCaches();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('sizes lanes to an equal budget by the Llama shapes', () => {
    // Prompt tuning's default soft prompt: 10 virtual tokens x 32 wide.
    expect(defaultBudget(model, 'CAUSAL_LM')).toBe(10 * 32);
    const lora = sizeToBudget(model, 'lora', {}, 'CAUSAL_LM', 700, SETTINGS.seqLen);
    // One rank of LoRA on q_proj and v_proj is 2 x (32 + 32 + 32 + 16) = 224: r 3 is closest to 700.
    expect(lora).toMatchObject({ knob: 'r', params: 3 * 224, config: { r: 3 } });
    const prompt = sizeToBudget(model, 'prompt-tuning', {}, 'CAUSAL_LM', 700, SETTINGS.seqLen);
    expect(prompt).toMatchObject({ knob: 'numVirtualTokens', params: 22 * 32 });
  });
});

describe('the parameter diagram on the Llama family', () => {
  it("places an adapter's parameters in the family's modules, by PEFT's names", () => {
    const m = parameterMap(
      'lane-1',
      'LoRA',
      'inject',
      2,
      0,
      [
        ['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', 128],
        ['base_model.model.model.layers.1.mlp.down_proj.lora_B.weight', 320],
        ['base_model.model.model.layers.1.post_attention_layernorm.weight', 32],
        ['base_model.model.score.weight', 64],
      ],
      { family: 'llama', tiedHead: false },
    );
    expect(m.layers).toEqual([
      { 'self_attn.q_proj': 128 },
      { 'mlp.down_proj': 320, post_attention_layernorm: 32 },
    ]);
    expect(m.head).toBe(64);
    expect(m.total).toBe(128 + 320 + 32 + 64);
    const { modules, names } = mapModules(m);
    expect(modules.map((x) => x.label)).toEqual([
      'in_norm',
      'q_proj',
      'k_proj',
      'v_proj',
      'o_proj',
      'post_norm',
      'gate_proj',
      'up_proj',
      'down_proj',
    ]);
    expect(names).toMatchObject({ output: 'norm', lmHeadText: 'LM head (lm_head)', tiedHead: false });
  });

  it('full fine-tuning: embed_tokens is the input, norm the output, an untied lm_head the head', () => {
    const sizes = [...model.weights].map(([k, v]) => [k, v.size] as [string, number]);
    const m = parameterMap('lane-1', 'Full', 'full', 2, 0, sizes, { family: 'llama', tiedHead: false });
    expect(m.input).toBe(300 * 32);
    expect(m.output).toBe(32);
    expect(m.head).toBe(300 * 32);
    for (const layer of m.layers) {
      expect(Object.keys(layer).sort()).toEqual(LLAMA_LAYER.map((x) => x.id).sort());
    }
    expect(m.total).toBe(sizes.reduce((a, [, n]) => a + n, 0));
  });

  it('a map saved before the Llama family came reads as GPT-2', () => {
    const m = parameterMap('lane-1', 'LoRA', 'inject', 1, 0, [['h.0.attn.c_attn.lora_A', 8]], {
      family: 'gpt2',
      tiedHead: true,
    });
    expect(m.layers).toEqual([{ 'attn.c_attn': 8 }]);
    const { modules: _m, names: _n, ...saved } = m;
    expect(mapModules(saved).modules.map((x) => x.id)).toContain('attn.c_attn');
    expect(mapModules(saved).names.output).toBe('ln_f');
  });
});
