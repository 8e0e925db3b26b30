/**
 * `npm run bench:swarm`: what the swarm costs, one run, tfjs wasm everywhere. The model's blocks
 * split evenly over 1, 2 or 3 peers, either worker_threads of this process or `peft-lab swarm
 * serve` processes on loopback WebSockets; the client's links emulate 0, 20 or 100 ms one-way
 * latency (a request and its reply cross twice). Measured:
 *
 *   generation   greedy tokens/s for --new tokens after a --prompt-token prompt (the prompt pass counted)
 *   training     prompt tuning, --batch x --seq tokens per step, median of --steps steps after one untimed
 *   baselines    the same model local, and (training) offloaded at ZeRO stage 3 with a quarter of the
 *                layers resident (layer-by-layer recomputation, prefetch along the trace)
 *   recovery     3 worker peers plus a spare: a peer killed mid-generation, the failed token's time
 *                against the median token's (detection plus replay of the history)
 *
 *   --model DIR (public/models/peftlab-l)  --new N (16)  --prompt-tokens N (16)  --batch N (4)
 *   --seq N (32)  --steps N (2)  --latencies 0,20,100  --json FILE
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { initNodeBackend } from '../src/lib/backend/node';
import { loadModelFolder } from '../src/lib/model/folder';
import { requireGpt2 } from '../src/lib/model/decoder';
import type { Gpt2Model } from '../src/lib/model/gpt2';
import { generate } from '../src/lib/model/generate';
import { methodByCliName } from '../src/lib/peft/registry';
import type { Adapter } from '../src/lib/peft/types';
import { Trainer } from '../src/lib/train/trainer';
import type { TrainerOptions } from '../src/lib/train/trainer';
import { LayerPager } from '../src/lib/offload/layer-pager';
import { layerwiseGradientFn } from '../src/lib/offload/layerwise';
import { MemoryPageStore } from '../src/lib/offload/page-store';
import type { SwarmEvent } from '../src/lib/swarm/client';
import { generateThroughSwarm, swarmGradientFn, SwarmClient } from '../src/lib/swarm/client';
import { Directory } from '../src/lib/swarm/directory';
import { modelHash } from '../src/lib/swarm/model-hash';
import { spawnWorkerPeer } from '../src/lib/swarm/node-peers';
import type { WorkerPeer } from '../src/lib/swarm/node-peers';
import type { PeerInfo } from '../src/lib/swarm/protocol';
import type { Channel } from '../src/lib/swarm/transport';
import { EmulatedChannel } from '../src/lib/swarm/transport';
import type { WebSocketLike } from '../src/lib/swarm/ws-transport';
import { openWebSocket } from '../src/lib/swarm/ws-transport';

const { values: flags } = parseArgs({
  options: {
    model: { type: 'string', default: 'public/models/peftlab-l' },
    new: { type: 'string', default: '16' },
    'prompt-tokens': { type: 'string', default: '16' },
    batch: { type: 'string', default: '4' },
    seq: { type: 'string', default: '32' },
    steps: { type: 'string', default: '2' },
    latencies: { type: 'string', default: '0,20,100' },
    json: { type: 'string' },
  },
});
const NEW = Number(flags.new);
const PROMPT = Array.from({ length: Number(flags['prompt-tokens']) }, (_, i) => (i * 37 + 11) % 2000);
const LATENCIES = flags.latencies!.split(',').map(Number);
const TRAIN: TrainerOptions = {
  steps: Number(flags.steps) + 1,
  lr: 0.03,
  warmupSteps: 0,
  batchSize: Number(flags.batch),
  seqLen: Number(flags.seq),
  seed: 1,
};
const ROOT = fileURLToPath(new URL('../', import.meta.url));

interface Row {
  peers: string;
  latencyMs: number | null;
  genTokPerSec: number | null;
  trainTokPerSec: number | null;
  bytesPerGenToken?: number;
  note?: string;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function adapterFor(model: Gpt2Model): Adapter {
  const m = methodByCliName('prompt-tuning');
  return m.create(model, { ...m.defaults('CAUSAL_LM'), numVirtualTokens: 8 } as never, 1);
}

/** Tokens of a Moby-Dick-free stream: the bench measures speed, not learning. */
const STREAM = Int32Array.from({ length: 20_000 }, (_, i) => (i * 7919 + (i >> 5)) % 2000);

async function timeGenerate(run: () => Promise<number[]>): Promise<number> {
  const t0 = performance.now();
  const ids = await run();
  return ids.length / ((performance.now() - t0) / 1000);
}

async function timeTrain(
  model: Gpt2Model,
  gradients: (a: Adapter) => TrainerOptions['gradients'],
): Promise<number> {
  const adapter = adapterFor(model);
  const trainer = new Trainer(model, adapter, STREAM, { ...TRAIN, gradients: gradients(adapter) });
  await trainer.trainStep(); // untimed: first-call costs
  const ms: number[] = [];
  for (let i = 1; i < TRAIN.steps; i++) {
    const s = await trainer.trainStep();
    ms.push(s.ms);
  }
  trainer.dispose();
  adapter.dispose();
  return (TRAIN.batchSize * TRAIN.seqLen) / (median(ms) / 1000);
}

function spans(L: number, n: number): [number, number][] {
  return Array.from({ length: n }, (_, i) => [Math.round((i * L) / n), Math.round(((i + 1) * L) / n)]);
}

function client(
  model: Gpt2Model,
  hash: string,
  directory: Directory,
  open: (p: PeerInfo) => Promise<Channel>,
  latencyMs: number,
  events: SwarmEvent[] = [],
  links: Channel[] = [],
): SwarmClient {
  return new SwarmClient({
    model,
    modelHash: hash,
    peers: directory,
    onEvent: (e) => events.push(e),
    connect: async (p) => {
      const ch = new EmulatedChannel(await open(p), {
        latencyMs,
        jitterMs: 0,
        bandwidthBytesPerS: 0,
        loss: 0,
      });
      links.push(ch);
      return ch;
    },
  });
}

async function swarmRows(
  kind: string,
  model: Gpt2Model,
  hash: string,
  start: (
    spans: [number, number][],
  ) => Promise<{ directory: Directory; open: (p: PeerInfo) => Promise<Channel>; stop: () => Promise<void> }>,
): Promise<Row[]> {
  const rows: Row[] = [];
  for (const n of [1, 2, 3]) {
    const peers = await start(spans(model.config.nLayer, n));
    for (const latencyMs of LATENCIES) {
      const links: Channel[] = [];
      const c = client(model, hash, peers.directory, peers.open, latencyMs, [], links);
      const gen = await timeGenerate(() => generateThroughSwarm(c, PROMPT, { maxNewTokens: NEW }));
      const bytes = links.reduce((a, l) => a + l.stats.bytesSent + l.stats.bytesReceived, 0);
      const train = await timeTrain(model, (a) => swarmGradientFn(c, a));
      c.close();
      rows.push({
        peers: `${n} ${kind}`,
        latencyMs,
        genTokPerSec: gen,
        trainTokPerSec: train,
        bytesPerGenToken: bytes / NEW,
      });
      console.error(
        `${n} ${kind} @ ${latencyMs} ms: gen ${gen.toFixed(1)} tok/s, train ${train.toFixed(0)} tok/s`,
      );
    }
    await peers.stop();
  }
  return rows;
}

async function main(): Promise<void> {
  await initNodeBackend('wasm');
  const dir = flags.model!;
  const { model: decoder } = loadModelFolder({
    config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(dir, 'model.safetensors'))),
    tokenizerJson: null,
    source: dir,
  });
  const model = requireGpt2(decoder, 'bench:swarm');
  const hash = await modelHash(model);
  const rows: Row[] = [];

  // Baselines.
  await generate(model, PROMPT, { maxNewTokens: 2 });
  const localGen = await timeGenerate(() => generate(model, PROMPT, { maxNewTokens: NEW }));
  const localTrain = await timeTrain(model, () => undefined);
  rows.push({ peers: 'local', latencyMs: null, genTokPerSec: localGen, trainTokPerSec: localTrain });
  let layerBytes = 0;
  for (const [name, v] of model.weights) if (name.startsWith('h.')) layerBytes += v.size * 4;
  let pager: LayerPager | null = null;
  try {
    pager = await LayerPager.create(model, new MemoryPageStore(), {
      budgetBytes: layerBytes / 4,
      policy: 'trace',
      prefetch: true,
    });
    const p = pager;
    const t = await timeTrain(model, (a) => layerwiseGradientFn(model, a, p));
    rows.push({
      peers: 'local, stage 3 (1/4 resident)',
      latencyMs: null,
      genTokPerSec: null,
      trainTokPerSec: t,
    });
  } catch (e) {
    rows.push({
      peers: 'local, stage 3',
      latencyMs: null,
      genTokPerSec: null,
      trainTokPerSec: null,
      note: (e as Error).message,
    });
  } finally {
    await pager?.restore();
  }
  console.error(`local: gen ${localGen.toFixed(1)} tok/s, train ${localTrain.toFixed(0)} tok/s`);

  // Worker peers.
  rows.push(
    ...(await swarmRows('worker', model, hash, async (sp) => {
      const directory = new Directory({ ttlMs: 3_600_000 });
      const ws = await Promise.all(
        sp.map(([s, e], i) =>
          spawnWorkerPeer({ model, start: s, end: e, modelHash: hash, peerId: `w${i}`, backend: 'wasm' }),
        ),
      );
      const byId = new Map(ws.map((w) => [w.info.peerId, w]));
      for (const w of ws) directory.announce(w.info);
      return {
        directory,
        open: (p) => Promise.resolve(byId.get(p.peerId)!.channel()),
        stop: async () => void (await Promise.all(ws.map((w) => w.kill()))),
      };
    })),
  );

  // Node processes: `peft-lab swarm serve` on loopback WebSockets.
  const factory = (u: string): WebSocketLike => new WebSocket(u) as unknown as WebSocketLike;
  rows.push(
    ...(await swarmRows('process', model, hash, async (sp) => {
      const procs: ChildProcess[] = [];
      const directory = new Directory({ ttlMs: 3_600_000 });
      for (const [s, e] of sp) {
        const child = spawn(
          process.execPath,
          [
            join(ROOT, 'bin/peft-lab.mjs'),
            'swarm',
            'serve',
            '--model',
            dir,
            '--blocks',
            `${s}:${e}`,
            '--json',
          ],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        );
        procs.push(child);
        const line = await new Promise<string>((resolve, reject) => {
          let out = '';
          child.stdout!.on('data', (d: Buffer) => {
            out += d.toString();
            if (out.includes('\n')) resolve(out.split('\n')[0]!);
          });
          child.once('exit', (code) => reject(new Error(`swarm serve exited with ${code}`)));
        });
        const { peer } = JSON.parse(line) as { url: string; peer: PeerInfo };
        // Its own directory is not asked here: the bench's client knows every process.
        directory.announce(peer);
      }
      return {
        directory,
        open: (p) => openWebSocket(p.address, factory),
        stop: async () => {
          for (const p of procs) p.kill('SIGTERM');
          await Promise.all(
            procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))),
          );
        },
      };
    })),
  );

  // Recovery: three workers and a spare for the middle span; the middle one is killed at token NEW / 2.
  const sp = spans(model.config.nLayer, 3);
  const all: WorkerPeer[] = await Promise.all(
    [...sp, sp[1]!].map(([s, e], i) =>
      spawnWorkerPeer({
        model,
        start: s,
        end: e,
        modelHash: hash,
        peerId: i === 3 ? 'spare' : `w${i}`,
        backend: 'wasm',
      }),
    ),
  );
  const directory = new Directory({ ttlMs: 3_600_000 });
  for (const w of all)
    directory.announce(w.info.peerId === 'spare' ? { ...w.info, throughput: 0.001 } : w.info);
  const byId = new Map(all.map((w) => [w.info.peerId, w]));
  const events: SwarmEvent[] = [];
  const c = client(model, hash, directory, (p) => Promise.resolve(byId.get(p.peerId)!.channel()), 0, events);
  const times: number[] = [];
  let last = performance.now();
  let n = 0;
  const local = await generate(model, PROMPT, { maxNewTokens: NEW });
  const got = await generateThroughSwarm(c, PROMPT, {
    maxNewTokens: NEW,
    onToken: () => {
      const now = performance.now();
      times.push(now - last);
      last = now;
      if (++n === NEW >> 1) void byId.get('w1')!.kill();
    },
  });
  c.close();
  await Promise.all(all.map((w) => w.kill()));
  const failed = times[NEW >> 1]!;
  const normal = median(times.slice(1));
  const replay = events.find((e) => e.type === 'replay');
  const recovery = {
    sameTokens: JSON.stringify(got) === JSON.stringify(local),
    failedTokenMs: failed,
    medianTokenMs: normal,
    recoveryMs: failed - normal,
    replayedPositions: replay?.type === 'replay' ? replay.positions : null,
  };
  console.error(`recovery: ${JSON.stringify(recovery)}`);

  const fmt = (x: number | null | undefined, d = 1): string => (x == null ? '-' : x.toFixed(d));
  const lines = [
    `swarm bench: ${dir} (${model.config.nLayer} blocks, d ${model.config.nEmbd}), wasm; generation ${NEW} tokens after ${PROMPT.length}; training prompt tuning ${TRAIN.batchSize}x${TRAIN.seqLen}`,
    '| peers | one-way latency | generation tok/s | training tok/s | bytes per generated token |',
    '|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.peers} | ${r.latencyMs === null ? '-' : `${r.latencyMs} ms`} | ${fmt(r.genTokPerSec)} | ${fmt(r.trainTokPerSec, 0)} | ${fmt(r.bytesPerGenToken, 0)} |${r.note ? ` ${r.note}` : ''}`,
    ),
    `recovery from a killed peer (3 workers + spare, 0 ms): same tokens ${recovery.sameTokens}; the failed token took ${fmt(failed)} ms against a median ${fmt(normal)} ms (replayed ${recovery.replayedPositions} positions)`,
  ];
  console.log(lines.join('\n'));
  if (flags.json) writeFileSync(flags.json, JSON.stringify({ rows, recovery }, null, 2));
  model.dispose();
  process.exit(0);
}

await main();
