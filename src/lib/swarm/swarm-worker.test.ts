/**
 * Peers as worker_threads: separate threads, each with its own tfjs and only its span's weights,
 * reached through MessagePorts. A killed worker is a dead peer; the client must carry on exactly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../backend/node';
import type { Gpt2Model } from '../model/gpt2';
import { generate } from '../model/generate';
import { methodByCliName } from '../peft/registry';
import { Trainer } from '../train/trainer';
import type { SwarmEvent } from './client';
import { generateThroughSwarm, swarmGradientFn, SwarmClient } from './client';
import { Directory } from './directory';
import { modelHash } from './model-hash';
import type { WorkerPeer } from './node-peers';
import { spawnWorkerPeer } from './node-peers';
import { swarmTestModel } from './testing';

let model: Gpt2Model;
let hash: string;
const peers = new Map<string, WorkerPeer>();
const directory = new Directory();

beforeAll(async () => {
  await initNodeBackend('cpu');
  model = swarmTestModel();
  hash = await modelHash(model);
  const spans: [string, number, number][] = [
    ['w-a', 0, 2],
    ['w-b', 2, 4],
    ['w-c', 4, 6],
    ['w-b2', 2, 6],
  ];
  const started = await Promise.all(
    spans.map(([peerId, start, end]) => spawnWorkerPeer({ model, start, end, modelHash: hash, peerId })),
  );
  for (const p of started) {
    peers.set(p.info.peerId, p);
    // The spare is made slow on paper, so the first route is a -> b -> c.
    directory.announce(p.info.peerId === 'w-b2' ? { ...p.info, throughput: 0.5 } : p.info);
  }
});

afterAll(async () => {
  await Promise.all([...peers.values()].map((p) => p.kill()));
  model.dispose();
});

const client = (events: SwarmEvent[]): SwarmClient =>
  new SwarmClient({
    model,
    modelHash: hash,
    peers: directory,
    onEvent: (e) => events.push(e),
    connect: (p) => Promise.resolve(peers.get(p.peerId)!.channel()),
  });

describe('swarm of worker_threads', () => {
  it('each worker measured its throughput and holds only its span', () => {
    for (const p of peers.values()) expect(p.info.throughput).toBeGreaterThan(0);
    expect(peers.get('w-b')!.info).toMatchObject({ start: 2, end: 4, modelHash: hash });
  });

  it('prompt tuning trains through three workers with the losses of local training', async () => {
    const tokens = Int32Array.from({ length: 300 }, (_, i) => (i * 11 + (i >> 2)) % 47);
    const m = methodByCliName('prompt-tuning');
    const make = () => m.create(model, { ...m.defaults('CAUSAL_LM'), numVirtualTokens: 2 } as never, 4);
    const opts = { steps: 3, lr: 0.05, batchSize: 2, seqLen: 8, seed: 2, warmupSteps: 0 };
    const la = make();
    const local = new Trainer(model, la, tokens, opts);
    const want: number[] = [];
    for (let i = 0; i < opts.steps; i++) want.push((await local.trainStep()).loss);
    local.dispose();
    la.dispose();
    const events: SwarmEvent[] = [];
    const c = client(events);
    const adapter = make();
    const t = new Trainer(model, adapter, tokens, { ...opts, gradients: swarmGradientFn(c, adapter) });
    const got: number[] = [];
    for (let i = 0; i < opts.steps; i++) got.push((await t.trainStep()).loss);
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-5);
    expect(events.find((e) => e.type === 'route')).toMatchObject({
      route: 'w-a[0:2] -> w-b[2:4] -> w-c[4:6]',
    });
    t.dispose();
    adapter.dispose();
    c.close();
  });

  it('greedy generation survives a killed worker with the same tokens, replaying its history', async () => {
    const local = await generate(model, [5, 6, 7], { maxNewTokens: 10 });
    const events: SwarmEvent[] = [];
    const c = client(events);
    let n = 0;
    let killed: Promise<void> | null = null;
    const got = await generateThroughSwarm(c, [5, 6, 7], {
      maxNewTokens: 10,
      onToken: () => {
        if (++n === 4) killed = peers.get('w-b')!.kill();
      },
    });
    await killed;
    expect(got).toEqual(local);
    expect(events.filter((e) => e.type === 'failure').map((e) => (e as { peerId: string }).peerId)).toEqual([
      'w-b',
    ]);
    // The spare covers 2:6 but only 2:4 is replaced; c keeps its cache.
    expect(events.find((e) => e.type === 'replay')).toMatchObject({ start: 2, end: 4, route: 'w-b2[2:4]' });
    c.close();
  });
});
