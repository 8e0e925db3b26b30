import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { initNodeBackend } from '../backend/node';
import { requireGpt2 } from '../model/decoder';
import { BlockServer } from '../swarm/block-server';
import { modelHash } from '../swarm/model-hash';
import type { WebSocketLike } from '../swarm/ws-transport';
import type { ServedPeer } from '../swarm/ws-server';
import { serveWebSocket } from '../swarm/ws-server';
import { fetchModelFiles, modelFromFiles } from './model-files';
import type { SwarmEvents, SwarmLogLine } from '../protocol/swarm-protocol';
import { hostPeer } from '../swarm/peer-host';
import { SwarmEngine } from './swarm-engine';
import { publicFetch } from './testing';

/**
 * The Swarm screen's engine with its block workers in this thread: each peer is hostPeer on the far
 * end of a real MessageChannel (as in a Web Worker), and each peer's "lock" is a promise the test
 * resolves to kill it, as the browser grants a dead worker's lock.
 */
describe('SwarmEngine', () => {
  const kills = new Map<string, () => void>();
  const logs: SwarmLogLine[] = [];
  let onToken: (d: SwarmEvents['token']) => void = () => {};
  let onStep: (d: SwarmEvents['trainStep']) => void = () => {};
  let chain: SwarmEvents['chain'] = [];
  let onChain: () => void = () => {};
  let engine: SwarmEngine;

  beforeAll(async () => {
    await initNodeBackend('cpu');
    engine = new SwarmEngine(
      publicFetch,
      (kind, data) => {
        if (kind === 'log') logs.push(data as SwarmLogLine);
        if (kind === 'token') onToken(data as SwarmEvents['token']);
        if (kind === 'trainStep') onStep(data as SwarmEvents['trainStep']);
        if (kind === 'chain') {
          chain = data as SwarmEvents['chain'];
          onChain();
        }
      },
      (lock) => new Promise<void>((resolve) => kills.set(lock, resolve)),
      4_000,
    );
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s' });
  }, 60_000);

  afterAll(() => engine.dispose());

  async function addPeer(peerId: string, start: number, end: number): Promise<void> {
    const { port1, port2 } = new MessageChannel();
    hostPeer(port2, async () => {});
    await engine.addPeer({ peerId, start, end, control: port1, lock: peerId, kind: 'worker' });
  }

  it('generates through three peers the text a local run gives, and survives a peer killed mid-generation', async () => {
    await addPeer('a', 0, 2);
    await addPeer('b', 2, 3);
    await addPeer('c', 0, 3);
    const first = await engine.generate({ prompt: 'The whale', maxNewTokens: 8 });
    expect(first.generatedIds).toEqual(first.localIds);
    expect(first.text).toBe(first.localText);
    expect(first.chain.map((h) => `${h.start}:${h.end}`).join(' ')).toMatch(/^0:/);
    expect(first.chain.at(-1)!.end).toBe(3);
    expect(first.chain[0]!.bytesSent).toBeGreaterThan(0);
    expect(first.chain[0]!.requests).toBeGreaterThanOrEqual(8);
    expect(first.failures).toBe(0);

    // Kill the chain's first peer after the third token: every span has a second holder, so the
    // client must reroute its blocks and replay.
    const victim = first.chain[0]!.peerId;
    onToken = (d) => {
      if (d.count === 3) kills.get(victim)!();
    };
    const second = await engine.generate({ prompt: 'The whale', maxNewTokens: 8 });
    onToken = () => {};
    expect(second.generatedIds).toEqual(first.generatedIds);
    expect(second.failures).toBeGreaterThanOrEqual(1);
    expect(second.replays).toBeGreaterThanOrEqual(1);
    expect(second.chain.map((h) => h.peerId)).not.toContain(victim);
    expect(second.chain.map((h) => `${h.start}:${h.end}`).join(' ')).toMatch(/^0:/);
    expect(logs.some((l) => l.level === 'failure' && l.message.includes(`peer ${victim}`))).toBe(true);
    expect(logs.some((l) => l.level === 'recovery' && /replayed \d+ positions/.test(l.message))).toBe(true);
  }, 120_000);

  it('trains prompt tuning through the swarm with the losses of local training, a peer killed mid-run', async () => {
    // Whatever the first test left, two more whole-model peers make every span survive one death.
    await addPeer('d', 0, 3);
    await addPeer('e', 0, 3);
    // After the first swarm step, kill the first peer of the route the next step has just chosen:
    // that step fails on it and must go on by another route.
    let victim = '';
    onStep = (d) => {
      if (d.where !== 'swarm' || d.step !== 1) return;
      let armed = 2; // the chain event of step 1 itself comes first
      onChain = () => {
        if (--armed > 0) return;
        onChain = () => {};
        victim = chain[0]!.peerId;
        kills.get(victim)!();
      };
    };
    const r = await engine.train({
      method: 'prompt-tuning',
      steps: 3,
      lr: 0.05,
      batchSize: 2,
      seqLen: 16,
      seed: 3,
      dataBaseUrl: '',
    });
    onStep = () => {};
    onChain = () => {};
    expect(r.swarm).toHaveLength(3);
    expect(r.maxDiff).toBeLessThan(1e-5);
    expect(r.failures).toBeGreaterThanOrEqual(1);
    expect(chain.length).toBeGreaterThan(0);
    expect(chain.map((h) => h.peerId)).not.toContain(victim);
    expect(r.trainable).toBe(4 * 96);
  }, 120_000);

  it('refuses a span outside the model and bad link settings with named errors', async () => {
    const { port1 } = new MessageChannel();
    await expect(
      engine.addPeer({ peerId: 'x', start: 2, end: 9, control: port1, lock: 'x', kind: 'worker' }),
    ).rejects.toThrow(/not a span of this 3-block model/);
    port1.close();
    await expect(
      engine.setLink({ peerId: null, link: { latencyMs: -1, jitterMs: 0, bandwidthBytesPerS: 0, loss: 0 } }),
    ).rejects.toMatchObject({ name: 'SettingsError' });
  });
});

/**
 * A `swarm serve` peer added by its address, as the Swarm screen's field does: a BlockServer of the
 * same model behind a real loopback WebSocket (port 0, stopped here), with a token.
 */
describe('SwarmEngine with a WebSocket peer', () => {
  const logs: SwarmLogLine[] = [];
  let engine: SwarmEngine;
  let served: ServedPeer;

  beforeAll(async () => {
    await initNodeBackend('cpu');
    engine = new SwarmEngine(
      publicFetch,
      (kind, data) => {
        if (kind === 'log') logs.push(data as SwarmLogLine);
      },
      () => new Promise<void>(() => {}),
      4_000,
      (url) => new WebSocket(url) as unknown as WebSocketLike,
    );
    const summary = await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s' });
    const files = modelFromFiles('peftlab-s', await fetchModelFiles(publicFetch, 'models/peftlab-s'));
    const model = requireGpt2(files.model, 'test');
    const hash = await modelHash(model);
    expect(hash).toBe(summary.modelHash);
    const server = new BlockServer({
      model,
      start: 0,
      end: 3,
      modelHash: hash,
      peerId: 'lan-1',
      token: 'sesame',
    });
    served = await serveWebSocket(server, { port: 0 });
  }, 60_000);

  afterAll(async () => {
    await served.close();
    engine.dispose();
  });

  it('refuses a bad address, a missing and a wrong token with named errors', async () => {
    await expect(engine.addRemote({ url: 'http://example.com', token: '' })).rejects.toMatchObject({
      name: 'SettingsError',
    });
    await expect(engine.addRemote({ url: served.url, token: '' })).rejects.toMatchObject({
      name: 'SwarmAuthError',
    });
    await expect(engine.addRemote({ url: served.url, token: 'nope' })).rejects.toThrow(/wrong token/);
    await expect(engine.addRemote({ url: 'ws://127.0.0.1:1', token: '' })).rejects.toMatchObject({
      name: 'SwarmPeerError',
    });
  });

  it('generates and trains through the served peer as a local run does, and sees it go when it stops', async () => {
    const view = await engine.addRemote({ url: served.url, token: 'sesame' });
    expect(view).toMatchObject({
      peerId: 'lan-1',
      kind: 'ws',
      address: served.url,
      start: 0,
      end: 3,
      alive: true,
    });
    const r = await engine.generate({ prompt: 'The whale', maxNewTokens: 6 });
    expect(r.generatedIds).toEqual(r.localIds);
    expect(r.chain.map((h) => h.peerId)).toEqual(['lan-1']);
    expect(r.chain[0]!.bytesReceived).toBeGreaterThan(0);
    await expect(engine.addRemote({ url: served.url, token: 'sesame' })).rejects.toThrow(
      /already in the swarm/,
    );
    // Training through it too: the client's LoRA travels with each request; the same losses as local.
    const t = await engine.train({
      method: 'lora',
      steps: 2,
      lr: 0.05,
      batchSize: 2,
      seqLen: 16,
      seed: 1,
      dataBaseUrl: '',
    });
    expect(t.swarm).toHaveLength(2);
    expect(t.maxDiff).toBeLessThan(1e-5);
    await served.close();
    await expect
      .poll(() => logs.some((l) => l.level === 'failure' && l.message.includes('peer lan-1')))
      .toBe(true);
    await expect(engine.generate({ prompt: 'The whale', maxNewTokens: 2 })).rejects.toThrow();
  }, 60_000);
});
