import 'fake-indexeddb/auto';
import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../backend/node';
import { AdapterMismatchError } from '../errors';
import { loraFiles } from '../io/combine-testing';
import { CompareEngine } from './compare-engine';
import { LabEngine } from './lab-engine';
import { publicFetch } from './testing';

const SETTINGS = { steps: 3, batchSize: 2, seqLen: 24, seed: 1, evalEvery: 0 };
const buffer = (b: Uint8Array): ArrayBuffer => b.slice().buffer;

describe('CompareEngine.addOpenedLane (a saved or opened adapter as an evaluated lane)', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('joins a finished race scored as the Lab scores it, takes no steps, answers and is refused for another task', async () => {
    const engine = new CompareEngine(publicFetch);
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    await engine.race({
      task: 'moby-dick',
      corpusUrl: 'data/moby-dick/',
      settings: SETTINGS,
      lanes: [{ method: 'lora' }],
    });
    const files = loraFiles({ base: 'peftlab-s', nLayer: 3, nEmbd: 96, r: 4, seed: 7 });
    const snap = await engine.addOpenedLane({
      name: 'from PEFT',
      config: files.config,
      weights: buffer(files.weights),
    });
    expect(snap.lanes).toHaveLength(2);
    const opened = snap.lanes[1]!;
    expect(opened).toMatchObject({
      name: 'from PEFT',
      method: 'lora',
      origin: 'opened',
      status: 'done',
      steps: [],
    });
    expect(opened.trainableParams).toBe(3 * 4 * (96 + 288));
    expect(opened.evals).toHaveLength(1);
    expect(opened.evals[0]!.step).toBe(0);
    // The trained lane was not touched.
    expect(snap.lanes[0]!.steps).toHaveLength(3);
    const row = snap.results.rows[1]!;
    expect(Number.isFinite(row.metric)).toBe(true);
    expect(row.steps).toBe(0);

    // The same files opened in the Lab and evaluated there score the same on the same data.
    const lab = new LabEngine(publicFetch);
    await lab.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    await lab.importAdapter({ config: files.config, weights: buffer(files.weights), source: 'from PEFT' });
    const inLab = await lab.evaluate({
      task: 'moby-dick',
      corpusUrl: 'data/moby-dick/',
      seqLen: 24,
      batchSize: 2,
    });
    expect(opened.evals[0]!.loss).toBeCloseTo(inLab.loss, 5);

    const answers = await engine.tryAll({ text: 'Call me Ishmael.', maxNewTokens: 4 });
    expect(answers.map((a) => a.name)).toEqual(['Base model', 'LoRA', 'from PEFT']);
    const maps = await engine.parameterMaps();
    expect(maps).toHaveLength(2);

    // A language-model adapter cannot join a classification race: named, and the race stays as it was.
    await engine.race({
      task: 'spam',
      corpusUrl: 'data/spam/',
      settings: SETTINGS,
      lanes: [{ method: 'ia3' }],
    });
    const refused = engine.addOpenedLane({
      name: 'lm',
      config: files.config,
      weights: buffer(files.weights),
    });
    await expect(refused).rejects.toThrow(AdapterMismatchError);
    await expect(
      engine.addOpenedLane({ name: 'lm', config: files.config, weights: buffer(files.weights) }),
    ).rejects.toThrow(/is a CAUSAL_LM adapter and the race's task .* is SEQ_CLS/);
    const after = await engine.tryAll({ text: 'free prize', maxNewTokens: 1 });
    expect(after.map((a) => a.name)).toEqual(['Base model', 'IA3']);
  });
});
