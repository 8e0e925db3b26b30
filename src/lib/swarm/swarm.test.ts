/**
 * The swarm end to end in one process: block servers behind in-process channels (the same frames
 * a worker or a socket carries), a directory, routing, the client. Workers and WebSockets have
 * their own tests (swarm-worker.test.ts, ws-transport.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import type { Gpt2Model } from '../model/gpt2';
import { generate } from '../model/generate';
import { adapterDecorator } from '../peft/forward';
import { methodByCliName } from '../peft/registry';
import type { Adapter } from '../peft/types';
import { Trainer } from '../train/trainer';
import { SwarmAuthError, SwarmPeerError, SwarmRouteError } from '../errors';
import { BlockServer } from './block-server';
import type { SwarmEvent } from './client';
import { generateThroughSwarm, swarmGradientFn, SwarmClient } from './client';
import { Directory } from './directory';
import { modelHash } from './model-hash';
import type { PeerInfo } from './protocol';
import { describeRoute } from './routing';
import { swarmTestModel } from './testing';
import type { LinkConditions } from './transport';
import { EmulatedChannel, LocalChannel, PeerConnection } from './transport';

let model: Gpt2Model;
let hash: string;
const TOKENS = Int32Array.from({ length: 500 }, (_, i) => (i * 7 + (i >> 3)) % 47);

beforeAll(async () => {
  await initNodeBackend('cpu');
  model = swarmTestModel();
  hash = await modelHash(model);
});

/** Peers over spans of the shared model, a directory, and a client that can reach them. */
function swarm(
  spans: [string, number, number][],
  opts: {
    token?: string;
    link?: LinkConditions;
    events?: SwarmEvent[];
    timeoutMs?: number;
    /** The peers' own copy of the model (when the client's carries an adapter's hooks). */
    serverModel?: Gpt2Model;
  } = {},
) {
  const directory = new Directory();
  const servers = new Map<string, BlockServer>();
  const channels = new Map<string, LocalChannel[]>();
  for (const [peerId, start, end] of spans) {
    const s = new BlockServer({
      model: opts.serverModel ?? model,
      start,
      end,
      modelHash: hash,
      peerId,
      token: opts.token,
    });
    servers.set(peerId, s);
    directory.announce(s.info());
  }
  const client = new SwarmClient({
    model,
    modelHash: hash,
    peers: directory,
    token: opts.token,
    timeoutMs: opts.timeoutMs,
    onEvent: (e) => opts.events?.push(e),
    connect: (p: PeerInfo) => {
      const ch = new LocalChannel(servers.get(p.peerId)!.connect());
      channels.set(p.peerId, [...(channels.get(p.peerId) ?? []), ch]);
      return Promise.resolve(opts.link ? new EmulatedChannel(ch, opts.link) : ch);
    },
  });
  /** The peer dies: its channels close, and it leaves the directory once its heartbeats stop. */
  const kill = (peerId: string): void => {
    for (const ch of channels.get(peerId) ?? []) ch.kill();
    servers.get(peerId)!.dispose();
  };
  return { directory, servers, client, kill, channels };
}

function adapterFor(method: string, seed = 5): Adapter {
  const m = methodByCliName(method);
  return m.create(model, { ...m.defaults('CAUSAL_LM'), numVirtualTokens: 3 } as never, seed);
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe('swarm in one process', () => {
  afterAll(() => model.dispose());

  it('a forward through three peers equals the local blocks', async () => {
    const { client } = swarm([
      ['a', 0, 2],
      ['b', 2, 4],
      ['c', 4, 6],
    ]);
    const ids = tf.tensor2d([[1, 5, 9, 3]], [1, 4], 'int32');
    const { x } = model.prelude({ ids });
    let y = x;
    for (let i = 0; i < 6; i++)
      y = model.block(i, y, model.prelude({ ids }).mask, undefined, { training: false, seed: 0 }).x;
    const { output, records } = await client.forwardChain({
      shape: [1, 4, 16],
      data: (await x.data()) as Float32Array,
    });
    expect(records.map((r) => `${r.hop.peer.peerId}${r.hop.start}:${r.hop.end}`)).toEqual([
      'a0:2',
      'b2:4',
      'c4:6',
    ]);
    expect(maxDiff(output.data, (await y.data()) as Float32Array)).toBeLessThan(1e-6);
    client.close();
  });

  it('greedy generation equals a local run, and stays equal when a peer dies mid-generation', async () => {
    const local = await generate(model, [3, 14, 15], { maxNewTokens: 12 });
    expect(new Set(local).size).toBeGreaterThan(2);
    const events: SwarmEvent[] = [];
    const s = swarm(
      [
        ['a', 0, 3],
        ['b', 3, 6],
        ['b2', 3, 6],
        ['c', 0, 6],
      ],
      { events },
    );
    // Make the whole-model peer slow to reach, so the route is a -> b (two hops).
    s.servers.get('c')!.throughput = 1;
    s.servers.get('a')!.throughput = 1000;
    s.servers.get('b')!.throughput = 1000;
    s.servers.get('b2')!.throughput = 10;
    for (const p of s.servers.values()) s.directory.announce(p.info());
    expect(await generateThroughSwarm(s.client, [3, 14, 15], { maxNewTokens: 12 })).toEqual(local);
    expect(describeRoute(s.client.lastRoute)).toBe('a[0:3] -> b[3:6]');

    let n = 0;
    const got = await generateThroughSwarm(s.client, [3, 14, 15], {
      maxNewTokens: 12,
      onToken: () => {
        if (++n === 5) s.kill('b');
      },
    });
    expect(got).toEqual(local);
    const replay = events.find((e) => e.type === 'replay');
    expect(replay).toMatchObject({ type: 'replay', start: 3, end: 6, route: 'b2[3:6]' });
    // Three prompt tokens and four generated ones were in b's cache when it died, plus this step's.
    expect(replay).toMatchObject({ positions: 3 + 5 });
    expect(events.some((e) => e.type === 'failure' && e.peerId === 'b')).toBe(true);
    s.client.close();
  });

  it('generation with a soft prompt and with a prefix equals the local run', async () => {
    for (const method of ['prompt-tuning', 'p-tuning-v2']) {
      const adapter = adapterFor(method);
      const local = await generate(
        model,
        [7, 2],
        { maxNewTokens: 8, reservedPositions: 3 },
        adapterDecorator(model, adapter),
      );
      const { client } = swarm([
        ['a', 0, 4],
        ['b', 4, 6],
      ]);
      expect(await generateThroughSwarm(client, [7, 2], { maxNewTokens: 8 }, adapter), method).toEqual(local);
      client.close();
      adapter.dispose();
    }
  });

  for (const method of ['prompt-tuning', 'prefix-tuning', 'p-tuning-v2']) {
    it(`${method} trains through the swarm with the losses of local training (1e-5), a peer lost mid-step`, async () => {
      const opts = { steps: 4, lr: 0.05, batchSize: 2, seqLen: 8, seed: 21, warmupSteps: 0 };
      const localAdapter = adapterFor(method);
      const local = new Trainer(model, localAdapter, TOKENS, opts);
      const want: number[] = [];
      for (let i = 0; i < opts.steps; i++) want.push((await local.trainStep()).loss);
      local.dispose();
      localAdapter.dispose();

      const events: SwarmEvent[] = [];
      const s = swarm(
        [
          ['a', 0, 2],
          ['b', 2, 6],
          ['b2', 2, 4],
          ['b3', 4, 6],
        ],
        { events },
      );
      s.servers.get('b')!.throughput = 1000;
      s.servers.get('b2')!.throughput = 10;
      s.servers.get('b3')!.throughput = 10;
      for (const p of s.servers.values()) s.directory.announce(p.info());
      const adapter = adapterFor(method);
      let backwards = 0;
      // Kill b during step 2's backward: the step must finish on b2 -> b3 with nothing lost.
      const handler = s.servers.get('b')!;
      const orig = handler.connect.bind(handler);
      handler.connect = () => {
        const h = orig();
        return async (frame) => {
          if (new TextDecoder().decode(frame.subarray(12, 40)).includes('"backward"') && ++backwards === 2) {
            queueMicrotask(() => s.kill('b'));
            return new Promise<Uint8Array>(() => {});
          }
          return h(frame);
        };
      };
      const before = tf.memory().numTensors;
      const trainer = new Trainer(model, adapter, TOKENS, {
        ...opts,
        gradients: swarmGradientFn(s.client, adapter),
      });
      const got: number[] = [];
      for (let i = 0; i < opts.steps; i++) got.push((await trainer.trainStep()).loss);
      expect(maxDiff(got, want), `${got} vs ${want}`).toBeLessThan(1e-5);
      expect(s.client.avoided.has('b')).toBe(true);
      expect(events.filter((e) => e.type === 'failure').map((e) => (e as { peerId: string }).peerId)).toEqual(
        ['b'],
      );
      trainer.dispose();
      // Nothing is left behind, on the client or on the (in-process) peers.
      expect(tf.memory().numTensors).toBe(before);
      adapter.dispose();
      s.client.close();
    });
  }

  it('LoRA held by the client (dropout on) trains through the swarm with the losses of local training, and generates as locally', async () => {
    const m = methodByCliName('lora');
    const cfg = {
      ...m.defaults('CAUSAL_LM'),
      r: 4,
      loraAlpha: 8,
      loraDropout: 0.1,
      targetModules: ['c_attn', 'c_fc'],
    };
    const opts = { steps: 3, lr: 0.05, batchSize: 2, seqLen: 8, seed: 4, warmupSteps: 0 };
    const run = async (gradients?: (a: Adapter) => ReturnType<typeof swarmGradientFn>) => {
      const adapter = m.create(model, cfg as never, 6);
      const t = new Trainer(model, adapter, TOKENS, { ...opts, gradients: gradients?.(adapter) });
      const losses: number[] = [];
      for (let i = 0; i < opts.steps; i++) losses.push((await t.trainStep()).loss);
      t.dispose();
      return { adapter, losses };
    };
    const local = await run();
    const localGen = await generate(model, [2, 9, 4], { maxNewTokens: 8 });
    local.adapter.dispose();
    const serverModel = swarmTestModel();
    const s = swarm(
      [
        ['a', 0, 2],
        ['b', 2, 6],
      ],
      { serverModel },
    );
    const viaSwarm = await run((a) => swarmGradientFn(s.client, a));
    expect(maxDiff(viaSwarm.losses, local.losses), `${viaSwarm.losses} vs ${local.losses}`).toBeLessThan(
      1e-5,
    );
    // The trained adapter changed the text, and the swarm generates with it as the local model does.
    expect(await generateThroughSwarm(s.client, [2, 9, 4], { maxNewTokens: 8 }, viaSwarm.adapter)).toEqual(
      localGen,
    );
    viaSwarm.adapter.dispose();
    expect(await generate(model, [2, 9, 4], { maxNewTokens: 8 })).not.toEqual(localGen);
    // What the peers never see: LoRA with a trained bias is refused before anything is sent.
    const biased = m.create(model, { ...cfg, bias: 'lora_only' } as never, 6);
    expect(() => swarmGradientFn(s.client, biased)).toThrow(/bias "lora_only" cannot run through the swarm/);
    biased.dispose();
    s.client.close();
    serverModel.dispose();
  });

  it('requires the token when the peer has one', async () => {
    const s = swarm([['a', 0, 6]], { token: 'sesame' });
    const conn = new PeerConnection(new LocalChannel(s.servers.get('a')!.connect()), 'a');
    await expect(
      conn.request(
        'forward',
        { start: 0, end: 6 },
        new Map([['hidden', { shape: [1, 1, 16], data: new Float32Array(16) }]]),
      ),
    ).rejects.toBeInstanceOf(SwarmAuthError);
    await expect(conn.request('hello', { token: 'wrong' })).rejects.toThrow(/wrong token/);
    const { fields } = await conn.request('hello', { token: 'sesame' });
    expect(fields.peer).toMatchObject({ peerId: 'a', start: 0, end: 6, modelHash: hash });
    // With the right token the client generates.
    expect(await generateThroughSwarm(s.client, [1, 2], { maxNewTokens: 2 })).toHaveLength(2);
    conn.close();
    s.client.close();
  });

  it('avoids a peer whose reply has the wrong shape, and says when no chain is left', async () => {
    const s = swarm([
      ['bad', 0, 6],
      ['good', 0, 6],
    ]);
    s.servers.get('bad')!.throughput = 1e6;
    s.directory.announce(s.servers.get('bad')!.info());
    const bad = s.servers.get('bad')!;
    const orig = bad.connect.bind(bad);
    bad.connect = () => {
      const h = orig();
      return async (frame) => {
        const reply = await h(frame);
        // Truncate the reply's hidden states to one position, header rewritten to match.
        const text = new TextDecoder().decode(
          reply.subarray(12, 12 + new DataView(reply.buffer).getUint32(8, true)),
        );
        if (!text.includes('"hidden"')) return reply;
        const { encodeMessage } = await import('./protocol');
        const head = JSON.parse(text) as { kind: 'step'; id: number; length: number };
        return encodeMessage(
          { kind: head.kind, id: head.id, ok: true, length: head.length },
          new Map([['hidden', { shape: [1, 1, 16], data: new Float32Array(16) }]]),
        );
      };
    };
    s.client.mode = 'max-throughput';
    const local = await generate(model, [4, 4, 4], { maxNewTokens: 3 });
    expect(await generateThroughSwarm(s.client, [4, 4, 4], { maxNewTokens: 3 })).toEqual(local);
    expect(s.client.avoided.has('bad')).toBe(true);
    s.kill('good');
    await expect(generateThroughSwarm(s.client, [4], { maxNewTokens: 2 })).rejects.toBeInstanceOf(
      SwarmRouteError,
    );
    s.client.close();
  });

  it('avoids a peer that answers with non-finite values', async () => {
    const s = swarm([
      ['nan', 0, 6],
      ['good', 0, 6],
    ]);
    s.servers.get('nan')!.throughput = 1e6;
    s.directory.announce(s.servers.get('nan')!.info());
    const bad = s.servers.get('nan')!;
    const orig = bad.connect.bind(bad);
    bad.connect = () => {
      const h = orig();
      return async (frame) => {
        const reply = await h(frame);
        const head = new DataView(reply.buffer, reply.byteOffset).getUint32(8, true);
        if (!new TextDecoder().decode(reply.subarray(12, 12 + head)).includes('"hidden"')) return reply;
        // The first value of the hidden states becomes NaN (bytes of a float32 NaN).
        const out = reply.slice();
        out.set([0, 0, 0xc0, 0x7f], Math.ceil((12 + head) / 4) * 4);
        return out;
      };
    };
    s.client.mode = 'max-throughput';
    const events: SwarmEvent[] = [];
    s.client['opts'].onEvent = (e: SwarmEvent) => events.push(e);
    expect(await generateThroughSwarm(s.client, [6, 1], { maxNewTokens: 4 })).toEqual(
      await generate(model, [6, 1], { maxNewTokens: 4 }),
    );
    expect(events.find((e) => e.type === 'failure')).toMatchObject({ peerId: 'nan' });
    expect((events.find((e) => e.type === 'failure') as { message: string }).message).toMatch(
      /value 0 is NaN/,
    );
    s.client.close();
  });

  it('a peer drops sessions past their time or past its session limit, and says so', async () => {
    let now = 0;
    const server = new BlockServer({
      model,
      start: 0,
      end: 6,
      modelHash: hash,
      peerId: 'p',
      sessionTtlMs: 1000,
      maxSessions: 2,
      now: () => now,
    });
    const conn = new PeerConnection(new LocalChannel(server.connect()), 'p');
    const x = { shape: [1, 2, 16], data: new Float32Array(32).fill(0.5) };
    const step = (session: string, position: number) =>
      conn.request(
        'step',
        { session, start: 0, end: 6, position },
        new Map([['hidden', position ? { shape: [1, 1, 16], data: new Float32Array(16) } : x]]),
      );
    expect((await step('s1', 0)).fields.length).toBe(2);
    expect((await step('s1', 2)).fields.length).toBe(3);
    await expect(step('s1', 2)).rejects.toThrow(/holds 3 positions of blocks 0:6, the step says 2/);
    now = 2000;
    await expect(step('s1', 3)).rejects.toThrow(/session s1 is not open here \(expired or closed\)/);
    await step('a', 0);
    await step('b', 0);
    await step('c', 0);
    expect(server.sessionCount).toBe(2);
    await expect(step('a', 2)).rejects.toThrow(/not open here/);
    await conn.request('close', { session: 'b' });
    expect(server.sessionCount).toBe(1);
    server.dispose();
    conn.close();
  });

  it('a session the peer dropped is replayed on the same peer, with the same tokens', async () => {
    let now = 0;
    const server = new BlockServer({
      model,
      start: 0,
      end: 6,
      modelHash: hash,
      peerId: 'only',
      sessionTtlMs: 1000,
      now: () => now,
    });
    const directory = new Directory();
    directory.announce(server.info());
    const events: SwarmEvent[] = [];
    const client = new SwarmClient({
      model,
      modelHash: hash,
      peers: directory,
      onEvent: (e) => events.push(e),
      connect: () => Promise.resolve(new LocalChannel(server.connect())),
    });
    let n = 0;
    const got = await generateThroughSwarm(client, [3, 1, 4], {
      maxNewTokens: 8,
      onToken: () => {
        if (++n === 3) now += 5000;
      },
    });
    expect(got).toEqual(await generate(model, [3, 1, 4], { maxNewTokens: 8 }));
    expect(events.find((e) => e.type === 'failure')).toMatchObject({ peerId: 'only', kind: 'step' });
    expect(events.find((e) => e.type === 'replay')).toMatchObject({ route: 'only[0:6]', positions: 3 + 3 });
    expect(client.avoided.size).toBe(0);
    client.close();
    server.dispose();
  });

  it('counts bytes, and an emulated link adds its latency', async () => {
    const s = swarm([['a', 0, 6]], { link: { latencyMs: 20, jitterMs: 0, bandwidthBytesPerS: 0, loss: 0 } });
    const t0 = performance.now();
    await s.client.forwardChain({ shape: [1, 4, 16], data: new Float32Array(64) });
    const ms = performance.now() - t0;
    // hello and forward: two round trips of 2 x 20 ms.
    expect(ms).toBeGreaterThanOrEqual(78);
    const stats = s.channels.get('a')![0]!.stats;
    expect(stats.framesSent).toBe(2);
    // The forward alone carries 64 floats each way.
    expect(stats.bytesSent).toBeGreaterThan(256);
    expect(stats.bytesReceived).toBeGreaterThan(256);
    s.client.close();
  });

  it('a lossy link times out and the client moves to another peer', async () => {
    const events: SwarmEvent[] = [];
    const s = swarm(
      [
        ['a', 0, 6],
        ['b', 0, 6],
      ],
      { events, timeoutMs: 200 },
    );
    const connect = s.client['opts'].connect;
    s.client['opts'].connect = async (p: PeerInfo) => {
      const ch = await connect(p);
      return p.peerId === 'a'
        ? new EmulatedChannel(ch, { latencyMs: 0, jitterMs: 0, bandwidthBytesPerS: 0, loss: 1 })
        : ch;
    };
    const local = await generate(model, [9], { maxNewTokens: 3 });
    expect(await generateThroughSwarm(s.client, [9], { maxNewTokens: 3 })).toEqual(local);
    expect(events.find((e) => e.type === 'failure')).toMatchObject({ peerId: 'a' });
    expect((events.find((e) => e.type === 'failure') as { message: string }).message).toMatch(
      /did not answer hello within 200 ms/,
    );
    s.client.close();
  });

  it('a SwarmPeerError names the peer', () => {
    expect(new SwarmPeerError('x', 'p1').peerId).toBe('p1');
  });
});
