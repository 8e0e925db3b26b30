/**
 * A short training run through a swarm, measured step by step at several emulated link latencies,
 * and once more with a peer killed mid-run: the Learn section's "one model, many machines" (lesson 9),
 * set beside an offload trial of the same method on the same model (offload-trial.ts).
 *
 * The peers are BlockServers in this worker, each span held by two of them (so one can die), with
 * their own copy of the blocks' weights (an injected adapter hooks the client's layers, never the
 * peers'), reached through in-process channels that carry the same binary frames a worker's port or a
 * socket carries, each behind an emulated link. Their compute shares this thread with the client's,
 * so what the swarm adds to a step here is what the network and the protocol cost; on real machines
 * each peer would also bring its own processor. Plain data in, plain data out.
 */
import * as tf from '@tensorflow/tfjs';
import { SettingsError, SwarmPeerError } from '../errors';
import { Gpt2Model } from '../model/gpt2';
import { newVariable } from '../model/ops';
import { methodInfo } from '../peft/catalog';
import type { TaskData } from '../data/task-data';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import { BlockServer } from '../swarm/block-server';
import { SwarmClient, swarmGradientFn } from '../swarm/client';
import { Directory } from '../swarm/directory';
import { modelHash } from '../swarm/model-hash';
import type { Channel } from '../swarm/transport';
import { EmulatedChannel, LocalChannel, PERFECT_LINK } from '../swarm/transport';
import { createAdapter, planAdapter } from '../train/plan';
import { taskBatchSource } from '../train/task-eval';
import { Trainer } from '../train/trainer';
import type { SwarmTrial, SwarmTrialRequest, SwarmTrialRun } from '../protocol/compare-protocol';

/** Contiguous spans of about equal size: `count` of them over `nLayer` blocks. */
export function evenSpans(nLayer: number, count: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < count; i++)
    out.push([Math.round((i * nLayer) / count), Math.round(((i + 1) * nLayer) / count)]);
  return out;
}

function checkRequest(req: SwarmTrialRequest, nLayer: number): void {
  const whole = (v: number, lo: number, hi: number): boolean => Number.isInteger(v) && v >= lo && v <= hi;
  if (!whole(req.peers, 1, nLayer))
    throw new SettingsError(`${req.peers} spans: give 1 to ${nLayer}, one per machine of the chain`);
  if (!whole(req.steps, 2, 100)) throw new SettingsError(`${req.steps} steps: give 2 to 100`);
  if (req.latenciesMs.length === 0 || req.latenciesMs.length > 12)
    throw new SettingsError('give 1 to 12 latencies to measure');
  for (const l of [...req.latenciesMs, req.failureLatencyMs])
    if (!(Number.isFinite(l) && l >= 0 && l <= 2_000))
      throw new SettingsError(`latency ${l} ms: give 0 to 2000 ms`);
}

export async function runSwarmTrial(
  model: Gpt2Model,
  tokenizer: TextTokenizer,
  modelId: string,
  data: TaskData,
  req: SwarmTrialRequest,
): Promise<SwarmTrial> {
  const L = model.config.nLayer;
  checkRequest(req, L);
  const shape = { steps: req.steps, seqLen: req.seqLen, seed: req.seed };
  const { method, config } = planAdapter(model, req.method, req.config ?? {}, data.info, shape, modelId);
  const hash = await modelHash(model);
  const spans = evenSpans(L, req.peers);
  // The peers' copy of the blocks: the client's layers get the adapter's hooks, theirs must not.
  const copies = new Map<string, tf.Variable>();
  for (const [name, v] of model.weights)
    if (/^h\.\d+\./.test(name)) copies.set(name, newVariable(v.clone(), false));
  const peerModel = new Gpt2Model(model.config, copies);

  /** The same training from the same seed: through `client`, or (null) in this worker alone. */
  const train = async (
    client: SwarmClient | null,
    onStep?: (step: number) => void,
    steps = req.steps,
  ): Promise<{ losses: number[]; ms: number[] }> => {
    const adapter = createAdapter(model, tokenizer, method, config, data.info, req.seed);
    const trainer = new Trainer(model, adapter, taskBatchSource(data, req.seqLen), {
      steps: req.steps,
      lr: req.lr ?? methodInfo(method.cliName).defaultLr,
      batchSize: req.batchSize,
      seqLen: req.seqLen,
      seed: req.seed,
      maxGradNorm: 1.0,
      gradients: client ? swarmGradientFn(client, adapter) : undefined,
    });
    const out = { losses: [] as number[], ms: [] as number[] };
    try {
      for (let i = 0; i < steps; i++) {
        onStep?.(i + 1);
        const t0 = performance.now();
        const { loss } = await trainer.trainStep();
        out.ms.push(performance.now() - t0);
        out.losses.push(loss);
        // Let the worker answer messages between steps.
        await new Promise((r) => setTimeout(r, 0));
      }
    } finally {
      trainer.dispose();
      adapter.dispose();
    }
    return out;
  };

  /** Two peers per span behind links of `latencyMs` one way; `killAt` kills the route's first peer then. */
  const throughSwarm = async (
    latencyMs: number,
    killAt: number | null,
    steps = req.steps,
  ): Promise<SwarmTrialRun> => {
    const directory = new Directory({ ttlMs: 3_600_000 });
    const servers = new Map<string, BlockServer>();
    const channels = new Map<string, LocalChannel[]>();
    const dead = new Set<string>();
    for (const [i, [start, end]] of spans.entries())
      for (const copy of ['a', 'b']) {
        const peerId = `p${i + 1}${copy}`;
        const s = new BlockServer({ model: peerModel, start, end, modelHash: hash, peerId });
        // Every peer as fast as the next: the route is then the same at every latency.
        s.throughput = 1000;
        servers.set(peerId, s);
        directory.announce(s.info());
      }
    const link = { ...PERFECT_LINK, latencyMs };
    let bytes = 0;
    let requests = 0;
    const counted: Channel[] = [];
    let step = 0;
    let killed: string | null = null;
    let failures = 0;
    const client = new SwarmClient({
      model,
      modelHash: hash,
      peers: directory,
      // A dead peer is found at once (its channel closes); a slow link must not be taken for one.
      timeoutMs: 60_000,
      onEvent: (e) => {
        if (e.type === 'failure') failures++;
        if (e.type === 'route' && killAt !== null && step === killAt && killed === null) {
          // Dies as the step's route is chosen: the step's first request to it fails.
          killed = e.hops[0]!.peer.peerId;
          dead.add(killed);
          directory.remove(killed);
          for (const ch of channels.get(killed) ?? []) ch.kill();
        }
      },
      connect: (p) => {
        const server = servers.get(p.peerId);
        if (!server || dead.has(p.peerId))
          return Promise.reject(new SwarmPeerError(`peer ${p.peerId} is gone`, p.peerId));
        const ch = new LocalChannel(server.connect());
        channels.set(p.peerId, [...(channels.get(p.peerId) ?? []), ch]);
        counted.push(ch);
        return Promise.resolve(new EmulatedChannel(ch, link));
      },
    });
    try {
      const r = await train(client, (s) => (step = s), steps);
      for (const ch of counted) {
        bytes += ch.stats.bytesSent + ch.stats.bytesReceived;
        requests += ch.stats.framesSent;
      }
      return { latencyMs, ...r, bytes, requests, failures, killed, killedAtStep: killed ? killAt : null };
    } finally {
      client.close();
      for (const s of servers.values()) s.dispose();
    }
  };

  try {
    const local = await train(null);
    // Two steps through the swarm, not reported: the peers' side (spans, client LoRA, the
    // backward through a span) compiles and warms its kernels here, not in the first measured run.
    await throughSwarm(0, null, 2);
    const runs: SwarmTrialRun[] = [];
    for (const l of req.latenciesMs) runs.push(await throughSwarm(l, null));
    // The failure in the middle of the run, never on its first step (that one warms the kernels).
    const failure = await throughSwarm(req.failureLatencyMs, Math.max(2, Math.ceil(req.steps / 2)));
    return { spans, local, runs, failure };
  } finally {
    peerModel.dispose();
  }
}
