import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import { loadModelFolder } from '../model/folder';
import { requireGpt2 } from '../model/decoder';
import type { Gpt2Model } from '../model/gpt2';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import { taskById } from '../data/tasks/registry';
import { methodByCliName } from '../peft/registry';
import { Race } from './race';
import type { LaneState, RaceSettings } from './race';
import { loadTaskData } from '../data/task-data';
import type { TaskData } from '../data/task-data';
import { defaultBudget, sizeToBudget } from './equal-budget';
import { raceResults } from './results';

const PUBLIC = join(process.cwd(), 'public');
const SETTINGS: RaceSettings = { steps: 6, batchSize: 2, seqLen: 24, seed: 3, evalEvery: 3 };

let model: Gpt2Model;
let tokenizer: TextTokenizer;
const data: Record<string, TaskData> = {};

async function task(id: string): Promise<TaskData> {
  const info = taskById(id)!;
  data[id] ??= await loadTaskData(
    info,
    tokenizer,
    async (f) => readFileSync(join(PUBLIC, info.dataDir, f), 'utf8'),
    { seqLen: SETTINGS.seqLen, evalExamples: 16 },
  );
  return data[id]!;
}

const losses = (l: LaneState): number[] => l.steps.map((s) => s.loss);

beforeAll(async () => {
  await initNodeBackend('wasm');
  const dir = join(PUBLIC, 'models/peftlab-s');
  const loaded = loadModelFolder({
    config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(dir, 'model.safetensors'))),
    source: 'peftlab-s',
    tokenizerJson: JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')),
  });
  model = requireGpt2(loaded.model, 'the race test');
  tokenizer = loaded.tokenizer!;
});

describe('Race', () => {
  it('is fair: two lanes of the same method, settings and seed give identical curves, in interleaved turns', async () => {
    const before = tf.memory().numTensors;
    const order: string[] = [];
    const race = new Race(model, tokenizer, 'peftlab-s', await task('spam'), SETTINGS, {
      onStep: (lane) => order.push(lane.id),
    });
    const a = race.addLane({ method: 'lora', config: { r: 4 } });
    const b = race.addLane({ method: 'lora', config: { r: 4 } });
    const c = race.addLane({ method: 'prompt-tuning' });
    expect(b.name).toBe('LoRA 2');
    await race.run();
    expect(losses(a)).toHaveLength(6);
    expect(losses(b)).toEqual(losses(a));
    expect(b.evals).toEqual(a.evals);
    expect(a.evals.map((e) => e.step)).toEqual([0, 3, 6]);
    expect(losses(c)).not.toEqual(losses(a));
    // One step per lane per round.
    expect(order.slice(0, 6)).toEqual([a.id, b.id, c.id, a.id, b.id, c.id]);
    expect(a.status).toBe('done');
    race.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('isolates lanes: LoRA raced beside a full fine-tune trains exactly as LoRA alone, and the base is restored', async () => {
    const wte = await model.w('wte.weight').data();
    const alone = new Race(model, tokenizer, 'peftlab-s', await task('moby-dick'), SETTINGS);
    const solo = alone.addLane({ method: 'lora' });
    await alone.run();
    alone.dispose();

    const race = new Race(model, tokenizer, 'peftlab-s', await task('moby-dick'), SETTINGS);
    const full = race.addLane({ method: 'full' });
    const lora = race.addLane({ method: 'lora' });
    await race.run();
    expect(losses(lora)).toEqual(losses(solo));
    expect(lora.evals).toEqual(solo.evals);
    expect(full.trainableParams).toBe(model.config.nEmbd > 0 ? full.totalParams : 0);
    race.dispose();
    expect(await model.w('wte.weight').data()).toEqual(wte);
    expect(model.w('wte.weight').trainable).toBe(false);
  });

  it('takes another method after finishing, leaving the finished lanes as they were', async () => {
    const race = new Race(model, tokenizer, 'peftlab-s', await task('spam'), SETTINGS);
    const first = race.addLane({ method: 'ia3' });
    await race.run();
    const snapshot = structuredClone(first.steps);
    const second = race.addLane({ method: 'lora' });
    await race.run();
    expect(first.steps).toEqual(snapshot);
    expect(second.status).toBe('done');
    expect(second.steps).toHaveLength(6);
    race.dispose();
  });

  it('stops when told, evaluating each lane where it stands', async () => {
    let steps = 0;
    const race = new Race(
      model,
      tokenizer,
      'peftlab-s',
      await task('spam'),
      { ...SETTINGS, steps: 50 },
      {
        onStep: () => steps++,
      },
    );
    const l = race.addLane({ method: 'lora' });
    await race.run({ stopped: () => steps >= 4 });
    expect(l.status).toBe('stopped');
    expect(l.steps).toHaveLength(4);
    expect(l.evals.at(-1)!.step).toBe(4);
    race.dispose();
  });

  it('fails one lane whose loss turns NaN and lets the others finish', async () => {
    const race = new Race(model, tokenizer, 'peftlab-s', await task('moby-dick'), {
      ...SETTINGS,
      warmupSteps: 0,
      maxGradNorm: 0,
    });
    const bad = race.addLane({ method: 'lora', lr: 1e38 });
    const good = race.addLane({ method: 'prompt-tuning' });
    await race.run();
    expect(bad.status).toBe('failed');
    // The diverged steps were skipped (the rate halved each time) until three in a row ended the lane.
    expect(bad.error).toMatch(/3 steps in a row/);
    expect(bad.skippedSteps).toBe(3);
    expect(bad.steps.every((p) => Number.isFinite(p.loss))).toBe(true);
    expect(good.status).toBe('done');
    race.dispose();
  });

  it('refuses a method the task does not take, before anything trains', async () => {
    const race = new Race(model, tokenizer, 'peftlab-s', await task('moby-dick'), SETTINGS);
    expect(() => race.addLane({ method: 'p-tuning-v2' })).toThrow(/does not train CAUSAL_LM/);
    expect(race.laneStates).toHaveLength(0);
    race.dispose();
  });

  it('reports results and verdicts from the run', async () => {
    const race = new Race(model, tokenizer, 'peftlab-s', await task('spam'), SETTINGS);
    race.addLane({ method: 'lora' });
    race.addLane({ method: 'prompt-tuning' });
    const lanes = await race.run();
    const r = raceResults(race.metric, lanes);
    expect(r.metric).toBe('accuracy');
    expect(r.rows).toHaveLength(2);
    const best = Math.max(...r.rows.map((x) => x.metric));
    expect(r.target).toBeCloseTo(0.9 * best, 10);
    const winner = r.rows.find((x) => x.metric === best)!;
    expect(r.verdicts[0]).toContain(winner.name);
    for (const row of r.rows) {
      expect(row.peakMeasured).toBe(true);
      expect(row.msPerStep).toBeGreaterThan(0);
      expect(row.metricBefore).toBe(lanes.find((l) => l.id === row.id)!.evals[0]!.metric);
    }
    race.dispose();
  });
});

describe('equal budget', () => {
  it('sizes each method to the parameter count closest to the target, by its own count', () => {
    const C = model.config.nEmbd;
    const L = model.config.nLayer;
    const target = defaultBudget(model, 'SEQ_CLS');
    const pt = methodByCliName('prompt-tuning').defaults('SEQ_CLS') as unknown as {
      numVirtualTokens: number;
    };
    expect(target).toBe(pt.numVirtualTokens * C); // prompt tuning's default soft prompt: n x width
    const lora = sizeToBudget(model, 'lora', {}, 'SEQ_CLS', target, 24);
    // LoRA on c_attn: per layer r x (C + 3C).
    const r = lora.config.r as number;
    expect(lora.params).toBe(L * r * 4 * C);
    for (const other of [r - 1, r + 1].filter((x) => x > 0)) {
      expect(Math.abs(lora.params - target)).toBeLessThanOrEqual(Math.abs(L * other * 4 * C - target));
    }
    const prefix = sizeToBudget(model, 'prefix-tuning', {}, 'SEQ_CLS', target, 24);
    expect(prefix.knob).toBe('numVirtualTokens');
    const ia3 = sizeToBudget(model, 'ia3', {}, 'SEQ_CLS', target, 24);
    expect(ia3.knob).toBeNull();
    const m = methodByCliName('adalora');
    const ada = sizeToBudget(model, 'adalora', {}, 'SEQ_CLS', 3 * target, 24);
    const d = m.defaults('SEQ_CLS') as unknown as { initR: number; targetR: number };
    expect(ada.config.targetR).toBe(
      Math.max(1, Math.round(((ada.config.initR as number) * d.targetR) / d.initR)),
    );
    // OFT grows with its block size; an r set in the form goes to 0 with it (PEFT takes one of the two).
    const oftMethod = methodByCliName('oft');
    const oft = sizeToBudget(model, 'oft', { r: 4 }, 'SEQ_CLS', target, 24);
    expect([oft.knob, oft.config.r]).toEqual(['oftBlockSize', 0]);
    expect(oft.params).toBe(
      oftMethod.countParams(model, { ...oftMethod.defaults('SEQ_CLS'), ...oft.config }),
    );
    expect(oft.params).toBeGreaterThan(target / 2);
    // BOFT's block size must divide every targeted layer: sizes that do not are passed over.
    const boftMethod = methodByCliName('boft');
    const boft = sizeToBudget(model, 'boft', { boftBlockNum: 4 }, 'SEQ_CLS', target, 24);
    expect([boft.knob, boft.config.boftBlockNum]).toEqual(['boftBlockSize', 0]);
    expect(C % (boft.config.boftBlockSize as number)).toBe(0);
    expect(boft.params).toBe(
      boftMethod.countParams(model, { ...boftMethod.defaults('SEQ_CLS'), ...boft.config }),
    );
    // Virtual tokens never overrun the positions left by the sequence.
    const big = sizeToBudget(model, 'prompt-tuning', {}, 'SEQ_CLS', 1e9, 24);
    expect(big.config.numVirtualTokens).toBe(model.config.nPositions - 24);
  });
});
