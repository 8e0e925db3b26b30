import { describe, it, expect, beforeAll } from 'vitest';
import { initNodeBackend } from '../backend/node';
import { CompareEngine } from '../engine/compare-engine';
import { publicFetch } from '../engine/testing';
import type { LaneState, RaceSnapshot } from '../protocol/compare-protocol';
import { LESSONS, findLesson } from './lessons';
import { crossover, stepMsAt, SWARM_LATENCIES } from './lessons/swarm';
import { runExperiment } from './runner';
import type { LessonBackend } from './runner';
import { knobValues } from './types';
import type { KnobValues, LessonResults, LessonStep } from './types';

const experiments = LESSONS.flatMap((lesson) =>
  lesson.steps.filter((s) => s.run).map((step) => ({ lesson, step, name: `${lesson.id}: ${step.title}` })),
);

describe('lessons are data', () => {
  it('has the nine lessons of the survey, numbered, each with an experiment that costs under a minute', () => {
    expect(LESSONS.map((l) => l.number)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(new Set(LESSONS.map((l) => l.id)).size).toBe(9);
    for (const l of LESSONS) {
      const ex = l.steps.filter((s) => s.run);
      expect(ex.length, l.id).toBeGreaterThan(0);
      for (const s of ex) {
        expect(s.check, s.title).toBeTypeOf('function');
        const seconds = Number(/about (\d+) s/.exec(s.cost ?? '')?.[1]);
        expect(seconds, `${l.id}: ${s.title} says its cost`).toBeLessThan(60);
      }
    }
    expect(findLesson('lora')?.number).toBe(4);
  });

  it('clamps knob values into range and falls back to defaults', () => {
    const setup = findLesson('lora')!.steps.find((s) => s.setup)!.setup!;
    const v = knobValues(setup, { r: 1000, steps: 'x', seed: 3 });
    expect(v).toMatchObject({ r: 64, steps: 60, seed: 3, loraAlpha: 16 });
  });
});

describe('every experiment runs to a verdict computed from its run (2 steps, wasm)', () => {
  let engine: CompareEngine;
  let backend: LessonBackend;
  let loaded: string | null = null;
  beforeAll(async () => {
    await initNodeBackend('wasm');
    engine = new CompareEngine(publicFetch);
    // Evaluation on a few examples keeps the table quick; the lessons' own settings are otherwise used.
    backend = {
      loadModel: (r) => engine.loadModel(r),
      race: (r) => engine.race({ ...r, evalExamples: 8 }),
      offloadTrial: (r) => engine.offloadTrial(r),
      swarmTrial: (r) => engine.swarmTrial(r),
      nearestTokens: (r) => engine.nearestTokens(r),
      rankHistory: (r) => engine.rankHistory(r),
    };
  });

  it.each(experiments)(
    '$name',
    async ({ step }) => {
      const small: KnobValues = { steps: 2 };
      const runs = step.run!(knobValues(step.setup, small));
      const labels: string[] = [];
      const o = await runExperiment(step, small, backend, {
        loadedModel: loaded,
        onRun: (p) => labels.push(p.run.label),
      });
      loaded = o.model;
      expect(labels).toEqual(runs.map((r) => r.label));
      expect(Object.keys(o.results).sort()).toEqual(runs.map((r) => r.id).sort());
      for (const r of Object.values(o.results)) {
        if (r.kind === 'race') for (const l of r.snapshot.lanes) expect(l.status, l.name).toBe('done');
      }
      expect(o.stopped).toBe(false);
      const verdict = o.verdict!;
      expect(['holds', 'does-not-hold', 'mixed']).toContain(verdict.outcome);
      expect(verdict.claim.length).toBeGreaterThan(20);
      // The verdict quotes the run's own numbers.
      expect(verdict.text).toMatch(/\d/);
      expect(verdict.text).not.toMatch(/NaN|undefined/);
      for (const r of Object.values(o.results)) {
        if (r.kind !== 'swarm') continue;
        // A peer died in the failure run, was routed around, and the losses are those without it.
        const f = r.trial.failure;
        expect(f.killed).not.toBeNull();
        expect(f.failures).toBeGreaterThanOrEqual(1);
        for (const [i, l] of f.losses.entries())
          expect(Math.abs(l - r.trial.runs[0]!.losses[i]!)).toBeLessThan(1e-5);
        expect(r.trial.runs.map((x) => x.latencyMs)).toEqual(SWARM_LATENCIES);
      }
    },
    120_000,
  );
});

/** A finished lane with a metric before and after, and a measured step memory. */
function lane(name: string, before: number, after: number, trainable: number, memory: number): LaneState {
  const ledger = {
    parameters: memory / 2,
    gradients: 0,
    optimizer: 0,
    activations: memory / 2,
    total: memory,
  };
  return {
    id: name,
    name,
    method: 'x',
    peftType: 'X',
    config: {} as LaneState['config'],
    lr: 1e-3,
    trainableParams: trainable,
    totalParams: 1e6,
    status: 'done',
    steps: [{ step: 1, loss: 1, lr: 1e-3, ms: 10, tokens: 100 }],
    evals: [
      { step: 0, loss: 1, metric: before, macroF1: before },
      { step: 1, loss: 0.5, metric: after, macroF1: after },
    ],
    trainMs: 10,
    tokens: 100,
    ledger: { predicted: ledger, measured: ledger },
  };
}

function race(lanes: LaneState[]): { kind: 'race'; snapshot: RaceSnapshot } {
  return {
    kind: 'race',
    snapshot: {
      task: 'spam',
      taskType: 'SEQ_CLS',
      metric: 'accuracy',
      lanes,
      results: { metric: 'accuracy', rows: [], verdicts: [] } as unknown as RaceSnapshot['results'],
    },
  };
}

function experiment(id: string, title: RegExp): LessonStep {
  return findLesson(id)!.steps.find((s) => s.run && title.test(s.title))!;
}

describe('verdicts follow the numbers, not a script', () => {
  it('LoRA: holds when full fine-tuning wins and LoRA is lighter, and not when LoRA wins and is heavier', () => {
    const step = experiment('lora', /full fine-tuning against LoRA/);
    const v = knobValues(step.setup);
    const holds: LessonResults = {
      race: race([
        lane('LoRA on c_attn', 0.5, 0.7, 100, 100),
        lane('LoRA on every linear layer', 0.5, 0.72, 400, 110),
        lane('Full fine-tuning', 0.5, 0.8, 10000, 200),
      ]),
    };
    expect(step.check!(holds, v).outcome).toBe('holds');
    expect(step.check!(holds, v).text).toMatch(/Full fine-tuning reached accuracy 80\.0%/);
    const not: LessonResults = {
      race: race([
        lane('LoRA on c_attn', 0.5, 0.9, 100, 300),
        lane('LoRA on every linear layer', 0.5, 0.72, 400, 310),
        lane('Full fine-tuning', 0.5, 0.8, 10000, 200),
      ]),
    };
    expect(step.check!(not, v).outcome).toBe('does-not-hold');
    expect(step.check!(not, v).text).toMatch(/LoRA on c_attn reached accuracy 90\.0%/);
  });

  it("LoRA variants: a variant counts as ahead only by more than LoRA's seed-to-seed gap in held-out loss", () => {
    const step = experiment('lora', /DoRA and PiSSA against LoRA/);
    const v = knobValues(step.setup);
    /** A lane whose held-out loss ends at `loss`. */
    const at = (name: string, loss: number, trainable = 100): LaneState => {
      const l = lane(name, 0.5, 0.8, trainable, 1);
      l.evals[1]!.loss = loss;
      return l;
    };
    const results = (dora: number, pissa: number, nextSeed: number): LessonResults => ({
      race: race([at('LoRA', 0.5), at('DoRA', dora, 124), at('PiSSA', pissa)]),
      again: race([at('LoRA, next seed', nextSeed)]),
    });
    // Seeds 0.02 apart: DoRA 0.05 and PiSSA 0.03 ahead both count.
    const both = step.check!(results(0.45, 0.47, 0.52), v);
    expect(both.outcome).toBe('holds');
    expect(both.text).toMatch(/a gap under 0\.020 is read as noise: DoRA is ahead of LoRA by 0\.050/);
    expect(both.text).toMatch(/DoRA trained 124 parameters against 100 \(24 magnitudes/);
    // The same losses with seeds 0.04 apart: PiSSA's 0.03 is noise, DoRA's 0.05 is not.
    const one = step.check!(results(0.45, 0.47, 0.46), v);
    expect(one.outcome).toBe('mixed');
    expect(one.text).toMatch(/PiSSA is within it \(ahead by 0\.030\)/);
    // Seeds that agree exactly still leave the floor: 0.005 is not a difference.
    const none = step.check!(results(0.495, 0.56, 0.5), v);
    expect(none.outcome).toBe('does-not-hold');
    expect(none.text).toMatch(/a gap under 0\.010 is read as noise: DoRA is within it/);
    expect(none.text).toMatch(/PiSSA is behind LoRA by 0\.060, more than that/);
    expect(none.text).toMatch(/All three train at the same learning rate \(0\.001, LoRA's\)/);
    const noise = step.check!(results(0.495, 0.505, 0.5), v);
    expect(noise.outcome).toBe('does-not-hold');
    expect(noise.text).toMatch(/the seed moves the result as much as the choice of variant/);
    expect(none.table!.rows.map((r) => r[0])).toEqual(['LoRA', 'DoRA', 'PiSSA', 'LoRA, next seed']);
  });

  it('prompt tuning and scale: holds when the ratio to full fine-tuning rises with size, not when it falls', () => {
    const step = experiment('prompt-tuning', /scale/);
    const v = knobValues(step.setup);
    const with3 = (ratios: number[]): LessonResults =>
      Object.fromEntries(
        ['peftlab-s', 'peftlab-m', 'peftlab-l'].map((m, i) => [
          m,
          race([
            lane('Prompt tuning', 0.5, 0.8 * ratios[i]!, 10, 1),
            lane('Full fine-tuning', 0.5, 0.8, 1000, 1),
          ]),
        ]),
      );
    expect(step.check!(with3([0.6, 0.7, 0.9]), v).outcome).toBe('holds');
    expect(step.check!(with3([0.9, 0.7, 0.6]), v).outcome).toBe('does-not-hold');
    expect(step.check!(with3([0.6, 0.5, 0.9]), v).outcome).toBe('mixed');
  });

  it('flags a lane that answers one class for everything', () => {
    const step = experiment('p-tuning', /four rows/);
    const v = knobValues(step.setup);
    const pt = lane('PT', 0.3, 0.68, 100, 1);
    pt.evals[1]!.macroF1 = 0.405; // always "ham" on a 68/32 split
    const r: LessonResults = {
      ft: race([lane('FT', 0.5, 0.69, 1000, 1)]),
      prompted: race([lane('MP+FT', 0.32, 0.7, 1000, 1), pt]),
    };
    const verdict = step.check!(r, v);
    expect(verdict.text).toMatch(/PT answers the same class for nearly every e-mail/);
    expect(verdict.text).toMatch(/HF PEFT's own P-tuning does the same on this model and data/);
    expect(verdict.outcome).toBe('does-not-hold');
  });

  it('MLP vs LSTM: says the run cannot tell the encoders apart when both answer one class', () => {
    const step = experiment('p-tuning', /MLP or LSTM/);
    const v = knobValues(step.setup);
    const oneClass = (name: string) => {
      const l = lane(name, 0.3, 0.69, 100, 1);
      l.evals[1]!.macroF1 = 0.41;
      return l;
    };
    const probe = { kind: 'probe' as const, nearest: { rows: [] } } as unknown as LessonResults[string];
    const stuck = step.check!(
      { race: race([oneClass('MLP encoder'), oneClass('LSTM encoder')]), nearest: probe },
      v,
    );
    expect(stuck.text).toMatch(/Neither encoder got past the class balance/);
    expect(stuck.text).toMatch(/HF PEFT's own P-tuning does the same/);
    const skilled = step.check!(
      {
        race: race([lane('MLP encoder', 0.3, 0.7, 100, 1), lane('LSTM encoder', 0.3, 0.8, 100, 1)]),
        nearest: probe,
      },
      v,
    );
    expect(skilled.text).not.toMatch(/Neither encoder/);
  });
});

describe('lesson 9 reads the swarm trial', () => {
  const run = (latencyMs: number, ms: number) => ({
    latencyMs,
    losses: [1, 1, 1],
    ms: [999, ms, ms],
    bytes: 0,
    requests: 0,
    failures: 0,
    killed: null,
    killedAtStep: null,
  });
  const runs = [run(0, 100), run(10, 200), run(50, 600)];
  it('finds the latency at which the swarm reaches the offloaded step time (first step left out)', () => {
    expect(crossover(runs, 150)).toBeCloseTo(5);
    expect(crossover(runs, 400)).toBeCloseTo(30);
    expect(crossover(runs, 50)).toBeNull();
    expect(crossover(runs, 700)).toBeNull();
  });
  it('interpolates the step time at a latency between those measured, clamped outside', () => {
    expect(stepMsAt(runs, 30)).toBeCloseTo(400);
    expect(stepMsAt(runs, 500)).toBe(600);
    expect(stepMsAt([], 5)).toBeNaN();
  });
});
