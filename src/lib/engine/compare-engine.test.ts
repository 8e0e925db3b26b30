import { describe, it, expect, beforeAll } from 'vitest';
import { initNodeBackend } from '../backend/node';

import { CompareEngine } from './compare-engine';
import type { CompareEvents } from '../protocol/compare-protocol';
import { publicFetch } from './testing';

const SETTINGS = { steps: 4, batchSize: 2, seqLen: 24, seed: 1, evalEvery: 2 };

describe('CompareEngine (in-process, the compare worker runs the same class)', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('races methods on a classification task with events, answers side by side, and draws where parameters live', async () => {
    const events: { kind: keyof CompareEvents; data: unknown }[] = [];
    const engine = new CompareEngine(publicFetch, (kind, data) => events.push({ kind, data }));
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const baseline = engine.numTensors();
    const snap = await engine.race({
      task: 'spam',
      corpusUrl: 'data/spam/',
      settings: SETTINGS,
      lanes: [{ method: 'lora' }, { method: 'prompt-tuning' }, { method: 'adalora' }],
      // Nothing here reads a score: 8 held-out e-mails instead of 256 keep the 10 evaluations quick.
      evalExamples: 8,
    });
    expect(snap.lanes.map((l) => l.status)).toEqual(['done', 'done', 'done']);
    expect(snap.results.rows).toHaveLength(3);
    expect(events.filter((e) => e.kind === 'step')).toHaveLength(12);
    expect(events.filter((e) => e.kind === 'eval').length).toBeGreaterThanOrEqual(9);

    const answers = await engine.tryAll({ text: 'Win a free prize now, click here', maxNewTokens: 4 });
    expect(answers.map((a) => a.name)).toEqual(['Base model', 'LoRA', 'Prompt tuning', 'AdaLoRA']);
    expect(answers[0]!.note).toMatch(/no classification head/);
    for (const a of answers.slice(1)) {
      expect(a.labels).toEqual(['ham', 'spam']);
      expect(a.probs!.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 5);
    }

    const pt = snap.lanes[1]!;
    const near = await engine.nearestTokens({ laneId: pt.id, k: 3 });
    expect(near.rows).toHaveLength((pt.config as unknown as { numVirtualTokens: number }).numVirtualTokens);
    for (const r of near.rows) {
      expect(r.tokens).toHaveLength(3);
      expect(r.cosines[0]!).toBeGreaterThanOrEqual(r.cosines[2]!);
    }
    await expect(engine.nearestTokens({ laneId: snap.lanes[0]!.id, k: 3 })).rejects.toThrow(
      /only prompt tuning/,
    );

    const ranks = await engine.rankHistory({ laneId: snap.lanes[2]!.id });
    expect(ranks.matrices[0]).toBe('transformer.h.0.attn.c_attn');
    expect(ranks.points[0]!.ranks.every((r) => r === ranks.initR)).toBe(true);

    const maps = await engine.parameterMaps();
    const [lora, prompt] = maps;
    expect(lora!.layers[0]!['attn.c_attn']).toBeGreaterThan(0);
    expect(lora!.head).toBe(prompt!.head);
    expect(prompt!.input).toBeGreaterThan(0);
    for (const m of maps) expect(m.total).toBe(snap.lanes.find((l) => l.id === m.laneId)!.trainableParams);

    // A lane added to the finished race runs alone; the others keep their curves.
    const before = snap.lanes[0]!.steps.map((s) => s.loss);
    const more = await engine.addLane({ lane: { method: 'ia3' } });
    expect(more.lanes).toHaveLength(4);
    expect(more.lanes[0]!.steps.map((s) => s.loss)).toEqual(before);
    expect(more.lanes[3]!.status).toBe('done');

    // A start the model cannot take is refused before tokenizing and keeps the finished race.
    await expect(
      engine.race({
        task: 'spam',
        corpusUrl: 'data/spam/',
        settings: { ...SETTINGS, seqLen: 4096 },
        lanes: [{ method: 'lora' }],
      }),
    ).rejects.toThrow(/exceeds the model's 256 positions/);
    await expect(
      engine.race({
        task: 'spam',
        corpusUrl: 'data/spam/',
        settings: SETTINGS,
        lanes: [{ method: 'lora', config: { r: 0 } }],
      }),
    ).rejects.toThrow(/r/);
    expect((await engine.tryAll({ text: 'hello', maxNewTokens: 1 })).length).toBe(5);

    // Loading another model frees the race.
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    expect(engine.numTensors()).toBe(baseline);
  });

  it('pauses, resumes and stops a race between steps; sizes lanes to an equal budget', async () => {
    let steps = 0;
    const phases: string[] = [];
    const engine: CompareEngine = new CompareEngine(publicFetch, (kind, data) => {
      if (kind === 'status') phases.push((data as CompareEvents['status']).phase);
      if (kind !== 'step') return;
      steps++;
      if (steps === 2) void engine.pause().then(() => setTimeout(() => void engine.resume(), 20));
      if (steps === 5) void engine.stop();
    });
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const { defaultBudget } = await engine.budget({ task: 'moby-dick', seqLen: 24 });
    const snap = await engine.race({
      task: 'moby-dick',
      corpusUrl: 'data/moby-dick/',
      settings: { ...SETTINGS, steps: 50 },
      lanes: [{ method: 'lora' }, { method: 'prompt-tuning' }],
      equalBudget: defaultBudget,
    });
    expect(phases).toContain('paused');
    expect(snap.lanes.map((l) => l.status)).toEqual(['stopped', 'stopped']);
    expect(snap.lanes[1]!.trainableParams).toBe(defaultBudget);
    expect(Math.abs(snap.lanes[0]!.trainableParams - defaultBudget) / defaultBudget).toBeLessThan(0.5);
    await expect(
      engine.race({ task: 'nope', corpusUrl: 'x', settings: SETTINGS, lanes: [{ method: 'lora' }] }),
    ).rejects.toThrow(/unknown task "nope"/);
  });

  it('previews where lanes would put their parameters, and runs offload trials under a memory budget', async () => {
    const engine = new CompareEngine(publicFetch);
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const baseline = engine.numTensors();
    const maps = await engine.preview({
      task: 'spam',
      seqLen: 24,
      lanes: [
        { method: 'lora', name: 'A' },
        { method: 'lora', config: { r: 16 } },
        { method: 'prompt-tuning' },
      ],
    });
    expect(maps.map((m) => m.name)).toEqual(['A', 'LoRA', 'Prompt tuning']);
    // LoRA at r 16 trains twice the adapter values of r 8 (the head is the same).
    expect(maps[1]!.total - maps[1]!.head).toBe(2 * (maps[0]!.total - maps[0]!.head));
    expect(maps[2]!.input).toBeGreaterThan(0);
    expect(engine.numTensors()).toBe(baseline);

    const trial = (stage: 0 | 3, budget: number | null) =>
      engine.offloadTrial({
        task: 'spam',
        corpusUrl: 'data/spam/',
        method: 'lora',
        steps: 3,
        batchSize: 4,
        seqLen: 32,
        seed: 0,
        offload: {
          stage,
          budgetMB: 0.6,
          prefetch: true,
          policy: 'trace',
          int8: false,
          gradientCheckpointing: stage === 3,
        },
        memoryBudgetMB: budget,
      });
    const resident = await trial(0, null);
    expect(resident.refused).toBeNull();
    expect(resident.losses).toHaveLength(3);
    const peakMiB = Math.max(...resident.peakBytes) / 2 ** 20;
    // The same budget refuses stage 0 at its first step and lets stage 3 train: the same losses, less memory.
    const budget = Math.ceil(peakMiB * 0.8);
    const refused = await trial(0, budget);
    expect(refused.refused).toMatch(
      new RegExp(`step 1 needed [0-9.]+ MiB at its peak, over the ${budget} MiB budget`),
    );
    expect(refused.losses).toEqual([]);
    const paged = await trial(3, budget);
    expect(paged.refused).toBeNull();
    expect(Math.max(...paged.peakBytes)).toBeLessThan(budget * 2 ** 20);
    expect(paged.pager!.pageIns).toBeGreaterThan(0);
    for (let i = 0; i < 3; i++) expect(paged.losses[i]!).toBeCloseTo(resident.losses[i]!, 4);
    expect(engine.numTensors()).toBe(baseline);
  });

  it('wraps classification inputs in a manual prompt template, and refuses one without {text}', async () => {
    const engine = new CompareEngine(publicFetch);
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const race = (template: string, task = 'spam') =>
      engine.race({
        task,
        corpusUrl: `data/${task}/`,
        settings: { ...SETTINGS, steps: 1 },
        lanes: [{ method: 'lora' }],
        evalExamples: 8,
        template,
      });
    const plain = await engine.race({
      task: 'spam',
      corpusUrl: 'data/spam/',
      settings: { ...SETTINGS, steps: 1 },
      lanes: [{ method: 'lora' }],
      evalExamples: 8,
    });
    const wrapped = await race('Mail: {text} Is this mail spam?');
    expect(wrapped.lanes[0]!.evals[0]!.loss).not.toBe(plain.lanes[0]!.evals[0]!.loss);
    await expect(race('no placeholder')).rejects.toThrow(/exactly one \{text\}/);
    await expect(race('x {text}', 'moby-dick')).rejects.toThrow(/wraps a sequence-classification input/);
    await expect(race('a very long prompt '.repeat(20) + '{text}')).rejects.toThrow(/no room for the input/);
  });

  it('a second race on the same model trains as the first did (the first race is freed before)', async () => {
    let tokenized = 0;
    const engine = new CompareEngine(publicFetch, (kind, data) => {
      if (kind === 'status' && (data as CompareEvents['status']).phase === 'tokenizing') tokenized++;
    });
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const baseline = engine.numTensors();
    const run = () =>
      engine.race({
        task: 'spam',
        corpusUrl: 'data/spam/',
        settings: { ...SETTINGS, steps: 2 },
        lanes: [{ method: 'full' }, { method: 'lora' }],
        evalExamples: 8,
      });
    const first = await run();
    const second = await run();
    expect(second.lanes.map((l) => l.status)).toEqual(['done', 'done']);
    for (const i of [0, 1]) {
      expect(second.lanes[i]!.steps.map((s) => s.loss)).toEqual(first.lanes[i]!.steps.map((s) => s.loss));
    }
    // The second race trained on the first one's tokenized data, kept by the engine.
    expect(tokenized).toBe(1);
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    expect(engine.numTensors()).toBe(baseline);
  });
});
