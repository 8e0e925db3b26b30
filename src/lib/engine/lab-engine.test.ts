import 'fake-indexeddb/auto';
import { describe, it, expect, beforeAll } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import { LabEngine } from './lab-engine';
import type { EvalPoint, LabEvents, TrainProgress } from '../protocol/lab-protocol';
import type { MethodName, MethodRequest } from '../peft/method-config';
import { AdapterError, FileLoadError, PeftConfigError, PeftLabError } from '../errors';
import { importDataset, taskDataUrl, importedTaskInfo } from '../data/imported';
import { deleteDataset } from '../storage/datasets';
import { PUBLIC_DIR, publicFetch } from './testing';

const TRAIN = { steps: 6, lr: 5e-3, batchSize: 2, seqLen: 32, seed: 1, warmupSteps: 1, evalEvery: 3 };

describe('LabEngine (in-process, the worker runs the same class)', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('loads the bundled model, trains LoRA with progress events, pauses, and answers with and without the adapter', async () => {
    const events: { kind: keyof LabEvents; data: unknown }[] = [];
    const engine = new LabEngine(publicFetch, (kind, data) => events.push({ kind, data }));
    const model = await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    expect(model.params).toBe(556896);
    await expect(
      engine.generate({ prompt: '', maxNewTokens: 3, temperature: 0, seed: 0, useAdapter: false }),
    ).rejects.toThrow(/prompt is empty/);
    const baseline = engine.numTensors();

    const run = engine.train({
      method: 'lora',
      config: { r: 4 },
      train: TRAIN,
      corpusUrl: 'data/moby-dick/',
    });
    // Pause after the first progress event, check it holds, then resume.
    await new Promise<void>((r) => {
      const iv = setInterval(() => {
        if (events.some((e) => e.kind === 'progress')) {
          clearInterval(iv);
          r();
        }
      }, 5);
    });
    await engine.pause();
    const seen = events.filter((e) => e.kind === 'progress').length;
    await new Promise((r) => setTimeout(r, 50));
    expect(events.filter((e) => e.kind === 'progress').length).toBeLessThanOrEqual(seen + 1);
    await engine.resume();
    const result = await run;

    const progress = events.filter((e) => e.kind === 'progress').map((e) => e.data as TrainProgress);
    expect(progress.map((p) => p.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(result.trainableParams).toBe(3 * 4 * (96 + 288));
    expect(result.evalAfter.loss).toBeLessThan(result.evalBefore.loss + 0.05);
    expect(events.filter((e) => e.kind === 'eval').length).toBe(3); // before, step 3, after

    const req = { prompt: 'Call me Ishmael.', maxNewTokens: 8, temperature: 0, seed: 0 };
    const base = await engine.generate({ ...req, useAdapter: false });
    const again = await engine.generate({ ...req, useAdapter: false });
    expect(again.generatedIds).toEqual(base.generatedIds);
    expect(base.generatedIds).toHaveLength(8);

    // Export, drop, import: the adapted answer is the same.
    const adapted = await engine.generate({ ...req, useAdapter: true });
    const files = await engine.exportAdapter();
    await engine.dropAdapter();
    await engine.importAdapter({ ...files, source: 'saved' });
    expect((await engine.generate({ ...req, useAdapter: true })).generatedIds).toEqual(adapted.generatedIds);
    await engine.dropAdapter();
    expect(engine.numTensors()).toBe(baseline + 1); // + the cached wte^T made by generation
  });

  it.each([
    [
      'prompt-tuning',
      { promptTuningInit: 'TEXT', promptTuningInitText: 'Call me Ishmael.', numVirtualTokens: 6 },
    ],
    ['prefix-tuning', { prefixProjection: true, numVirtualTokens: 4 }],
    ['adalora', { initR: 4, targetR: 2 }],
  ] as const)(
    'trains %s with the tokenizer and run length it needs, and answers with it',
    async (method, config) => {
      const engine = new LabEngine(publicFetch);
      await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
      const result = await engine.train({
        ...({ method, config } as MethodRequest),
        train: TRAIN,
        corpusUrl: 'data/moby-dick/',
      });
      expect(result.steps).toBe(TRAIN.steps);
      expect(Number.isFinite(result.evalAfter.loss)).toBe(true);
      const req = { prompt: 'Call me Ishmael.', maxNewTokens: 6, temperature: 0, seed: 0 };
      const adapted = await engine.generate({ ...req, useAdapter: true });
      expect(adapted.generatedIds.length).toBeGreaterThan(0);
      const files = await engine.exportAdapter();
      await engine.dropAdapter();
      await engine.importAdapter({ ...files, source: 'saved' });
      expect((await engine.generate({ ...req, useAdapter: true })).generatedIds).toEqual(
        adapted.generatedIds,
      );
      await engine.dropAdapter();
      // A P-tuning v2 run on a language-modelling task is refused with the pairs that work.
      await expect(
        engine.train({ method: 'p-tuning-v2', config: {}, train: TRAIN, corpusUrl: 'data/moby-dick/' }),
      ).rejects.toThrow(/P-tuning v2 does not train CAUSAL_LM tasks/);
    },
  );

  it('keeps several adapters resident on the model and switches between them without reloading', async () => {
    const engine = new LabEngine(publicFetch);
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const say = { prompt: 'Call me Ishmael.', maxNewTokens: 6, temperature: 0, seed: 0 };
    const base = await engine.generate({ ...say, useAdapter: false });
    const train = { ...TRAIN, steps: 3, lr: 5e-2 };
    await engine.train({
      method: 'prefix-tuning',
      config: { numVirtualTokens: 4 },
      train,
      corpusUrl: 'data/moby-dick/',
    });
    const prefixFiles = await engine.exportAdapter();
    const prefixSays = await engine.generate({ ...say, useAdapter: true });
    // A second run replaces the trained adapter; the saved prefix comes back under its own name.
    await engine.train({ method: 'lora', config: { r: 4 }, train, corpusUrl: 'data/moby-dick/' });
    const loraSays = await engine.generate({ ...say, useAdapter: true });
    const loaded = await engine.importAdapter({ ...prefixFiles, source: 'prefix-saved' });
    expect(loaded).toMatchObject({ name: 'prefix-saved', method: 'prefix-tuning' });
    expect((await engine.generate({ ...say, useAdapter: true })).generatedIds).toEqual(
      prefixSays.generatedIds,
    );
    expect(await engine.useAdapter({ name: 'trained' })).toMatchObject({ name: 'trained', method: 'lora' });
    expect((await engine.generate({ ...say, useAdapter: true })).generatedIds).toEqual(loraSays.generatedIds);
    expect(await engine.useAdapter({ name: null })).toBeNull();
    expect((await engine.generate({ ...say, useAdapter: true })).generatedIds).toEqual(base.generatedIds);
    await expect(engine.useAdapter({ name: 'nope' })).rejects.toThrow(
      /no adapter named "nope" is loaded; loaded: trained, prefix-saved/,
    );
    // A file that does not load leaves the active adapter as it was.
    await engine.useAdapter({ name: 'trained' });
    await expect(
      engine.importAdapter({
        config: '{"peft_type": "FOURIERFT"}',
        weights: prefixFiles.weights,
        source: 'bad',
      }),
    ).rejects.toThrow(/FOURIERFT/);
    await expect(
      engine.importAdapter({ config: 'not json', weights: prefixFiles.weights, source: 'bad' }),
    ).rejects.toThrow(AdapterError);
    expect((await engine.generate({ ...say, useAdapter: true })).generatedIds).toEqual(loraSays.generatedIds);
  });

  it('stops early on request and names bad requests', async () => {
    const engine = new LabEngine(publicFetch);
    await expect(
      engine.train({ method: 'lora', config: {}, train: TRAIN, corpusUrl: 'data/moby-dick/' }),
    ).rejects.toThrow(PeftLabError);
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    await expect(
      engine.train({
        method: 'lora',
        config: { targetModules: ['q_proj'] },
        train: TRAIN,
        corpusUrl: 'data/moby-dick/',
      }),
    ).rejects.toThrow(PeftConfigError);
    await expect(
      // A name that does not compile still reaches the engine from a saved request or a URL.
      engine.train({ method: 'nope' as MethodName, config: {}, train: TRAIN, corpusUrl: 'data/moby-dick/' }),
    ).rejects.toThrow(/unknown method "nope"/);
    await expect(engine.loadModel({ id: 'missing', baseUrl: 'models/missing/' })).rejects.toThrow(
      FileLoadError,
    );
    const run = engine.train({
      method: 'lora',
      config: {},
      train: { ...TRAIN, steps: 1000 },
      corpusUrl: 'data/moby-dick/',
    });
    setTimeout(() => void engine.stop(), 300);
    const result = await run;
    expect(result.stopped).toBe(true);
    expect(result.steps).toBeLessThan(1000);
  });

  it('trains P-tuning v2 with a verbalizer (no trained head) and reloads it from the label tokens it saved', async () => {
    const engine = new LabEngine(publicFetch);
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const result = await engine.train({
      method: 'p-tuning-v2',
      config: { verbalizer: true, numVirtualTokens: 4 },
      train: { ...TRAIN, steps: 3, batchSize: 4 },
      task: 'spam',
      corpusUrl: 'data/spam/',
    });
    // Only the prefixes train: 4 tokens x 2 x 3 layers x 96.
    expect(result.trainableParams).toBe(4 * 2 * 3 * 96);
    const text = 'Subject: Make money fast!!!';
    const before = await engine.classify({ text });
    const files = await engine.exportAdapter();
    const cfg = JSON.parse(files.config) as Record<string, unknown>;
    expect(cfg).toMatchObject({ peft_type: 'PREFIX_TUNING', task_type: 'SEQ_CLS', verbalizer: true });
    expect(cfg.verbalizer_token_ids).toHaveLength(2);
    await engine.dropAdapter();
    const summary = await engine.importAdapter({ ...files, source: 'saved', labels: ['ham', 'spam'] });
    expect(summary.method).toBe('p-tuning-v2');
    expect((await engine.classify({ text })).probs).toEqual(before.probs);
    await engine.dropAdapter();
  });

  it('trains a spam classifier with accuracy events, classifies, and round-trips the adapter with its head', async () => {
    const events: { kind: keyof LabEvents; data: unknown }[] = [];
    const engine = new LabEngine(publicFetch, (kind, data) => events.push({ kind, data }));
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    await expect(engine.classify({ text: 'hello' })).rejects.toThrow(/no sequence-classification adapter/);
    const result = await engine.train({
      method: 'lora',
      config: { r: 4 },
      train: { ...TRAIN, steps: 4, batchSize: 4, evalEvery: 2 },
      task: 'spam',
      corpusUrl: 'data/spam/',
    });
    expect(result).toMatchObject({ task: 'spam', taskType: 'SEQ_CLS', metric: 'accuracy', steps: 4 });
    expect(result.evalExamples).toBe(256);
    const evals = events.filter((e) => e.kind === 'eval').map((e) => e.data as EvalPoint);
    expect(evals.map((e) => e.step)).toEqual([0, 2, 4]); // before, every 2 steps, after
    for (const e of evals) {
      expect(e.metric).toBeGreaterThanOrEqual(0);
      expect(e.metric).toBeLessThanOrEqual(1);
      expect(Number.isFinite(e.loss)).toBe(true);
    }
    expect(result.evalAfter).toEqual(evals.at(-1));
    // LoRA r=4 on c_attn plus the whole `score` head (modulesToSave): 96 x 2 weights, no bias.
    expect(result.trainableParams).toBe(3 * 4 * (96 + 288) + 96 * 2);

    const text = 'Subject: Make money fast!!!\nFrom: example.com\nClick here to claim your prize';
    const c = await engine.classify({ text });
    expect(c.labels).toEqual(['ham', 'spam']);
    expect(c.probs[0]! + c.probs[1]!).toBeCloseTo(1, 5);
    await expect(engine.tag({ text })).rejects.toThrow(/no token-classification adapter/);
    await expect(
      engine.generate({ prompt: 'x', maxNewTokens: 1, temperature: 0, seed: 0, useAdapter: true }),
    ).resolves.toBeDefined();

    const files = await engine.exportAdapter();
    const cfg = JSON.parse(files.config) as { task_type: string; modules_to_save: string[] };
    expect(cfg.task_type).toBe('SEQ_CLS');
    expect(cfg.modules_to_save).toContain('score');
    expect(new TextDecoder().decode(files.weights.slice(0, 4096))).toContain('score.weight');
    await engine.dropAdapter();
    const summary = await engine.importAdapter({ ...files, source: 'saved', labels: ['ham', 'spam'] });
    expect(summary.taskType).toBe('SEQ_CLS');
    expect(summary.trainableParams).toBe(result.trainableParams);
    const again = await engine.classify({ text });
    expect(again.probs[0]).toBeCloseTo(c.probs[0]!, 5);
    await engine.dropAdapter();
  });

  it('skips diverged steps, then pauses naming the cause; stopping keeps finite weights to save', async () => {
    const events: { kind: keyof LabEvents; data: unknown }[] = [];
    const engine = new LabEngine(publicFetch, (kind, data) => events.push({ kind, data }));
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const status = () => events.filter((e) => e.kind === 'status').map((e) => e.data as LabEvents['status']);
    // A learning rate of 1e30 blows the weights up after the first update: every later loss is NaN.
    const run = engine.train({
      method: 'lora',
      config: { r: 4 },
      train: { ...TRAIN, lr: 1e30, steps: 10, evalEvery: 0 },
      corpusUrl: 'data/moby-dick/',
    });
    await new Promise<void>((r) => {
      const iv = setInterval(() => {
        if (status().some((s) => s.phase === 'paused')) {
          clearInterval(iv);
          r();
        }
      }, 5);
    });
    const skips = status().filter((s) => /skipped .*learning rate halved/.test(s.message));
    expect(skips).toHaveLength(2);
    const paused = status().find((s) => s.phase === 'paused')!;
    expect(paused.message).toMatch(
      /^paused: the loss was NaN at step 2, 3 steps in a row.*lower the learning rate/,
    );
    // Paused: progress stays at the one good step until stopped.
    await new Promise((r) => setTimeout(r, 30));
    await engine.stop();
    const result = await run;
    expect(result.stopped).toBe(true);
    expect(result.steps).toBe(1);
    expect(events.filter((e) => e.kind === 'progress').map((e) => (e.data as TrainProgress).step)).toEqual([
      1,
    ]);
    // The weights are the last good step's: no NaN, so they save.
    await expect(engine.exportAdapter()).resolves.toBeDefined();
  });

  it('trains a part-of-speech tagger and tags one word at a time', async () => {
    const engine = new LabEngine(publicFetch);
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const result = await engine.train({
      method: 'lora',
      config: {},
      train: { ...TRAIN, steps: 2, batchSize: 4, evalEvery: 0 },
      task: 'brown-pos',
      corpusUrl: 'data/brown-pos/',
    });
    expect(result).toMatchObject({ taskType: 'TOKEN_CLS', metric: 'tokenAccuracy' });
    const t = await engine.tag({ text: '  The old  man sailed home . ' });
    expect(t.words).toEqual(['The', 'old', 'man', 'sailed', 'home', '.']);
    expect(t.tags).toHaveLength(6);
    for (const tag of t.tags) expect(tag).toMatch(/^[A-Z.]+$/);
    await expect(engine.classify({ text: 'x' })).rejects.toThrow(PeftLabError);
    await expect(
      engine.train({ method: 'lora', config: {}, train: TRAIN, task: 'nope', corpusUrl: 'data/x/' }),
    ).rejects.toThrow(/unknown task "nope"/);
  });

  it('trains on imported data sets read from IndexedDB: SEQ_CLS with its own labels, and CAUSAL_LM', async () => {
    const engine = new LabEngine(publicFetch);
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    // Real mail from the spam task, as a CSV-free JSONL file with other field and label names.
    const lines = (await readFile(join(PUBLIC_DIR, 'data/spam/validation.jsonl'), 'utf8')).trim().split('\n');
    const jsonl = lines
      .slice(0, 60)
      .map((l) => JSON.parse(l) as { text: string; label: string })
      .map((r) => JSON.stringify({ body: r.text, kind: r.label === 'spam' ? 'junk' : 'mail' }))
      .join('\n');
    const meta = await importDataset(jsonl, {
      id: 'data-mail',
      name: 'my mail',
      fileName: 'mail.jsonl',
      format: 'jsonl',
      bytes: jsonl.length,
      taskType: 'SEQ_CLS',
      textColumn: 'body',
      labelColumn: 'kind',
    });
    const info = importedTaskInfo(meta);
    const result = await engine.train({
      method: 'lora',
      config: { r: 4 },
      train: { ...TRAIN, steps: 2, batchSize: 4, evalEvery: 0 },
      task: info.id,
      corpusUrl: taskDataUrl(info, '/'),
    });
    expect(result).toMatchObject({ task: 'data-mail', taskType: 'SEQ_CLS', metric: 'accuracy', steps: 2 });
    expect(result.evalExamples).toBe(meta.splits.validation.examples);
    expect(result.evalAfter.metric).toBeGreaterThanOrEqual(0);
    expect(result.evalAfter.metric).toBeLessThanOrEqual(1);
    expect((await engine.classify({ text: 'Click here for cash' })).labels).toEqual(['junk', 'mail']);

    const moby = (await readFile(join(PUBLIC_DIR, 'data/moby-dick/validation.txt'), 'utf8')).slice(0, 5000);
    const lm = await importDataset(moby, {
      id: 'data-moby',
      name: 'moby part',
      fileName: 'moby.txt',
      format: 'txt',
      bytes: moby.length,
      taskType: 'CAUSAL_LM',
    });
    const lmInfo = importedTaskInfo(lm);
    const lmResult = await engine.train({
      method: 'lora',
      config: { r: 4 },
      train: { ...TRAIN, steps: 2, evalEvery: 0 },
      task: lmInfo.id,
      corpusUrl: taskDataUrl(lmInfo, '/'),
    });
    expect(lmResult).toMatchObject({ task: 'data-moby', taskType: 'CAUSAL_LM', metric: 'perplexity' });
    expect(lmResult.evalAfter.metric).toBeCloseTo(Math.exp(lmResult.evalAfter.loss), 6);
    expect(lmResult.evalAfter.loss).toBeGreaterThan(1);

    // A window longer than the held-out text is named, not scored as nothing.
    await expect(
      engine.train({
        method: 'lora',
        config: { r: 4 },
        train: { ...TRAIN, steps: 1, seqLen: 250 },
        task: lmInfo.id,
        corpusUrl: taskDataUrl(lmInfo, '/'),
      }),
    ).rejects.toThrow(/validation split of moby part is \d+ tokens, shorter than one window of 251/);
    // A deleted data set is an unknown task.
    await deleteDataset('data-mail');
    await expect(
      engine.train({
        method: 'lora',
        config: {},
        train: TRAIN,
        task: 'data-mail',
        corpusUrl: 'idb:data-mail/',
      }),
    ).rejects.toThrow(/unknown task "data-mail": pick a built-in task or a data set imported/);
  });
});
