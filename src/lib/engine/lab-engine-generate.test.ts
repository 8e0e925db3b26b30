import 'fake-indexeddb/auto';
import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../backend/node';
import { InputError } from '../errors';
import type { LabEvents } from '../protocol/lab-protocol';
import { LabEngine } from './lab-engine';
import { publicFetch } from './testing';

describe('LabEngine.generate streaming (the worker posts what this emits)', () => {
  let engine: LabEngine;
  const tokens: LabEvents['token'][] = [];
  beforeAll(async () => {
    await initNodeBackend('wasm');
    engine = new LabEngine(publicFetch, (kind, data) => {
      if (kind === 'token') tokens.push(data as LabEvents['token']);
    });
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
  });

  const req = {
    prompt: 'Call me Ishmael. Some years ago',
    maxNewTokens: 24,
    temperature: 0.8,
    topK: 40,
    topP: 0.9,
    repetitionPenalty: 1.3,
    seed: 3,
    useAdapter: false,
  };

  it('emits the answer piece by piece under its label, the pieces making the reply, with no tensor left', async () => {
    // A first answer builds the model's cached tensors (the transposed LM head), kept for later ones.
    await engine.generate({ ...req, maxNewTokens: 1 });
    tokens.length = 0;
    const before = engine.numTensors();
    const streamed = await engine.generate({ ...req, stream: 'base' });
    expect(tokens.length).toBeGreaterThan(3);
    expect(tokens.every((t) => t.stream === 'base')).toBe(true);
    expect(tokens.map((t) => t.piece).join('')).toBe(streamed.text);
    expect(streamed.stopped).toBe(false);
    expect(engine.numTensors()).toBe(before);
    // The same settings without streaming sample the same text: streaming changes only delivery.
    tokens.length = 0;
    const quiet = await engine.generate(req);
    expect(quiet.generatedIds).toEqual(streamed.generatedIds);
    expect(tokens).toHaveLength(0);
  });

  it('the repetition penalty reaches the sampler (the same seed answers differently without it)', async () => {
    const plain = await engine.generate({ ...req, repetitionPenalty: 1 });
    const penalised = await engine.generate(req);
    expect(penalised.generatedIds).not.toEqual(plain.generatedIds);
  });

  it('stopGenerate, arriving while tokens stream, ends the answer early', async () => {
    tokens.length = 0;
    const run = engine.generate({ ...req, maxNewTokens: 120, stream: 'adapted' });
    await new Promise<void>((r) => {
      const iv = setInterval(() => {
        if (tokens.length > 0) {
          clearInterval(iv);
          r();
        }
      }, 1);
    });
    await engine.stopGenerate();
    const got = await run;
    expect(got.stopped).toBe(true);
    expect(got.generatedIds.length).toBeLessThan(120);
    expect(got.generatedIds.length).toBeGreaterThan(0);
    // A stop with nothing running is a no-op, and the next answer runs to its length.
    await engine.stopGenerate();
    const next = await engine.generate({ ...req, maxNewTokens: 5, temperature: 0, stream: 'base' });
    expect(next.stopped).toBe(false);
  });

  it('refuses a sampling setting out of range, naming it', async () => {
    await expect(engine.generate({ ...req, repetitionPenalty: 0 })).rejects.toThrow(InputError);
    await expect(engine.generate({ ...req, topP: 2 })).rejects.toThrow(/top-p/);
  });
});
