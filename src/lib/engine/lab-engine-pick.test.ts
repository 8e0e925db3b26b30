import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { initNodeBackend } from '../backend/node';
import { CancelledError, FileLoadError } from '../errors';
import { LabEngine, browserFetchBytes } from './lab-engine';
import type { LabEvents } from '../protocol/lab-protocol';
import type { FetchBytes } from './model-files';
import { publicFetch } from './testing';

/**
 * Picking a model while another load is in flight: the worker runs requests concurrently, so the
 * files of an earlier pick can arrive after a later pick's. The latest pick must be the model in use.
 */

const GREEDY = { prompt: 'Call me Ishmael.', maxNewTokens: 6, temperature: 0, seed: 0, useAdapter: false };

/** publicFetch, with the files under `held` waiting until release() is called. */
function gatedFetch(held: string): { fetchBytes: FetchBytes; release: () => void } {
  let release = (): void => {};
  const gate = new Promise<void>((r) => (release = r));
  return {
    fetchBytes: async (url) => {
      if (url.startsWith(held)) await gate;
      return publicFetch(url);
    },
    release,
  };
}

describe('LabEngine: the latest model pick wins', () => {
  let greedyM = '';
  let greedyS = '';

  beforeAll(async () => {
    await initNodeBackend('wasm');
    const m = new LabEngine(publicFetch);
    await m.loadModel({ id: 'peftlab-m', baseUrl: 'models/peftlab-m/' });
    greedyM = (await m.generate(GREEDY)).text;
    const s = new LabEngine(publicFetch);
    await s.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    greedyS = (await s.generate(GREEDY)).text;
    // The check below tells the two models apart by their answers.
    expect(greedyM).not.toBe(greedyS);
  });

  it('a load whose files arrive after a newer pick is cancelled and does not replace it', async () => {
    const { fetchBytes, release } = gatedFetch('models/peftlab-s/');
    const statuses: string[] = [];
    const engine = new LabEngine(fetchBytes, (kind, data) => {
      if (kind === 'status') statuses.push((data as LabEvents['status']).message);
    });
    const first = engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const picked = await engine.loadModel({ id: 'peftlab-m', baseUrl: 'models/peftlab-m/' });
    expect(picked.id).toBe('peftlab-m');
    release();
    await expect(first).rejects.toThrow(CancelledError);
    await expect(first).rejects.toThrow(/peftlab-s was not loaded: peftlab-m was picked after it/);
    expect((await engine.generate(GREEDY)).text).toBe(greedyM);
    // The stale load says nothing after the pick's "loaded".
    expect(statuses.at(-1)).toBe('peftlab-m loaded');
    expect(statuses).not.toContain('peftlab-s loaded');
  });

  it('files opened while a bundled model is fetched stay in use when that fetch ends', async () => {
    const { fetchBytes, release } = gatedFetch('models/peftlab-m/');
    const engine = new LabEngine(fetchBytes);
    const bundled = engine.loadModel({ id: 'peftlab-m', baseUrl: 'models/peftlab-m/' });
    const files = {
      config: await publicFetch('models/peftlab-s/config.json'),
      weights: await publicFetch('models/peftlab-s/model.safetensors'),
      tokenizer: await publicFetch('models/peftlab-s/tokenizer.json'),
    };
    await engine.loadModelFiles({ id: 'local: peftlab-s', ...files });
    release();
    await expect(bundled).rejects.toThrow(CancelledError);
    expect((await engine.generate(GREEDY)).text).toBe(greedyS);
  });

  it('a failed load leaves the model in use and the status line says it was not loaded', async () => {
    const statuses: string[] = [];
    const engine = new LabEngine(publicFetch, (kind, data) => {
      if (kind === 'status') statuses.push((data as LabEvents['status']).message);
    });
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    await expect(engine.loadModel({ id: 'nope', baseUrl: 'models/nope/' })).rejects.toThrow(FileLoadError);
    expect(statuses.at(-1)).toBe('nope was not loaded');
    expect((await engine.generate(GREEDY)).text).toBe(greedyS);
  });
});

describe('browserFetchBytes', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  /** A response whose body breaks off, as Chromium's does on net::ERR_CACHE_WRITE_FAILURE. */
  const cutOff = (): Response =>
    new Response(
      new ReadableStream({
        start(c) {
          c.enqueue(new Uint8Array([1, 2]));
          c.error(new TypeError('Failed to fetch'));
        },
      }),
    );

  it('tries a failed body once more past the HTTP cache', async () => {
    const modes: (RequestCache | undefined)[] = [];
    vi.stubGlobal('fetch', async (_url: string, init?: RequestInit) => {
      modes.push(init?.cache);
      return modes.length === 1 ? cutOff() : new Response(new Uint8Array([7, 8, 9]));
    });
    const bytes = await browserFetchBytes('models/peftlab-m/model.safetensors');
    expect([...new Uint8Array(bytes)]).toEqual([7, 8, 9]);
    expect(modes).toEqual(['default', 'no-store']);
  });

  it('tries a rejected fetch once more, then names the URL and the failure', async () => {
    let calls = 0;
    vi.stubGlobal('fetch', async () => {
      calls++;
      return calls === 1 ? Promise.reject(new TypeError('Failed to fetch')) : cutOff();
    });
    await expect(browserFetchBytes('models/x/model.safetensors')).rejects.toThrow(
      /could not fetch models\/x\/model\.safetensors \(tried twice\): Failed to fetch while reading its body; check the network or reload/,
    );
    expect(calls).toBe(2);
  });

  it('does not retry an HTTP error', async () => {
    let calls = 0;
    vi.stubGlobal('fetch', async () => {
      calls++;
      return new Response('missing', { status: 404 });
    });
    await expect(browserFetchBytes('models/x/config.json')).rejects.toThrow(
      new FileLoadError('could not fetch models/x/config.json: HTTP 404'),
    );
    expect(calls).toBe(1);
  });
});
