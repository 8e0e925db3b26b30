/**
 * A peer's compute: it hosts blocks start..end-1 of a GPT-2 (frozen weights) and answers forward,
 * backward and generation steps over any sub-span of them, as a Petals server answers
 * rpc_forward, rpc_backward and rpc_inference. It knows no transport: `connect()` gives a function
 * from a request frame to a reply frame, so the same server runs in a worker_thread, a Web Worker,
 * or behind a WebSocket. Per connection it remembers only whether the token was shown.
 *
 * Backward computes activation gradients only (the weights are frozen): given the span's input
 * hidden states and d loss / d output it recomputes the span on a tape and returns d loss / d input,
 * and d loss / d prompts for the per-block prompts the client sent (deep prompts). Nothing about
 * the client's trainable parameters stays on the peer.
 */
import * as tf from '@tensorflow/tfjs';
import type { Gpt2Model, LayerKV } from '../model/gpt2';
import { attentionBias } from '../model/gpt2';
import {
  PeftLabError,
  rebuildError,
  serializeError,
  SwarmAuthError,
  SwarmProtocolError,
  SwarmSessionError,
} from '../errors';
import type { Message, PeerInfo, ProtocolLimits, Reply, Request, Tensors, WireTensor } from './protocol';
import { decodeMessage, encodeMessage } from './protocol';

/** What a peer does with directory messages (announce, heartbeat, list); see directory.ts. */
export interface DirectoryService {
  handle(req: Request): Reply;
}

export interface BlockServerOptions {
  /** Holds at least the weights of blocks start..end-1 (others may be absent). */
  model: Gpt2Model;
  start: number;
  end: number;
  modelHash: string;
  peerId: string;
  /** How clients reach this peer (told to the directory). */
  address?: string;
  /** When set, a connection must say hello with this token before anything else. */
  token?: string;
  limits?: Partial<ProtocolLimits>;
  /** Open sessions at most; the least recently used is dropped past it. */
  maxSessions?: number;
  /** A session unused this long is dropped (its client replays if it comes back). */
  sessionTtlMs?: number;
  /** A directory this peer also holds (`swarm serve` can). */
  directory?: DirectoryService;
  /** Clock for session expiry (tests move it). */
  now?: () => number;
}

interface Session {
  start: number;
  end: number;
  /** Keys and values of blocks start..end-1, prompts included. */
  past: LayerKV[];
  length: number;
  lastUsed: number;
}

/** A function from one request frame to its reply frame (never throws: errors are replies). */
export type FrameHandler = (frame: Uint8Array) => Promise<Uint8Array>;

export class BlockServer {
  readonly start: number;
  readonly end: number;
  private readonly model: Gpt2Model;
  private readonly sessions = new Map<string, Session>();
  private readonly opts: BlockServerOptions;
  private readonly now: () => number;
  private inFlight = 0;
  throughput = 0;
  /** How clients reach this peer; set once a transport knows it (a WebSocket's port). */
  address: string;
  /** Its name in the directory (settable until it is announced: `serve` names it by its port). */
  peerId: string;
  /** Requests answered, by kind (for the screen and tests). */
  readonly served = new Map<string, number>();

  constructor(opts: BlockServerOptions) {
    const L = opts.model.config.nLayer;
    if (
      !Number.isInteger(opts.start) ||
      !Number.isInteger(opts.end) ||
      opts.start < 0 ||
      opts.end > L ||
      opts.end <= opts.start
    ) {
      throw new SwarmProtocolError(
        `blocks ${opts.start}:${opts.end} are not a span of this ${L}-block model: give A:B with 0 <= A < B <= ${L}`,
      );
    }
    this.opts = opts;
    this.model = opts.model;
    this.start = opts.start;
    this.end = opts.end;
    this.now = opts.now ?? (() => Date.now());
    this.peerId = opts.peerId;
    this.address = opts.address ?? `local:${opts.peerId}`;
  }

  info(): PeerInfo {
    return {
      peerId: this.peerId,
      modelHash: this.opts.modelHash,
      start: this.start,
      end: this.end,
      throughput: this.throughput,
      load: this.sessions.size + this.inFlight,
      address: this.address,
    };
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Tokens per second through the whole span, from the forward of `tokens` positions (best of 3). */
  async measureThroughput(tokens = 16): Promise<number> {
    const C = this.model.config.nEmbd;
    const T = Math.min(tokens, this.model.config.nPositions);
    let best = Infinity;
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      const y = tf.tidy(() =>
        this.run(tf.zeros([1, T, C]) as tf.Tensor3D, this.start, this.end, undefined, undefined),
      );
      await y.data();
      y.dispose();
      best = Math.min(best, performance.now() - t0);
    }
    this.throughput = T / (Math.max(best, 1e-3) / 1000);
    return this.throughput;
  }

  /** A new connection's handler: its own "token shown" state, the server's blocks and sessions. */
  connect(): FrameHandler {
    let authed = this.opts.token === undefined;
    return async (frame) => {
      let id = 0;
      let kind: Request['kind'] = 'hello';
      try {
        const req = decodeMessage(frame, 'request', this.opts.limits);
        id = req.header.id;
        kind = req.header.kind;
        if (kind === 'hello') {
          const h = req.header as Request<'hello'>;
          if (this.opts.token !== undefined && h.token !== this.opts.token) {
            throw new SwarmAuthError(
              h.token === undefined
                ? 'this peer requires a token: pass the one its `swarm serve --token` was given'
                : 'wrong token for this peer',
            );
          }
          authed = true;
        } else if (!authed) {
          throw new SwarmAuthError('say hello with the token first: this peer requires one');
        }
        const out = await this.answer(req);
        this.served.set(kind, (this.served.get(kind) ?? 0) + 1);
        return encodeMessage({ kind, id, ok: true, ...out.fields } as Reply, out.tensors);
      } catch (e) {
        // Only our own named errors say why; anything else is reported without its internals.
        const err =
          e instanceof PeftLabError
            ? serializeError(e)
            : { name: 'Error', message: 'the peer failed to compute this request' };
        return encodeMessage({ kind, id, ok: false, error: err });
      }
    };
  }

  private async answer(req: Message<Request>): Promise<{ fields: object; tensors: Tensors }> {
    const h = req.header;
    const none: Tensors = new Map();
    this.expireSessions();
    switch (h.kind) {
      case 'hello':
        return { fields: { peer: this.info() }, tensors: none };
      case 'announce':
      case 'heartbeat':
      case 'list': {
        if (!this.opts.directory) throw new SwarmProtocolError(`${h.kind}: this peer holds no directory`);
        const r = this.opts.directory.handle(h);
        if (!r.ok) throw rebuildError(r.error);
        const { kind: _k, id: _i, ok: _o, ...fields } = r;
        return { fields, tensors: none };
      }
      case 'forward':
      case 'backward':
      case 'step': {
        this.inFlight++;
        try {
          return await this.compute(h, req.tensors);
        } finally {
          this.inFlight--;
        }
      }
      case 'close': {
        this.dropSession(h.session);
        return { fields: { ok: true }, tensors: none };
      }
    }
  }

  /** Checks the span and widths against the model, then runs forward, backward or a step. */
  private async compute(
    h: Request<'forward'> | Request<'backward'> | Request<'step'>,
    t: Tensors,
  ): Promise<{ fields: object; tensors: Tensors }> {
    const c = this.model.config;
    if (h.start < this.start || h.end > this.end) {
      throw new SwarmProtocolError(
        `${h.kind}: blocks ${h.start}:${h.end} are not all here; this peer serves ${this.start}:${this.end}`,
      );
    }
    const hidden = t.get('hidden')!;
    const [B, T, C] = hidden.shape as [number, number, number];
    if (C !== c.nEmbd)
      throw new SwarmProtocolError(`${h.kind}: hidden width ${C}, this model's is ${c.nEmbd}`);
    const pk = t.get(`pastK.${h.start}`);
    if (pk && (pk.shape[1] !== c.nHead || pk.shape[3] !== c.nEmbd / c.nHead)) {
      throw new SwarmProtocolError(
        `${h.kind}: prompts of ${pk.shape[1]} heads of ${pk.shape[3]}, this model has ${c.nHead} of ${c.nEmbd / c.nHead}`,
      );
    }
    const P = pk?.shape[2] ?? 0;
    const position = h.kind === 'step' ? h.position : 0;
    if (position + P + T > c.nPositions) {
      throw new SwarmProtocolError(
        `${h.kind}: ${position + P + T} positions exceed the model's n_positions ${c.nPositions}`,
      );
    }
    const x = () => tf.tensor3d(hidden.data, [B, T, C]);
    const prompts = (): LayerKV[] | undefined =>
      pk
        ? Array.from({ length: h.end - h.start }, (_, j) => ({
            k: tensor4(t.get(`pastK.${h.start + j}`)!),
            v: tensor4(t.get(`pastV.${h.start + j}`)!),
          }))
        : undefined;
    const mask = t.get('keyMask');
    const keyMask = () =>
      mask ? (tf.tensor2d(mask.data, mask.shape as [number, number]) as tf.Tensor2D) : undefined;

    if (h.kind === 'forward') {
      const y = tf.tidy(() => this.run(x(), h.start, h.end, prompts(), keyMask()));
      return { fields: {}, tensors: new Map([['hidden', await read(y)]]) };
    }
    if (h.kind === 'backward') {
      const gradOut = t.get('gradOut')!;
      const out = tf.tidy(() => {
        const kv = prompts();
        const args: tf.Tensor[] = [x(), ...(kv ?? []).flatMap((p) => [p.k, p.v])];
        const mk = keyMask();
        const f = (...a: tf.Tensor[]): tf.Tensor => {
          const past = kv
            ? kv.map((_, j) => ({ k: a[1 + 2 * j] as tf.Tensor4D, v: a[2 + 2 * j] as tf.Tensor4D }))
            : undefined;
          return this.run(a[0] as tf.Tensor3D, h.start, h.end, past, mk);
        };
        // The vector-Jacobian product of the span at its input: dy is the client's d loss / d output.
        return tf.grads(f)(args, tf.tensor3d(gradOut.data, [B, T, C]));
      });
      const tensors: Tensors = new Map([['gradIn', await read(out[0]!)]]);
      for (let j = 0; j < (out.length - 1) / 2; j++) {
        tensors.set(`dPastK.${h.start + j}`, await read(out[1 + 2 * j]!));
        tensors.set(`dPastV.${h.start + j}`, await read(out[2 + 2 * j]!));
      }
      return { fields: {}, tensors };
    }
    return this.step(h, x, prompts);
  }

  /** One generation step: the session's cache grows by the new positions (and prompts, at 0). */
  private async step(
    h: Request<'step'>,
    x: () => tf.Tensor3D,
    prompts: () => LayerKV[] | undefined,
  ): Promise<{ fields: object; tensors: Tensors }> {
    let s = this.sessions.get(h.session);
    if (h.position === 0) {
      // Opening (or reopening, for a replay on the same peer): any old cache goes.
      this.dropSession(h.session);
      s = undefined;
    } else if (!s) {
      throw new SwarmSessionError(
        `session ${h.session} is not open here (expired or closed): replay it from position 0`,
      );
    } else if (s.length !== h.position || s.start !== h.start || s.end !== h.end) {
      throw new SwarmSessionError(
        `session ${h.session} holds ${s.length} positions of blocks ${s.start}:${s.end}, the step says ${h.position} of ${h.start}:${h.end}: replay it from position 0`,
      );
    }
    const past = s?.past ?? prompts();
    const { y, presents } = tf.tidy(() => {
      const out: LayerKV[] = [];
      const y = this.run(x(), h.start, h.end, past, undefined, out);
      return { y, presents: out };
    });
    if (s) tf.dispose(s.past.flatMap((p) => [p.k, p.v]));
    else if (past) tf.dispose(past.flatMap((p) => [p.k, p.v]));
    const length = presents[0]!.k.shape[2];
    const maxSessions = this.opts.maxSessions ?? 64;
    if (!s && this.sessions.size >= maxSessions) {
      const oldest = [...this.sessions].sort((a, b) => a[1].lastUsed - b[1].lastUsed)[0]!;
      this.dropSession(oldest[0]);
    }
    this.sessions.set(h.session, {
      start: h.start,
      end: h.end,
      past: presents,
      length,
      lastUsed: this.now(),
    });
    return { fields: { length }, tensors: new Map([['hidden', await read(y)]]) };
  }

  /**
   * Blocks start..end-1 on x [B, T, C]: the mask from the shapes (causal over past + new keys, and
   * the key mask if any), exactly as Gpt2Model.forward builds it. `presents` collects the caches.
   */
  private run(
    x: tf.Tensor3D,
    start: number,
    end: number,
    past: LayerKV[] | undefined,
    keyMask: tf.Tensor2D | undefined,
    presents?: LayerKV[],
  ): tf.Tensor3D {
    const [B, T] = x.shape;
    const P = past?.[0]?.k.shape[2] ?? 0;
    const mask = attentionBias(T, P, B, keyMask);
    const ctx = { training: false, seed: 0, causal: !past && !keyMask };
    let y = x;
    for (let i = start; i < end; i++) {
      const out = this.model.block(i, y, mask, past?.[i - start], ctx);
      if (presents) presents.push({ k: out.present.k, v: out.present.v });
      y = out.x;
    }
    return y;
  }

  private dropSession(id: string): void {
    const s = this.sessions.get(id);
    if (!s) return;
    tf.dispose(s.past.flatMap((p) => [p.k, p.v]));
    this.sessions.delete(id);
  }

  private expireSessions(): void {
    const ttl = this.opts.sessionTtlMs ?? 5 * 60_000;
    const now = this.now();
    for (const [id, s] of this.sessions) if (now - s.lastUsed > ttl) this.dropSession(id);
  }

  /** Frees every session (the model belongs to whoever made the server). */
  dispose(): void {
    for (const id of [...this.sessions.keys()]) this.dropSession(id);
  }
}

const tensor4 = (w: WireTensor): tf.Tensor4D =>
  tf.tensor4d(w.data, w.shape as [number, number, number, number]);

async function read(t: tf.Tensor): Promise<WireTensor> {
  const data = (await t.data()) as Float32Array;
  const shape = [...t.shape];
  t.dispose();
  return { shape, data };
}
