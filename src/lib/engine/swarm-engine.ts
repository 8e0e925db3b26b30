/**
 * The engine behind the Swarm screen, in its own worker: it holds the swarm's client side (the
 * embeddings, the final norm, the head: SwarmClient) and the browser's directory of its block
 * workers. Each block worker is a thread the page started (so the page can kill it); the engine
 * reaches it over a MessagePort, sends it its span's weights, and opens one MessageChannel per client
 * connection, each seen through an emulated link (latency, jitter, bandwidth, loss) and metered.
 *
 * A peer's death is learnt as the page learns of its own workers' (src/app/worker-client.ts): the
 * peer holds a Web Lock while it lives and the engine waits for it, so a killed worker fails the
 * requests pending on it at once and the client routes around it and replays.
 */
import { chooseBackend } from '../backend/backend';
import type { BackendInfo } from '../backend/backend';
import { InputError, NotReadyError, SettingsError, SwarmPeerError, rebuildError } from '../errors';
import { generate } from '../model/generate';
import type { Gpt2Model } from '../model/gpt2';
import { requireGpt2 } from '../model/decoder';
import { adapterDecorator } from '../peft/forward';
import type {
  FromPeer,
  HopView,
  PeerView,
  SwarmApi,
  SwarmEventSink,
  SwarmGenerateReply,
  SwarmModelSummary,
  SwarmRequestOf,
  SwarmTrainReply,
  ToPeer,
} from '../protocol/swarm-protocol';
import { SWARM_METHODS } from '../protocol/swarm-protocol';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import { loadTaskData } from '../data/task-data';
import { taskById } from '../data/tasks/registry';
import type { PeftConfigBase } from '../peft/types';
import { methodByCliName } from '../peft/registry';
import { countTrainable } from '../peft/state';
import { createAdapter } from '../train/plan';
import { taskBatchSource } from '../train/task-eval';
import { Trainer } from '../train/trainer';
import type { SwarmEvent } from '../swarm/client';
import { generateThroughSwarm, SwarmClient, swarmGradientFn } from '../swarm/client';
import type { DeathWatch } from '../swarm/dom-ports';
import { deathWatch, domPort } from '../swarm/dom-ports';
import { Directory } from '../swarm/directory';
import { modelHash } from '../swarm/model-hash';
import type { PeerInfo } from '../swarm/protocol';
import type { Hop, RoutingMode } from '../swarm/routing';
import type { Channel, LinkConditions, LinkStats } from '../swarm/transport';
import { EmulatedChannel, PeerConnection, PERFECT_LINK, PortChannel } from '../swarm/transport';
import type { WebSocketFactory, WebSocketLike } from '../swarm/ws-transport';
import { openWebSocket } from '../swarm/ws-transport';
import type { FetchBytes } from './model-files';
import { fetchModelFiles, modelFromFiles } from './model-files';

/** Resolves once the thread holding `lock` has ended (the browser then grants the lock to us). */
export type WatchLock = (lock: string) => Promise<void>;

/** The browser's watch: a lock request granted only when the peer has let go, i.e. ended. */
export const browserWatchLock: WatchLock = (lock) =>
  navigator.locks.request(lock, () => undefined).then(() => undefined);

/** Counters of one peer's traffic, kept for its life and for the current operation. */
interface Meter {
  requests: number;
  rttMs: number;
  bytesSent: number;
  bytesReceived: number;
}
const newMeter = (): Meter => ({ requests: 0, rttMs: 0, bytesSent: 0, bytesReceived: 0 });

/** How the engine reaches a peer: the control port of a block worker (this tab's or another's), or a socket. */
type Reach =
  | { kind: 'worker' | 'tab'; control: MessagePort }
  | { kind: 'ws'; url: string; token: string; seed: PeerConnection };

interface Peer {
  info: PeerInfo;
  reach: Reach;
  death: DeathWatch & { dead: string | null };
  /** Its own link conditions; null: the global ones. */
  link: LinkConditions | null;
  channels: Set<EmulatedChannel>;
  total: Meter;
  op: Meter;
}

/**
 * A channel that times each request to its reply (the client sends one request at a time per
 * connection while it generates) and counts bytes into its peer's meters.
 */
class MeteredChannel implements Channel {
  onFrame: (frame: Uint8Array) => void = () => {};
  onClose: (reason: string) => void = () => {};
  private readonly sentAt: number[] = [];

  constructor(
    private readonly inner: Channel,
    private readonly meters: () => Meter[],
    private readonly onEnd: () => void,
  ) {
    inner.onFrame = (f) => {
      const t0 = this.sentAt.shift();
      for (const m of this.meters()) {
        m.bytesReceived += f.byteLength;
        if (t0 !== undefined) m.rttMs += performance.now() - t0;
      }
      this.onFrame(f);
    };
    inner.onClose = (r) => this.onClose(r);
  }

  get stats(): LinkStats {
    return this.inner.stats;
  }

  send(frame: Uint8Array): void {
    this.sentAt.push(performance.now());
    for (const m of this.meters()) {
      m.requests++;
      m.bytesSent += frame.byteLength;
    }
    this.inner.send(frame);
  }

  close(): void {
    this.onEnd();
    this.inner.close();
  }
}

function checkLink(l: LinkConditions): LinkConditions {
  const ok = (v: number, max: number): boolean => Number.isFinite(v) && v >= 0 && v <= max;
  if (!ok(l.latencyMs, 10_000) || !ok(l.jitterMs, 10_000))
    throw new SettingsError(
      `link latency ${l.latencyMs} ms and jitter ${l.jitterMs} ms must be between 0 and 10000 ms`,
    );
  if (!ok(l.bandwidthBytesPerS, 1e12))
    throw new SettingsError(`link bandwidth ${l.bandwidthBytesPerS} B/s must be 0 (unlimited) or more`);
  if (!ok(l.loss, 0.9)) throw new SettingsError(`link loss ${l.loss} must be between 0 and 0.9`);
  return { ...l };
}

export class SwarmEngine implements SwarmApi {
  private model: Gpt2Model | null = null;
  private tokenizer: TextTokenizer | null = null;
  private hash = '';
  private wasmBaseUrl = '';
  private readonly directory = new Directory({ ttlMs: 5_000 });
  private readonly peers = new Map<string, Peer>();
  private globalLink: LinkConditions = { ...PERFECT_LINK };
  private mode: RoutingMode = 'min-latency';
  private readonly t0 = performance.now();
  private seed = 1;

  constructor(
    private readonly fetchBytes: FetchBytes,
    private readonly emit: SwarmEventSink,
    private readonly watchLock: WatchLock = browserWatchLock,
    /** A request unanswered this long fails its peer (a lost frame is found this way). */
    private readonly timeoutMs = 8_000,
    /** Opens a WebSocket (the worker's own WebSocket in the browser, `ws` in Node tests). */
    private readonly openSocket: WebSocketFactory = (url) => new WebSocket(url) as unknown as WebSocketLike,
  ) {}

  dispose(): void {
    for (const p of this.peers.values()) if (p.reach.kind === 'ws') p.reach.seed.close();
    this.model?.dispose();
  }

  private log(level: 'info' | 'failure' | 'recovery', message: string): void {
    this.emit('log', { t: Math.round(performance.now() - this.t0), level, message });
  }

  async init(req: SwarmRequestOf<'init'>): Promise<BackendInfo> {
    this.wasmBaseUrl = req.wasmBaseUrl;
    // One-thread wasm for the client and every block worker: several workers on a few cores would
    // each start a thread pool and fight for them, and one backend everywhere keeps the swarm's
    // numbers those of a local run.
    return chooseBackend('wasm', req.wasmBaseUrl);
  }

  private need(): { model: Gpt2Model; tokenizer: TextTokenizer } {
    if (!this.model || !this.tokenizer) throw new NotReadyError('no model is loaded: pick a model first');
    return { model: this.model, tokenizer: this.tokenizer };
  }

  async loadModel(req: SwarmRequestOf<'loadModel'>): Promise<SwarmModelSummary> {
    if (this.peers.size > 0)
      throw new SettingsError('the swarm already serves a model: reload the page to start another');
    const files = modelFromFiles(req.id, await fetchModelFiles(this.fetchBytes, req.baseUrl));
    const model = requireGpt2(files.model, 'The swarm');
    const { tokenizer } = files;
    this.model?.dispose();
    this.model = model;
    this.tokenizer = tokenizer;
    this.hash = await modelHash(model);
    let blockBytes = 0;
    for (const [name, v] of model.weights) if (name.startsWith('h.0.')) blockBytes += v.size * 4;
    return {
      id: req.id,
      nLayer: model.config.nLayer,
      nEmbd: model.config.nEmbd,
      modelHash: this.hash,
      blockBytes,
    };
  }

  private linkOf(p: Peer): LinkConditions {
    return p.link ?? this.globalLink;
  }

  private view(p: Peer): PeerView {
    const m = p.op.requests > 0 ? p.op : p.total;
    return {
      peerId: p.info.peerId,
      kind: p.reach.kind,
      address: p.reach.kind === 'ws' ? p.reach.url : '',
      start: p.info.start,
      end: p.info.end,
      throughput: p.info.throughput,
      alive: p.death.dead === null,
      link: { ...this.linkOf(p) },
      ownLink: p.link !== null,
      requests: p.total.requests,
      bytesSent: p.total.bytesSent,
      bytesReceived: p.total.bytesReceived,
      meanRttMs: m.requests > 0 ? m.rttMs / m.requests : 0,
    };
  }

  private views(): PeerView[] {
    return [...this.peers.values()].map((p) => this.view(p));
  }

  async addPeer(req: SwarmRequestOf<'addPeer'>): Promise<PeerView> {
    const { model } = this.need();
    const L = model.config.nLayer;
    const { peerId, start, end } = req;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > L || end <= start)
      throw new SettingsError(
        `blocks ${start}:${end} are not a span of this ${L}-block model: give A:B with 0 <= A < B <= ${L}`,
      );
    if (this.peers.has(peerId)) throw new SettingsError(`a peer named ${peerId} is already in the swarm`);
    const weights: [string, number[], Float32Array][] = [];
    for (const [name, v] of model.weights) {
      const m = /^h\.(\d+)\./.exec(name);
      if (!m || Number(m[1]) < start || Number(m[1]) >= end) continue;
      weights.push([name, [...v.shape], new Float32Array((await v.data()) as Float32Array)]);
    }
    const control = req.control;
    const ready = new Promise<PeerInfo>((resolve, reject) => {
      control.onmessage = (e: MessageEvent<FromPeer>) => {
        control.onmessage = null;
        if ('ready' in e.data) resolve(e.data.ready);
        else reject(rebuildError(e.data.failed));
      };
    });
    const init: ToPeer = {
      init: {
        config: model.config,
        weights,
        start,
        end,
        modelHash: this.hash,
        peerId,
        wasmBaseUrl: this.wasmBaseUrl,
      },
    };
    control.postMessage(
      init,
      weights.map(([, , w]) => w.buffer as ArrayBuffer),
    );
    const death = deathWatch(this.watchLock(req.lock).then(() => 'its worker ended'));
    const info = await Promise.race([
      ready,
      new Promise<never>((_, reject) => {
        death.on((reason) =>
          reject(new SwarmPeerError(`peer ${peerId} ended while starting (${reason})`, peerId)),
        );
      }),
    ]);
    const peer: Peer = {
      info,
      reach: { kind: req.kind === 'tab' ? 'tab' : 'worker', control },
      death,
      link: null,
      channels: new Set(),
      total: newMeter(),
      op: newMeter(),
    };
    return this.join(peer, req.kind === 'tab' ? 'in another tab' : 'in a worker of this tab');
  }

  /** A peer enters the directory; its death (however learnt) takes it out and is logged. */
  private join(peer: Peer, where: string): PeerView {
    const { peerId, start, end } = peer.info;
    this.peers.set(peerId, peer);
    this.directory.announce(peer.info);
    peer.death.on((reason) => {
      this.directory.remove(peerId);
      this.log('failure', `peer ${peerId} [${start}:${end}] is gone: ${reason}`);
      this.emit('peers', this.views());
    });
    this.log(
      'info',
      `peer ${peerId} joined ${where}, serving blocks ${start}:${end} at ${Math.round(peer.info.throughput)} tokens/s`,
    );
    this.emit('peers', this.views());
    return this.view(peer);
  }

  /**
   * A `peft-lab swarm serve` process: the engine says hello with the token (the peer checks it), and
   * takes the peer only if it serves this model (same hash) and a span of it. The hello connection
   * stays open as the peer's heartbeat: when it closes, the peer is gone. Each operation opens its
   * own connections, seen through the emulated link like every other peer's.
   */
  async addRemote(req: SwarmRequestOf<'addRemote'>): Promise<PeerView> {
    const { model } = this.need();
    const url = req.url.trim();
    if (!/^wss?:\/\/[^/\s]+\/?$/.test(url))
      throw new SettingsError(
        `${JSON.stringify(url)} is not a peer address: give ws://host:port, as \`peft-lab swarm serve\` prints it`,
      );
    if (typeof req.token !== 'string' || req.token.length > 256)
      throw new SettingsError('the token must be text of at most 256 characters');
    for (const p of this.peers.values())
      if (p.reach.kind === 'ws' && p.reach.url === url && p.death.dead === null)
        throw new SettingsError(`${url} is already in the swarm`);
    const seed = new PeerConnection(await openWebSocket(url, this.openSocket), url, {
      timeoutMs: this.timeoutMs,
    });
    let remote: PeerInfo;
    try {
      remote = (await seed.request('hello', req.token === '' ? {} : { token: req.token })).fields.peer;
      if (remote.modelHash !== this.hash)
        throw new SettingsError(
          `${url} serves another model (hash ${remote.modelHash.slice(0, 12)}, this swarm's is ${this.hash.slice(0, 12)}): start it with --model on this swarm's model`,
        );
      if (remote.end > model.config.nLayer)
        throw new SettingsError(
          `${url} serves blocks ${remote.start}:${remote.end}, past this model's ${model.config.nLayer}`,
        );
      if (this.peers.has(remote.peerId))
        throw new SettingsError(`a peer named ${remote.peerId} is already in the swarm`);
    } catch (e) {
      seed.close();
      throw e;
    }
    let died: (reason: string) => void = () => {};
    const death = deathWatch(new Promise<string>((resolve) => (died = resolve)));
    // The connection's own close handler fails its pending requests; this one tells the directory.
    const onClose = seed.channel.onClose;
    seed.channel.onClose = (reason) => {
      onClose(reason);
      died(`its connection closed (${reason})`);
    };
    const peer: Peer = {
      info: { ...remote, address: url },
      reach: { kind: 'ws', url, token: req.token, seed },
      death,
      link: null,
      channels: new Set(),
      total: newMeter(),
      op: newMeter(),
    };
    return this.join(peer, `from ${url}`);
  }

  async setLink(req: SwarmRequestOf<'setLink'>): Promise<PeerView[]> {
    const link = checkLink(req.link);
    if (req.peerId === null) this.globalLink = link;
    else {
      const p = this.peers.get(req.peerId);
      if (!p) throw new SettingsError(`no peer named ${req.peerId} in the swarm`);
      p.link = link;
    }
    // Open links take the new conditions at once (the next frame feels them).
    for (const p of this.peers.values()) for (const c of p.channels) c.conditions = { ...this.linkOf(p) };
    const views = this.views();
    this.emit('peers', views);
    return views;
  }

  async setMode(req: SwarmRequestOf<'setMode'>): Promise<void> {
    if (req.mode !== 'min-latency' && req.mode !== 'max-throughput')
      throw new SettingsError(`routing mode ${JSON.stringify(req.mode)}: use min-latency or max-throughput`);
    this.mode = req.mode;
  }

  /**
   * The directory's live peers. Each block worker's heartbeat is its held lock, known here at every
   * query: a timer would be no better, since this thread is busy for seconds at a time (a local
   * training step) and a heartbeat it missed would drop every peer at once.
   */
  private live(hash: string): Promise<PeerInfo[]> {
    for (const p of this.peers.values())
      if (p.death.dead === null && !this.directory.heartbeat(p.info.peerId, 0, p.info.throughput))
        this.directory.announce(p.info);
    return this.directory.live(hash);
  }

  /** One new connection to a peer: a fresh MessageChannel, through its emulated link, metered. */
  private async connect(info: PeerInfo): Promise<Channel> {
    const p = this.peers.get(info.peerId);
    if (!p || p.death.dead !== null) throw new SwarmPeerError(`peer ${info.peerId} is gone`, info.peerId);
    let inner: Channel;
    if (p.reach.kind === 'ws') {
      inner = await openWebSocket(p.reach.url, this.openSocket);
    } else {
      const { port1, port2 } = new MessageChannel();
      p.reach.control.postMessage({ connect: port2 } satisfies ToPeer, [port2]);
      inner = new PortChannel(domPort(port1, p.death));
    }
    const link = new EmulatedChannel(inner, { ...this.linkOf(p) }, this.seed++);
    p.channels.add(link);
    return new MeteredChannel(
      link,
      () => [p.total, p.op],
      () => p.channels.delete(link),
    );
  }

  private hopViews(chain: Hop[]): HopView[] {
    return chain.map((h) => {
      const m = this.peers.get(h.peer.peerId)?.op ?? newMeter();
      return {
        peerId: h.peer.peerId,
        start: h.start,
        end: h.end,
        requests: m.requests,
        meanRttMs: m.requests > 0 ? m.rttMs / m.requests : 0,
        bytesSent: m.bytesSent,
        bytesReceived: m.bytesReceived,
      };
    });
  }

  /**
   * A new client for one operation (generation or training), with fresh per-operation meters. Its
   * events go to the log and keep `chain` (what the screen shows) up to date: a reroute after a
   * failure splices the new hops in place of the dead one's.
   */
  private operation(): { client: SwarmClient; chain: Hop[]; failures: number; replays: number } {
    const { model } = this.need();
    for (const p of this.peers.values()) p.op = newMeter();
    const run = { chain: [] as Hop[], failures: 0, replays: 0 };
    let lastRoute = '';
    const onEvent = (e: SwarmEvent): void => {
      if (e.type === 'route') {
        // A copy: the client consumes the array it planned with (forwardChain shifts its hops off).
        run.chain = [...e.hops];
        // A training step plans its route every step: the log says so only when it changes.
        if (e.route !== lastRoute) this.log('info', `route: ${e.route}`);
        lastRoute = e.route;
      } else if (e.type === 'failure') {
        run.failures++;
        this.log('failure', `peer ${e.peerId} failed ${e.kind}: ${e.message}`);
      } else {
        run.replays++;
        run.chain = [
          ...run.chain.filter((h) => h.end <= e.start),
          ...e.hops,
          ...run.chain.filter((h) => h.start >= e.end),
        ];
        this.log(
          'recovery',
          `rerouted blocks ${e.start}:${e.end} to ${e.route} and replayed ${e.positions} positions`,
        );
      }
      this.emit('chain', this.hopViews(run.chain));
    };
    const client = new SwarmClient({
      model,
      modelHash: this.hash,
      peers: { live: (hash) => this.live(hash) },
      connect: (p) => this.connect(p),
      // Each serve process checks its own token; block workers ask for none.
      token: (p) => {
        const r = this.peers.get(p.peerId)?.reach;
        return r?.kind === 'ws' && r.token !== '' ? r.token : undefined;
      },
      mode: this.mode,
      timeoutMs: this.timeoutMs,
      onEvent,
    });
    return Object.assign(run, { client });
  }

  async generate(req: SwarmRequestOf<'generate'>): Promise<SwarmGenerateReply> {
    const { model, tokenizer } = this.need();
    const promptIds = tokenizer.encode(req.prompt);
    if (promptIds.length === 0) throw new InputError('the prompt is empty: type some text first');
    if (!Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 1 || req.maxNewTokens > 256)
      throw new SettingsError(`${req.maxNewTokens} new tokens: give a whole number from 1 to 256`);
    const opts = { maxNewTokens: req.maxNewTokens, eosTokenId: tokenizer.eosTokenId };
    // The reference: the whole model here, greedy, as the Lab generates.
    const localIds = await generate(model, promptIds, opts, adapterDecorator(model, null));
    const run = this.operation();
    const client = run.client;
    const t0 = performance.now();
    const got: number[] = [];
    let ids: number[];
    try {
      ids = await generateThroughSwarm(client, promptIds, {
        ...opts,
        onToken: (id) => {
          got.push(id);
          this.emit('token', { text: tokenizer.decode(got), count: got.length });
          this.emit('chain', this.hopViews(run.chain));
        },
      });
    } finally {
      client.close();
    }
    const ms = performance.now() - t0;
    this.emit('peers', this.views());
    return {
      text: tokenizer.decode(ids),
      localText: tokenizer.decode(localIds),
      generatedIds: ids,
      localIds,
      chain: this.hopViews(run.chain),
      replays: run.replays,
      failures: run.failures,
      ms,
    };
  }

  async train(req: SwarmRequestOf<'train'>): Promise<SwarmTrainReply> {
    const { model, tokenizer } = this.need();
    if (!(SWARM_METHODS as readonly string[]).includes(req.method))
      throw new SettingsError(
        `${req.method} does not train through the swarm: use ${SWARM_METHODS.join(', ')}`,
      );
    const whole = (v: number, lo: number, hi: number): boolean => Number.isInteger(v) && v >= lo && v <= hi;
    if (!whole(req.steps, 1, 500))
      throw new SettingsError(`${req.steps} steps: give a whole number from 1 to 500`);
    if (!whole(req.batchSize, 1, 64)) throw new SettingsError(`batch ${req.batchSize}: give 1 to 64`);
    if (!whole(req.seqLen, 4, model.config.nPositions / 2))
      throw new SettingsError(`sequence length ${req.seqLen}: give 4 to ${model.config.nPositions / 2}`);
    if (!(req.lr > 0 && req.lr < 1))
      throw new SettingsError(`learning rate ${req.lr}: give a number in (0, 1)`);
    const info = taskById('moby-dick')!;
    const data = await loadTaskData(
      info,
      tokenizer,
      async (file) =>
        new TextDecoder().decode(await this.fetchBytes(`${req.dataBaseUrl}${info.dataDir}/${file}`)),
      { seqLen: req.seqLen },
    );
    const method = methodByCliName(req.method);
    const base = method.defaults('CAUSAL_LM') as PeftConfigBase & Record<string, unknown>;
    // Small adapters for a small model: 4 virtual tokens, or LoRA of rank 4 on attention and MLP.
    const config =
      method.kind === 'inject'
        ? { ...base, r: 4, loraAlpha: 8, targetModules: ['c_attn', 'c_fc'] }
        : { ...base, numVirtualTokens: 4 };
    const opts = {
      steps: req.steps,
      lr: req.lr,
      batchSize: req.batchSize,
      seqLen: req.seqLen,
      seed: req.seed,
      warmupSteps: 0,
    };
    // One after the other, each with its own adapter from the same seed (an injected adapter
    // changes the model's layers, so two cannot be on it at once).
    const steps = async (
      where: 'swarm' | 'local',
    ): Promise<{ losses: number[]; ms: number; trainable: number; failures: number }> => {
      const adapter = createAdapter(model, tokenizer, method, config, info, req.seed);
      const run = where === 'swarm' ? this.operation() : null;
      const t0 = performance.now();
      const trainer = new Trainer(model, adapter, taskBatchSource(data, req.seqLen), {
        ...opts,
        gradients: run ? swarmGradientFn(run.client, adapter) : undefined,
      });
      const losses: number[] = [];
      try {
        for (let i = 0; i < req.steps; i++) {
          const { loss } = await trainer.trainStep();
          losses.push(loss);
          this.emit('trainStep', { step: i + 1, loss, where });
          if (run) this.emit('chain', this.hopViews(run.chain));
        }
        return {
          losses,
          ms: performance.now() - t0,
          trainable: countTrainable(adapter),
          failures: run?.failures ?? 0,
        };
      } finally {
        trainer.dispose();
        adapter.dispose();
        run?.client.close();
      }
    };
    this.log('info', `${method.label}: ${req.steps} steps in this worker alone, then through the swarm`);
    const local = await steps('local');
    const swarm = await steps('swarm');
    const maxDiff = Math.max(...swarm.losses.map((l, i) => Math.abs(l - local.losses[i]!)));
    this.log(
      'info',
      `${method.label} through the swarm: largest loss difference from local ${maxDiff.toExponential(1)}`,
    );
    this.emit('peers', this.views());
    return {
      swarm: swarm.losses,
      local: local.losses,
      maxDiff,
      trainable: swarm.trainable,
      failures: swarm.failures,
      swarmMs: swarm.ms,
      localMs: local.ms,
    };
  }
}
