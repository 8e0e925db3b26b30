import 'fake-indexeddb/auto';
import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../backend/node';
import { AdapterCombineError } from '../errors';
import { loraFiles } from '../io/combine-testing';
import { LabEngine } from './lab-engine';
import { publicFetch } from './testing';

/** The files as the UI posts them: an ArrayBuffer of the safetensors bytes. */
function payload(name: string, files: { config: string; weights: Uint8Array }) {
  return { name, config: files.config, weights: files.weights.slice().buffer };
}

describe('LabEngine.combineAdapters (the worker side of "Combine saved adapters")', () => {
  let engine: LabEngine;
  beforeAll(async () => {
    await initNodeBackend('wasm');
    engine = new LabEngine(publicFetch);
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
  });
  const spec = { base: 'peftlab-s', nLayer: 3, nEmbd: 96, r: 4 };

  it('combines two saved LoRA adapters into files that open on the model and answer at once', async () => {
    const before = engine.numTensors();
    const out = await engine.combineAdapters({
      adapters: [
        payload('a', loraFiles({ ...spec, seed: 1 })),
        payload('b', loraFiles({ ...spec, seed: 2 })),
      ],
      weights: [1, 0.5],
      type: 'ties',
      options: { density: 0.5, majoritySignMethod: 'frequency' },
    });
    expect(out.r).toBe(4);
    // Combining makes no tensors: it works on the files.
    expect(engine.numTensors()).toBe(before);
    const summary = await engine.importAdapter({ config: out.config, weights: out.weights, source: 'a+b' });
    expect(summary).toMatchObject({ peftType: 'LORA', method: 'lora', name: 'a+b' });
    const req = { prompt: 'Call me Ishmael.', maxNewTokens: 6, temperature: 0, seed: 0 };
    const base = await engine.generate({ ...req, useAdapter: false });
    const adapted = await engine.generate({ ...req, useAdapter: true });
    expect(adapted.generatedIds).not.toEqual(base.generatedIds);
  });

  it('refuses adapters of different bases or, for an entrywise type, of different ranks, by name', async () => {
    const a = payload('a', loraFiles({ ...spec, seed: 1 }));
    const m = payload('m', loraFiles({ ...spec, base: 'peftlab-m', seed: 3 }));
    await expect(
      engine.combineAdapters({ adapters: [a, m], weights: [1, 1], type: 'linear', options: {} }),
    ).rejects.toThrow(AdapterCombineError);
    const r8 = payload('r8', loraFiles({ ...spec, r: 8, seed: 4 }));
    await expect(
      engine.combineAdapters({ adapters: [a, r8], weights: [1, 1], type: 'magnitude_prune', options: {} }),
    ).rejects.toMatchObject({ name: 'AdapterCombineError', reason: 'rank' });
  });
});
