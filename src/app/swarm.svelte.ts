/**
 * The Swarm screen's state: the engine's worker (client side and directory), the block workers the
 * page started, what the engine reports (peers, chain, log, tokens) and the network settings. It
 * never touches tensors; everything goes through the typed protocol (swarm-protocol.ts).
 */
import type {
  HopView,
  LinkConditions,
  PeerView,
  RoutingMode,
  FromBroker,
  SwarmGenerateReply,
  SwarmLogLine,
  SwarmMethod,
  SwarmModelSummary,
  SwarmTrainReply,
  TabOffer,
} from '../lib/protocol/swarm-protocol';
import { SwarmPeerError } from '../lib/errors';
import { methodInfo } from '../lib/peft/catalog';
import type { BlockWorker } from './swarm-client';
import { connectTabBroker, postToBroker, startBlockWorker, SwarmWorker } from './swarm-client';

/** The bundled model the swarm spreads: the smallest, so a few workers start in seconds. */
export const SWARM_MODEL = 'peftlab-s';

export const NO_LINK: LinkConditions = { latencyMs: 0, jitterMs: 0, bandwidthBytesPerS: 0, loss: 0 };

export class SwarmState {
  model = $state<SwarmModelSummary | null>(null);
  status = $state('starting the swarm worker');
  peers = $state<PeerView[]>([]);
  chain = $state<HopView[]>([]);
  log = $state<SwarmLogLine[]>([]);
  /** The text generated so far (streams while generating). */
  text = $state('');
  tokens = $state(0);
  result = $state<SwarmGenerateReply | null>(null);
  busy = $state(false);
  adding = $state(false);
  error = $state<string | null>(null);
  mode = $state<RoutingMode>('min-latency');
  globalLink = $state<LinkConditions>({ ...NO_LINK });
  /** Loss per step of the current training run, through the swarm and in the engine's worker alone. */
  swarmLosses = $state<[number, number][]>([]);
  localLosses = $state<[number, number][]>([]);
  training = $state(false);
  trainResult = $state<SwarmTrainReply | null>(null);
  /** Block workers other tabs offer, not yet taken (this tab's own offers left out). */
  offers = $state<TabOffer[]>([]);
  /** This tab's offers to other tabs' swarms, and whether one took each. */
  hosting = $state<(TabOffer & { joined: boolean })[]>([]);
  /** False where the browser has no SharedWorker: no tab peers either way. */
  tabsSupported = $state(true);

  private engine: SwarmWorker | null = null;
  private broker: MessagePort | null = null;
  /** Takes in flight, by offer id: the broker answers each with `taken` (and its port) or `gone`. */
  private readonly taking: Record<string, (r: { offer: TabOffer; control: MessagePort } | null) => void> = {};
  /** The block workers this tab hosts for other tabs, by offer id. */
  private readonly hosted: Record<string, BlockWorker> = {};
  /** The block workers by peer id (not drawn: the engine's `peers` event is what the screen shows). */
  private readonly workers: Record<string, BlockWorker> = {};
  private nextPeer = 1;
  private nextTab = 1;

  constructor(private readonly baseUrl: string) {}

  async start(): Promise<void> {
    const engine = new SwarmWorker();
    this.engine = engine;
    engine.on('peers', (p) => (this.peers = p));
    engine.on('chain', (c) => (this.chain = c));
    engine.on('log', (l) => (this.log = [...this.log, l]));
    engine.on('token', (t) => {
      this.text = t.text;
      this.tokens = t.count;
    });
    engine.on('trainStep', (p) => {
      if (p.where === 'swarm') this.swarmLosses = [...this.swarmLosses, [p.step, p.loss]];
      else this.localLosses = [...this.localLosses, [p.step, p.loss]];
    });
    engine.onCrash((e) => (this.error = e.message));
    this.broker = connectTabBroker((m, ports) => this.fromBroker(m, ports));
    this.tabsSupported = this.broker !== null;
    await this.run(async () => {
      await engine.request('init', { wasmBaseUrl: `${this.baseUrl}wasm/` });
      this.status = `loading ${SWARM_MODEL}`;
      this.model = await engine.request('loadModel', {
        id: SWARM_MODEL,
        baseUrl: `${this.baseUrl}models/${SWARM_MODEL}`,
      });
      this.status = 'ready: add peers';
    });
  }

  /** Runs an action, showing its error (a named error's message says what to do). */
  private async run(f: () => Promise<void>): Promise<void> {
    this.error = null;
    try {
      await f();
    } catch (e) {
      this.error = (e as Error).message;
    }
  }

  private need(): SwarmWorker {
    if (!this.engine) throw new Error('the swarm has not started');
    return this.engine;
  }

  /** Starts a block worker serving blocks start..end-1. */
  async addPeer(start: number, end: number): Promise<void> {
    this.adding = true;
    await this.run(async () => {
      const engine = this.need();
      const peerId = `w${this.nextPeer++}`;
      const bw = await startBlockWorker();
      const { port1, port2 } = new MessageChannel();
      bw.worker.postMessage({ control: port2 }, [port2]);
      try {
        await engine.request(
          'addPeer',
          { peerId, start, end, control: port1, lock: bw.lock, kind: 'worker' },
          [port1],
        );
      } catch (e) {
        bw.worker.terminate();
        throw e;
      }
      this.workers[peerId] = bw;
    });
    this.adding = false;
  }

  private fromBroker(m: FromBroker, ports: readonly MessagePort[]): void {
    if ('offers' in m) {
      this.offers = m.offers.filter((o) => !(o.offerId in this.hosted));
    } else if ('taken' in m) {
      const control = ports[0];
      this.taking[m.taken.offerId]?.(control ? { offer: m.taken, control } : null);
    } else if ('gone' in m) {
      this.taking[m.gone]?.(null);
    } else {
      this.hosting = this.hosting.map((h) => (h.offerId === m.joined ? { ...h, joined: true } : h));
    }
  }

  /**
   * Offers blocks start..end-1 to another tab's swarm: a block worker of this tab whose control port
   * goes to the broker. The taker sends it the span's weights and connects to it directly.
   */
  async offerToTabs(start: number, end: number): Promise<void> {
    this.adding = true;
    await this.run(async () => {
      const broker = this.broker;
      if (!broker) throw new SwarmPeerError('this browser has no SharedWorker, which tab peers need');
      const bw = await startBlockWorker();
      const { port1, port2 } = new MessageChannel();
      bw.worker.postMessage({ control: port2 }, [port2]);
      const offer: TabOffer = { offerId: `o-${crypto.randomUUID()}`, start, end, lock: bw.lock };
      this.hosted[offer.offerId] = bw;
      this.hosting = [...this.hosting, { ...offer, joined: false }];
      postToBroker(broker, { offer }, [port1]);
    });
    this.adding = false;
  }

  /** Ends a block worker hosted for other tabs: to a swarm that took it, a peer that died. */
  stopHosting(offerId: string): void {
    if (this.broker) postToBroker(this.broker, { withdraw: offerId });
    this.hosted[offerId]?.worker.terminate();
    delete this.hosted[offerId];
    this.hosting = this.hosting.filter((h) => h.offerId !== offerId);
  }

  /** Takes another tab's offer into this tab's swarm, as a peer named tab1, tab2... */
  async joinTab(offerId: string): Promise<void> {
    this.adding = true;
    await this.run(async () => {
      const engine = this.need();
      const broker = this.broker;
      if (!broker) throw new SwarmPeerError('this browser has no SharedWorker, which tab peers need');
      const got = await new Promise<{ offer: TabOffer; control: MessagePort } | null>((resolve) => {
        this.taking[offerId] = resolve;
        postToBroker(broker, { take: offerId });
      });
      delete this.taking[offerId];
      if (!got) throw new SwarmPeerError(`the tab offering ${offerId} has closed or another tab took it`);
      const { offer, control } = got;
      await engine.request(
        'addPeer',
        {
          peerId: `tab${this.nextTab++}`,
          start: offer.start,
          end: offer.end,
          control,
          lock: offer.lock,
          kind: 'tab',
        },
        [control],
      );
    });
    this.adding = false;
  }

  /** A `peft-lab swarm serve` process at ws://host:port (and its token, if it was given one). */
  async addRemote(url: string, token: string): Promise<void> {
    this.adding = true;
    await this.run(async () => {
      await this.need().request('addRemote', { url: url.trim(), token });
    });
    this.adding = false;
  }

  /** Ends a block worker at once, as a machine dies: the engine finds out by itself. */
  kill(peerId: string): void {
    this.workers[peerId]?.worker.terminate();
    delete this.workers[peerId];
  }

  async setLink(peerId: string | null, link: LinkConditions): Promise<void> {
    if (peerId === null) this.globalLink = { ...link };
    await this.run(async () => {
      this.peers = await this.need().request('setLink', { peerId, link });
    });
  }

  async setMode(mode: RoutingMode): Promise<void> {
    this.mode = mode;
    await this.run(() => this.need().request('setMode', { mode }));
  }

  async generate(prompt: string, maxNewTokens: number): Promise<void> {
    this.busy = true;
    this.text = '';
    this.tokens = 0;
    this.result = null;
    await this.run(async () => {
      this.result = await this.need().request('generate', { prompt, maxNewTokens });
      this.chain = this.result.chain;
    });
    this.busy = false;
  }

  /** The same small run twice from one seed: in the engine's worker alone, then through the swarm. */
  async train(method: SwarmMethod, steps: number): Promise<void> {
    this.training = true;
    this.swarmLosses = [];
    this.localLosses = [];
    this.trainResult = null;
    await this.run(async () => {
      this.trainResult = await this.need().request('train', {
        method,
        steps,
        // Each method's own default rate (as the Lab starts with): one rate for all made LoRA diverge.
        lr: methodInfo(method).defaultLr,
        batchSize: 2,
        seqLen: 16,
        seed: 1,
        dataBaseUrl: this.baseUrl,
      });
    });
    this.training = false;
  }

  dispose(): void {
    for (const id of Object.keys(this.workers)) this.kill(id);
    for (const id of Object.keys(this.hosted)) this.stopHosting(id);
    this.broker?.close();
    this.broker = null;
    this.engine?.terminate();
    this.engine = null;
  }
}
