/**
 * The swarm client (Petals' RemoteSequential + InferenceSession + sequential_autograd, as ideas):
 * it holds the embeddings, the final norm, the head and the trainable parameters, and sends hidden
 * states through a chain of peers that covers every block.
 *
 * - Forward and backward go span by span. The client keeps each span's input, so a backward can
 *   be sent to any peer holding that span (peers keep nothing between requests); if a peer dies
 *   mid-step, that span is routed again (recomputing intermediate inputs if the new route splits
 *   it) and the step goes on with nothing lost.
 * - Generation keeps one session per hop; the client remembers every input it sent each hop.
 *   When a peer dies or times out, the client routes around it for that hop's blocks and replays
 *   the history into the new peers to rebuild their caches (Petals' input replay), then carries on.
 * - A peer whose reply has the wrong shape (or, checked on decode, non-finite values) is avoided
 *   like a dead one.
 */
import * as tf from '@tensorflow/tfjs';
import type { Gpt2Model, LayerKV } from '../model/gpt2';
import type { GenerateOptions } from '../model/generate';
import { sampleToken } from '../model/generate';
import { lmLogits } from '../model/heads';
import { adapterDecorator } from '../peft/forward';
import type { Adapter } from '../peft/types';
import type { GradientFn } from '../train/trainer';
import { Rng } from '../util/rng';
import {
  InputError,
  InternalError,
  PeftLabError,
  SettingsError,
  SwarmPeerError,
  SwarmRouteError,
} from '../errors';
import type { LoraConfig } from '../peft/lora/config';
import { loraScaling } from '../peft/lora/lora';
import type { PeerSource } from './directory';
import type { LoraFields, PeerInfo, RequestKind, SwarmRequests, Tensors, WireTensor } from './protocol';
import { LORA_MODULES } from './protocol';
import type { Hop, RoutingMode } from './routing';
import { describeRoute, route } from './routing';
import type { Channel } from './transport';
import { PeerConnection } from './transport';

/**
 * A client-held LoRA adapter as it travels: per `${module index}.${block}`, A [in, r] and B [r, out]
 * (our compute layout), and how to apply it (protocol.ts, LoraFields).
 */
export interface LoraPayload {
  weights: Map<string, { a: WireTensor; b: WireTensor }>;
  fields: LoraFields;
}

/** What travels with a span besides hidden states and prompts. */
export interface SpanExtras {
  /** Key mask [B, P + T] of a padded batch. */
  keyMask?: WireTensor | null;
  lora?: LoraPayload | null;
}

/** Per-block prompts the client sends with a span (deep prompts): block -> keys, values [B, H, P, D]. */
export type PromptSet = Map<number, { k: WireTensor; v: WireTensor }>;

export type SwarmEvent =
  | { type: 'route'; route: string; hops: Hop[] }
  | { type: 'failure'; peerId: string; kind: RequestKind; message: string }
  | { type: 'replay'; start: number; end: number; positions: number; route: string; hops: Hop[] };

export interface SwarmClientOptions {
  /** The client's own weights: wte, wpe, ln_f (and the tied head). */
  model: Gpt2Model;
  modelHash: string;
  peers: PeerSource;
  /** Opens a channel to a peer (a worker's port, a WebSocket, an in-process server). */
  connect: (peer: PeerInfo) => Promise<Channel>;
  mode?: RoutingMode;
  /** The token to say hello with: one for every peer, or each peer's own (undefined: none). */
  token?: string | ((peer: PeerInfo) => string | undefined);
  timeoutMs?: number;
  /** Peer failures one operation survives before giving up. */
  maxFailures?: number;
  onEvent?: (e: SwarmEvent) => void;
}

/** Errors that say a peer is bad (gone, slow, wrong), as opposed to our request being bad. */
function isPeerFault(e: unknown): boolean {
  if (e instanceof SwarmPeerError) return true;
  // Named errors about the request itself (too long, bad shape) would fail on every peer.
  if (e instanceof PeftLabError) return e.name === 'SwarmSessionError';
  // A rebuilt plain Error is a peer's internal failure.
  return e instanceof Error && !(e instanceof TypeError) && e.name === 'Error';
}

const sameShape = (a: number[], b: number[]): boolean =>
  a.length === b.length && a.every((d, i) => d === b[i]);

export class SwarmClient {
  readonly model: Gpt2Model;
  private readonly opts: SwarmClientOptions;
  private readonly conns = new Map<string, Promise<PeerConnection>>();
  private readonly rtt = new Map<string, number>();
  /** Peers this client will not use again (dead, slow, or sent a bad reply). */
  readonly avoided = new Set<string>();
  mode: RoutingMode;
  /** The chain the last operation started on. */
  lastRoute: Hop[] = [];

  constructor(opts: SwarmClientOptions) {
    this.opts = opts;
    this.model = opts.model;
    this.mode = opts.mode ?? 'min-latency';
  }

  get nLayer(): number {
    return this.model.config.nLayer;
  }

  /** A chain of live, unavoided peers covering blocks start..end-1 (also shown as `lastRoute`). */
  async chain(start = 0, end = this.nLayer): Promise<Hop[]> {
    const peers = await this.opts.peers.live(this.opts.modelHash);
    const hops = route(peers, {
      mode: this.mode,
      start,
      end,
      avoid: this.avoided,
      rttMs: (id) => this.rtt.get(id) ?? 0,
    });
    if (start === 0 && end === this.nLayer) {
      this.lastRoute = hops;
      this.opts.onEvent?.({ type: 'route', route: describeRoute(hops), hops });
    }
    return hops;
  }

  /** The connection to a peer, opened with hello (token, model hash and span checked). */
  private connection(peer: PeerInfo): Promise<PeerConnection> {
    let c = this.conns.get(peer.peerId);
    if (!c) {
      c = (async () => {
        const conn = new PeerConnection(await this.opts.connect(peer), peer.peerId, {
          timeoutMs: this.opts.timeoutMs,
        });
        const t0 = performance.now();
        const t = this.opts.token;
        const token = typeof t === 'function' ? t(peer) : t;
        const { fields } = await conn.request('hello', token === undefined ? {} : { token });
        this.rtt.set(peer.peerId, performance.now() - t0);
        if (fields.peer.modelHash !== this.opts.modelHash) {
          conn.close();
          throw new SwarmPeerError(
            `peer ${peer.peerId} serves another model (hash ${fields.peer.modelHash.slice(0, 12)})`,
            peer.peerId,
          );
        }
        return conn;
      })();
      this.conns.set(peer.peerId, c);
    }
    return c;
  }

  /**
   * One request to the peer of a hop. Any fault of the peer (gone, timed out, an error of its own,
   * a reply of the wrong shape) marks it avoided and is thrown as SwarmPeerError.
   */
  private async call<K extends 'forward' | 'backward' | 'step'>(
    hop: Hop,
    kind: K,
    fields: SwarmRequests[K],
    tensors: Tensors,
    check: (t: Tensors) => string | null,
  ): Promise<Tensors & { length?: number }> {
    const id = hop.peer.peerId;
    try {
      const conn = await this.connection(hop.peer);
      const r = await conn.request(kind, fields, tensors);
      const bad = check(r.tensors);
      if (bad) throw new SwarmPeerError(`peer ${id} sent a bad ${kind} reply: ${bad}`, id);
      const out = r.tensors as Tensors & { length?: number };
      if (kind === 'step') out.length = (r.fields as { length: number }).length;
      return out;
    } catch (e) {
      if (!isPeerFault(e)) throw e;
      // A lost session (expired, evicted) is not the peer's fault: it is replayed there, not avoided.
      if ((e as Error).name === 'SwarmSessionError') {
        this.opts.onEvent?.({ type: 'failure', peerId: id, kind, message: (e as Error).message });
      } else this.avoid(id, kind, e as Error);
      throw e instanceof SwarmPeerError
        ? e
        : new SwarmPeerError(`peer ${id} failed ${kind}: ${(e as Error).message}`, id);
    }
  }

  private avoid(peerId: string, kind: RequestKind, e: Error): void {
    if (!this.avoided.has(peerId)) this.opts.onEvent?.({ type: 'failure', peerId, kind, message: e.message });
    this.avoided.add(peerId);
    const c = this.conns.get(peerId);
    this.conns.delete(peerId);
    void c?.then((x) => x.close()).catch(() => undefined);
  }

  /** Counts a failure of one operation; throws once there were too many. */
  private failures(): (e: unknown) => void {
    let n = 0;
    const max = this.opts.maxFailures ?? 8;
    return (e) => {
      if (!(e instanceof SwarmPeerError)) throw e;
      if (++n > max) throw new SwarmRouteError(`gave up after ${n} peer failures; last: ${e.message}`);
    };
  }

  /**
   * Hidden states through every block. Returns the output and, per hop, its input (kept for the
   * backward). A peer failing mid-way is avoided and the rest routed again from that block.
   */
  async forwardChain(
    x: WireTensor,
    prompts: PromptSet | null = null,
    extras: SpanExtras = {},
  ): Promise<{ output: WireTensor; records: { hop: Hop; input: WireTensor }[] }> {
    const L = this.nLayer;
    const onFail = this.failures();
    const records: { hop: Hop; input: WireTensor }[] = [];
    let h = x;
    let b = 0;
    let planned: Hop[] = [];
    while (b < L) {
      try {
        if (planned[0]?.start !== b || this.avoided.has(planned[0].peer.peerId))
          planned = await this.chain(b, L);
        const hop = planned.shift()!;
        const out = await this.forwardHop(hop, h, prompts, extras);
        records.push({ hop, input: h });
        h = out;
        b = hop.end;
      } catch (e) {
        onFail(e);
        planned = [];
      }
    }
    return { output: h, records };
  }

  private async forwardHop(
    hop: Hop,
    h: WireTensor,
    prompts: PromptSet | null,
    extras: SpanExtras,
  ): Promise<WireTensor> {
    const r = await this.call(
      hop,
      'forward',
      spanFields(hop, extras.lora),
      spanTensors(hop, h, prompts, extras),
      (t) =>
        sameShape(t.get('hidden')!.shape, h.shape)
          ? null
          : `hidden is [${t.get('hidden')!.shape}], sent [${h.shape}]`,
    );
    return r.get('hidden')!;
  }

  /**
   * The backward of the whole chain from d loss / d output: each recorded span, last to first,
   * by its peer or (if it is gone) by a new route over the same blocks. Returns d loss / d input
   * d loss / d prompts and d loss / d LoRA weights (by `${module index}.${block}`).
   */
  async backwardChain(
    records: { hop: Hop; input: WireTensor }[],
    gradOut: WireTensor,
    prompts: PromptSet | null = null,
    extras: SpanExtras = {},
  ): Promise<{
    gradIn: WireTensor;
    dPrompts: PromptSet;
    dLora: Map<string, { a: WireTensor; b: WireTensor }>;
  }> {
    const d = { prompts: new Map() as PromptSet, lora: new Map<string, { a: WireTensor; b: WireTensor }>() };
    let g = gradOut;
    for (let i = records.length - 1; i >= 0; i--) {
      const r = records[i]!;
      g = await this.backwardSpan(r.hop, r.input, g, prompts, extras, d);
    }
    return { gradIn: g, dPrompts: d.prompts, dLora: d.lora };
  }

  private async backwardSpan(
    preferred: Hop,
    input: WireTensor,
    gradOut: WireTensor,
    prompts: PromptSet | null,
    extras: SpanExtras,
    d: { prompts: PromptSet; lora: Map<string, { a: WireTensor; b: WireTensor }> },
  ): Promise<WireTensor> {
    const onFail = this.failures();
    for (;;) {
      try {
        const hops = this.avoided.has(preferred.peer.peerId)
          ? await this.chain(preferred.start, preferred.end)
          : [preferred];
        // A span split over several peers needs its intermediate inputs again: a forward first.
        const inputs: WireTensor[] = [input];
        for (let k = 0; k < hops.length - 1; k++)
          inputs.push(await this.forwardHop(hops[k]!, inputs[k]!, prompts, extras));
        let g = gradOut;
        for (let k = hops.length - 1; k >= 0; k--) {
          const hop = hops[k]!;
          const sent = spanTensors(hop, inputs[k]!, prompts, extras);
          sent.set('gradOut', g);
          const r = await this.call(hop, 'backward', spanFields(hop, extras.lora), sent, (t) => {
            if (!sameShape(t.get('gradIn')!.shape, g.shape))
              return `gradIn is [${t.get('gradIn')!.shape}], expected [${g.shape}]`;
            for (let i = hop.start; i < hop.end && prompts; i++) {
              const dk = t.get(`dPastK.${i}`);
              const dv = t.get(`dPastV.${i}`);
              const p = prompts.get(i)!;
              if (!dk || !dv || !sameShape(dk.shape, p.k.shape) || !sameShape(dv.shape, p.v.shape))
                return `prompt gradients of block ${i} missing or misshapen`;
            }
            for (const [key, w] of loraInHop(hop, extras.lora)) {
              const da = t.get(`dLoraA${key}`);
              const db = t.get(`dLoraB${key}`);
              if (!da || !db || !sameShape(da.shape, w.a.shape) || !sameShape(db.shape, w.b.shape))
                return `LoRA gradients of ${key} missing or misshapen`;
            }
            return null;
          });
          for (const [key] of loraInHop(hop, extras.lora))
            d.lora.set(key, { a: r.get(`dLoraA${key}`)!, b: r.get(`dLoraB${key}`)! });
          g = r.get('gradIn')!;
          if (prompts)
            for (let i = hop.start; i < hop.end; i++)
              d.prompts.set(i, { k: r.get(`dPastK.${i}`)!, v: r.get(`dPastV.${i}`)! });
        }
        return g;
      } catch (e) {
        onFail(e);
      }
    }
  }

  /** A generation session over the chain; `prompts` go to each peer with its first step. */
  session(prompts: PromptSet | null = null, lora: LoraPayload | null = null): SwarmInferenceSession {
    return new SwarmInferenceSession(this, prompts, lora);
  }

  /** @internal for SwarmInferenceSession. */
  async stepHop(
    state: HopState,
    x: WireTensor,
    prompts: PromptSet | null,
    lora: LoraPayload | null,
  ): Promise<WireTensor> {
    const { hop } = state;
    const opening = state.length === 0;
    // Prompts and LoRA weights open the session; the peer keeps them for its later steps.
    const lo = opening && lora ? { ...lora, fields: { ...lora.fields, training: false } } : null;
    const sent = spanTensors(hop, x, opening ? prompts : null, { lora: lo });
    const r = await this.call(
      hop,
      'step',
      { session: state.session, position: state.length, ...spanFields(hop, lo) },
      sent,
      (t) =>
        sameShape(t.get('hidden')!.shape, x.shape)
          ? null
          : `hidden is [${t.get('hidden')!.shape}], sent [${x.shape}]`,
    );
    state.history.push(x);
    state.length = r.length!;
    return r.get('hidden')!;
  }

  /** @internal */
  emit(e: SwarmEvent): void {
    this.opts.onEvent?.(e);
  }

  /** @internal */
  failureCounter(): (e: unknown) => void {
    return this.failures();
  }

  /** Closes a session on a peer, if it is still there (best effort: it expires anyway). */
  async closeRemote(state: HopState): Promise<void> {
    if (this.avoided.has(state.hop.peer.peerId)) return;
    try {
      const conn = await this.connection(state.hop.peer);
      await conn.request('close', { session: state.session }, new Map(), 5_000);
    } catch {
      // A peer that is gone has dropped the session with itself.
    }
  }

  close(): void {
    for (const c of this.conns.values()) void c.then((x) => x.close()).catch(() => undefined);
    this.conns.clear();
  }
}

/** One hop of a generation session: its peer's session id, cache length and the inputs sent. */
export interface HopState {
  hop: Hop;
  session: string;
  length: number;
  history: WireTensor[];
}

const newState = (hop: Hop): HopState => ({ hop, session: crypto.randomUUID(), length: 0, history: [] });

export class SwarmInferenceSession {
  private hops: HopState[] = [];
  /** Replays done so far (for tests and the log). */
  replays = 0;

  constructor(
    private readonly client: SwarmClient,
    private readonly prompts: PromptSet | null,
    private readonly lora: LoraPayload | null = null,
  ) {}

  /** Positions in the peers' caches (prompts included). */
  get length(): number {
    return this.hops[0]?.length ?? 0;
  }

  get route(): Hop[] {
    return this.hops.map((s) => s.hop);
  }

  /** New positions x [B, T, C] through every block; returns their outputs. */
  async step(x: WireTensor): Promise<WireTensor> {
    const c = this.client;
    const L = c.nLayer;
    if (this.hops.length === 0) this.hops = (await c.chain(0, L)).map(newState);
    const onFail = c.failureCounter();
    let h = x;
    for (let i = 0; i < this.hops.length;) {
      const state = this.hops[i]!;
      try {
        h = await c.stepHop(state, h, this.prompts, this.lora);
        i++;
      } catch (e) {
        onFail(e);
        // Route around the dead hop for its blocks and replay everything it was sent, then this step.
        const replaced = await this.replace(state, h, onFail);
        this.hops.splice(i, 1, ...replaced.states);
        i += replaced.states.length;
        h = replaced.output;
      }
    }
    return h;
  }

  private async replace(
    dead: HopState,
    current: WireTensor,
    onFail: (e: unknown) => void,
  ): Promise<{ states: HopState[]; output: WireTensor }> {
    const c = this.client;
    const full = concatPositions([...dead.history, current]);
    const T = current.shape[1]!;
    for (;;) {
      try {
        const hops = await c.chain(dead.hop.start, dead.hop.end);
        const states = hops.map(newState);
        let y = full;
        for (const s of states) y = await c.stepHop(s, y, this.prompts, this.lora);
        this.replays++;
        c.emit({
          type: 'replay',
          start: dead.hop.start,
          end: dead.hop.end,
          positions: full.shape[1]!,
          route: describeRoute(hops),
          hops,
        });
        return { states, output: lastPositions(y, T) };
      } catch (e) {
        onFail(e);
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.hops.map((s) => this.client.closeRemote(s)));
    this.hops = [];
  }
}

// ---------------------------------------------------------------------------------------------
// Wire tensors

/** The LoRA pairs of the blocks a hop covers, by `${module index}.${block}`. */
function loraInHop(
  hop: Hop,
  lora: LoraPayload | null | undefined,
): [string, { a: WireTensor; b: WireTensor }][] {
  if (!lora) return [];
  return [...lora.weights].filter(([key]) => {
    const block = Number(key.split('.')[1]);
    return block >= hop.start && block < hop.end;
  });
}

/** A span request's fields: its blocks, and how to apply the LoRA weights if any go with it. */
function spanFields(
  hop: Hop,
  lora: LoraPayload | null | undefined,
): { start: number; end: number; lora?: LoraFields } {
  const span = { start: hop.start, end: hop.end };
  return loraInHop(hop, lora).length ? { ...span, lora: lora!.fields } : span;
}

function spanTensors(hop: Hop, hidden: WireTensor, prompts: PromptSet | null, extras: SpanExtras): Tensors {
  const t: Tensors = new Map([['hidden', hidden]]);
  if (prompts) {
    for (let i = hop.start; i < hop.end; i++) {
      const p = prompts.get(i);
      if (!p) throw new SettingsError(`no prompt for block ${i}: deep prompts need one for every block`);
      t.set(`pastK.${i}`, p.k);
      t.set(`pastV.${i}`, p.v);
    }
  }
  if (extras.keyMask) t.set('keyMask', extras.keyMask);
  for (const [key, w] of loraInHop(hop, extras.lora)) {
    t.set(`loraA${key}`, w.a);
    t.set(`loraB${key}`, w.b);
  }
  return t;
}

/** [B, T_i, C] pieces joined along positions. */
export function concatPositions(parts: WireTensor[]): WireTensor {
  if (parts.length === 1) return parts[0]!;
  const [B, , C] = parts[0]!.shape as [number, number, number];
  const T = parts.reduce((a, p) => a + p.shape[1]!, 0);
  const out = new Float32Array(B * T * C);
  for (let b = 0; b < B; b++) {
    let at = b * T * C;
    for (const p of parts) {
      const n = p.shape[1]! * C;
      out.set(p.data.subarray(b * n, (b + 1) * n), at);
      at += n;
    }
  }
  return { shape: [B, T, C], data: out };
}

/** The last T positions of [B, S, C]. */
export function lastPositions(x: WireTensor, T: number): WireTensor {
  const [B, S, C] = x.shape as [number, number, number];
  if (T === S) return x;
  const out = new Float32Array(B * T * C);
  for (let b = 0; b < B; b++) out.set(x.data.subarray((b * S + S - T) * C, (b + 1) * S * C), b * T * C);
  return { shape: [B, T, C], data: out };
}

async function toWire(t: tf.Tensor): Promise<WireTensor> {
  return { shape: [...t.shape], data: new Float32Array((await t.data()) as Float32Array) };
}

const fromWire = (w: WireTensor): tf.Tensor => tf.tensor(w.data, w.shape, 'float32');

async function promptSet(past: LayerKV[] | undefined): Promise<PromptSet | null> {
  if (!past?.length) return null;
  const out: PromptSet = new Map();
  for (let i = 0; i < past.length; i++)
    out.set(i, { k: await toWire(past[i]!.k), v: await toWire(past[i]!.v) });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Generation and training through the swarm

/**
 * `generate` (model/generate.ts) with the blocks on peers: the same decorator, positions, restart
 * on a full window and sampling, so greedy tokens equal a local run's.
 */
export async function generateThroughSwarm(
  client: SwarmClient,
  promptIds: number[],
  opts: GenerateOptions = {},
  adapter: Adapter | null = null,
): Promise<number[]> {
  const model = client.model;
  if (promptIds.length === 0) throw new InputError('the prompt is empty: give at least one token');
  // A LoRA adapter travels to the peers with each session's first step (checked here, up front).
  const lora = adapter?.kind === 'inject' || adapter?.kind === 'full' ? await clientLora(adapter, 0) : null;
  const maxNew = opts.maxNewTokens ?? 32;
  const rng = new Rng(opts.seed ?? 0);
  const decorate = adapterDecorator(model, adapter);
  const out: number[] = [];
  let context = [...promptIds];
  const limit = model.config.nPositions;
  const reserved = adapter?.kind === 'prompt' || adapter?.kind === 'prefix' ? adapter.numVirtualTokens : 0;
  const room = limit - reserved;
  let session: SwarmInferenceSession | null = null;
  try {
    for (let step = 0; step < maxNew; step++) {
      let feed: number[];
      const first = session === null || session.length + 1 > limit;
      if (first) {
        await session?.close();
        if (context.length > room) context = context.slice(context.length - Math.floor(room / 2));
        feed = context;
      } else feed = [context[context.length - 1]!];
      const offset = first ? 0 : session!.length;
      const { x, past } = tf.tidy(() => {
        const o = decorate({ ids: tf.tensor2d([feed], [1, feed.length], 'int32') }, first);
        // Positions start after the cache (or, on the first pass, after a prefix), as locally.
        const P = o.past?.[0]?.k.shape[2] ?? 0;
        const { x } = model.prelude({
          ...o,
          past: undefined,
          attentionMask: undefined,
          positionOffset: first ? P : offset,
        });
        return { x, past: o.past ?? [] };
      });
      const prompts = first ? await promptSet(past) : null;
      const xw = await toWire(x);
      tf.dispose([x, ...past.flatMap((p) => [p.k, p.v])]);
      if (first) session = client.session(prompts, lora?.payload ?? null);
      const y = await session!.step(xw);
      const logits = tf.tidy(() => {
        const T = y.shape[1]!;
        const h = model.finalNorm(fromWire(lastPositions(y, 1)) as tf.Tensor3D);
        void T;
        return lmLogits(model, h);
      });
      const row = (await logits.data()) as Float32Array;
      logits.dispose();
      const id = sampleToken(row, opts, rng);
      if (opts.eosTokenId != null && id === opts.eosTokenId) break;
      out.push(id);
      context.push(id);
      if (opts.onToken?.(id) === false) break;
    }
  } finally {
    await session?.close();
  }
  return out;
}

/** Adds `g` into `acc` under `name`. */
function accumulate(acc: Map<string, tf.Tensor>, name: string, g: tf.Tensor): void {
  const prev = acc.get(name);
  if (!prev) return void acc.set(name, g);
  acc.set(name, tf.add(prev, g));
  tf.dispose([prev, g]);
}

/**
 * The Trainer's gradient function through the swarm (as layerwise.ts, with the blocks remote):
 *   1. inputs on the client: embeddings, positions, the soft prompt or the per-block prompts;
 *   2. forward span by span (each span's input kept);
 *   3. the head and loss on a tape: d loss / d last hidden, and the client-held head's gradients;
 *   4. backward span by span: the peers return d loss / d input and d loss / d prompts;
 *   5. inputs again on a tape: sum(x0 * dx0) + sum(prompt * d prompt) gives the adapter's gradients.
 */
export function swarmGradientFn(client: SwarmClient, adapter: Adapter): GradientFn {
  checkSwarmAdapter(adapter);
  const model = client.model;
  return async (mb, vars, seed) => {
    // LoRA's weights as they are at this step, sent with every span (they change every step).
    const lora = adapter.kind === 'inject' ? await clientLora(adapter, seed) : null;
    const names = new Set(vars.map((v) => v.name));
    const acc = new Map<string, tf.Tensor>();
    const keep = (grads: tf.NamedTensorMap, skip?: string): void => {
      for (const [k, g] of Object.entries(grads)) {
        if (k !== skip && names.has(k)) accumulate(acc, k, g);
        else g.dispose();
      }
    };
    // 1. Inputs.
    // Kept out of the tidy by hand: a padded batch's key mask travels with every span.
    const kept: { mask?: tf.Tensor2D } = {};
    const first = tf.tidy(() => {
      const o = mb.parts.inputs(model, adapter, true, seed);
      const P = o.past?.[0]?.k.shape[2] ?? 0;
      const { x } = model.prelude({ ...o, past: undefined, attentionMask: undefined, positionOffset: P });
      if (o.attentionMask) kept.mask = tf.keep(o.attentionMask);
      return { x, past: o.past ?? [] };
    });
    const x0 = await toWire(first.x);
    const prompts = await promptSet(first.past);
    const mask = kept.mask;
    const keyMask = mask ? await toWire(mask) : null;
    tf.dispose([first.x, ...first.past.flatMap((p) => [p.k, p.v]), ...(mask ? [mask] : [])]);
    // 2. Forward.
    const extras: SpanExtras = { keyMask, lora: lora?.payload ?? null };
    const { output, records } = await client.forwardChain(x0, prompts, extras);
    // 3. Head and loss.
    const outT = fromWire(output);
    const probe = tf.variable(outT, true);
    outT.dispose();
    const { value: loss, grads } = tf.variableGrads(
      () => mb.parts.lossFromHidden(model, adapter, model.finalNorm(probe as unknown as tf.Tensor3D), true),
      [probe, ...vars],
    );
    const dy = await toWire(grads[probe.name]!);
    keep(grads, probe.name);
    probe.dispose();
    // 4. Backward.
    const { gradIn, dPrompts, dLora } = await client.backwardChain(records, dy, prompts, extras);
    // The peers' gradients of the client's LoRA weights, straight into the step's gradients.
    for (const [key, g] of dLora) {
      const v = lora!.vars.get(key)!;
      if (names.has(v.a.name)) accumulate(acc, v.a.name, fromWire(g.a));
      if (names.has(v.b.name)) accumulate(acc, v.b.name, fromWire(g.b));
    }
    if (adapter.kind === 'inject') return { value: loss, grads: Object.fromEntries(acc) };
    // 5. Into whatever made the inputs.
    const { value, grads: inGrads } = tf.variableGrads(() => {
      const o = mb.parts.inputs(model, adapter, true, seed);
      const P = o.past?.[0]?.k.shape[2] ?? 0;
      const { x } = model.prelude({ ...o, past: undefined, attentionMask: undefined, positionOffset: P });
      let s = tf.sum(tf.mul(x, fromWire(gradIn)));
      o.past?.forEach((kv, i) => {
        const d = dPrompts.get(i);
        if (d)
          s = tf.add(s, tf.add(tf.sum(tf.mul(kv.k, fromWire(d.k))), tf.sum(tf.mul(kv.v, fromWire(d.v)))));
      });
      return s as tf.Scalar;
    }, vars);
    value.dispose();
    keep(inGrads);
    return { value: loss, grads: Object.fromEntries(acc) };
  };
}

const LORA_KEY = /(?:^|\.)h\.(\d+)\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.lora_([AB])\.weight$/;

/** Methods that can train through the swarm: prompt and prefix kinds, and LoRA held by the client. */
export function checkSwarmAdapter(adapter: Adapter): void {
  if (adapter.kind === 'prompt' || adapter.kind === 'prefix') return;
  if (adapter.kind === 'inject' && adapter.config.peftType === 'LORA') {
    const c = adapter.config as unknown as { bias?: string };
    if (c.bias !== undefined && c.bias !== 'none') {
      throw new SettingsError(
        `LoRA with bias "${c.bias}" cannot run through the swarm (the peers' biases are frozen): use bias "none"`,
      );
    }
    if (adapter.merged)
      throw new SettingsError(
        'a merged LoRA adapter is in the base weights here, not on the peers: unmerge it first',
      );
    return;
  }
  throw new SettingsError(
    `${adapter.config.peftType} cannot run through the swarm yet: use prompt tuning, P-tuning, prefix tuning, P-tuning v2 or LoRA`,
  );
}

/**
 * A LoRA adapter's weights as they travel (our layout: A^T [in, r], B^T [r, out]) and its
 * variables by the same `${module index}.${block}` keys. Any other trainable tensor (a
 * classification head) stays with the client and gets its gradient there.
 */
async function clientLora(
  adapter: Adapter,
  seed: number,
): Promise<{ payload: LoraPayload; vars: Map<string, { a: tf.Variable; b: tf.Variable }> }> {
  checkSwarmAdapter(adapter);
  const cfg = adapter.config as unknown as LoraConfig;
  const vars = new Map<string, { a?: tf.Variable; b?: tf.Variable }>();
  for (const [name, v] of adapter.trainable()) {
    const m = LORA_KEY.exec(name);
    if (!m) continue;
    const key = `${LORA_MODULES.indexOf(m[2] as (typeof LORA_MODULES)[number])}.${m[1]}`;
    const e = vars.get(key) ?? {};
    if (m[3] === 'A') e.a = v;
    else e.b = v;
    vars.set(key, e);
  }
  const weights = new Map<string, { a: WireTensor; b: WireTensor }>();
  const out = new Map<string, { a: tf.Variable; b: tf.Variable }>();
  for (const [key, e] of vars) {
    if (!e.a || !e.b) throw new InternalError(`LoRA ${key} has only one of A and B`);
    weights.set(key, { a: await toWire(e.a), b: await toWire(e.b) });
    out.set(key, { a: e.a, b: e.b });
  }
  return {
    payload: {
      weights,
      fields: { scaling: loraScaling(cfg), dropout: cfg.loraDropout, seed: seed >>> 0, training: true },
    },
    vars: out,
  };
}
