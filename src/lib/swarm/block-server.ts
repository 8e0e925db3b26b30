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
import type { Gpt2Model, LayerKV, LinearHook } from '../model/gpt2';
import { linearShape } from '../model/config';
import { matmul } from '../model/ops';
import { adapterDropout } from '../peft/inject-base';
import { fnv1a } from '../util/hash';
import { attentionBias } from '../model/gpt2';
import {
  PeftLabError,
  rebuildError,
  serializeError,
  SwarmAuthError,
  SwarmProtocolError,
  SwarmSessionError,
} from '../errors';
import type {
  LoraFields,
  Message,
  PeerInfo,
  ProtocolLimits,
  Reply,
  Request,
  Tensors,
  WireTensor,
} from './protocol';
import { decodeMessage, encodeMessage, LORA_MODULES } from './protocol';

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

/** A client's LoRA weights for a span: `${block}:${module index}` -> A [in, r], B [r, out]. */
type LoraSet = Map<string, { a: tf.Tensor2D; b: tf.Tensor2D }>;
interface Lora {
  set: LoraSet;
  fields: LoraFields;
}

interface Session {
  start: number;
  end: number;
  /** The LoRA weights of its first step, kept for the session (generation does not change them). */
  lora: Lora | null;
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
    const loraTensors = [...t.keys()].filter((n) => n.startsWith('lora'));
    for (const n of loraTensors) {
      const [, ab, m] = /^lora([AB])(\d)\.\d+$/.exec(n)!;
      const [inDim, outDim] = linearShape(c, LORA_MODULES[Number(m)]!);
      const shape = t.get(n)!.shape;
      if ((ab === 'A' ? shape[0] : shape[1]) !== (ab === 'A' ? inDim : outDim)) {
        throw new SwarmProtocolError(
          `${h.kind}: ${n} is [${shape}], but ${LORA_MODULES[Number(m)]} of this model is [${inDim}, ${outDim}]`,
        );
      }
    }
    const lora = (): Lora | null => {
      if (!loraTensors.length) return null;
      const set: LoraSet = new Map();
      for (const n of loraTensors) {
        if (!n.startsWith('loraA')) continue;
        const rest = n.slice('loraA'.length); // `${m}.${i}`
        const [m, i] = rest.split('.');
        const a = t.get(n)!;
        const b = t.get(`loraB${rest}`)!;
        set.set(`${i}:${m}`, {
          a: tf.tensor2d(a.data, a.shape as [number, number]),
          b: tf.tensor2d(b.data, b.shape as [number, number]),
        });
      }
      return { set, fields: h.lora! };
    };
    const mask = t.get('keyMask');
    const keyMask = () =>
      mask ? (tf.tensor2d(mask.data, mask.shape as [number, number]) as tf.Tensor2D) : undefined;

    if (h.kind === 'forward') {
      const y = tf.tidy(() => this.run(x(), h.start, h.end, prompts(), keyMask(), lora()));
      return { fields: {}, tensors: new Map([['hidden', await read(y)]]) };
    }
    if (h.kind === 'backward') {
      const gradOut = t.get('gradOut')!;
      const out = tf.tidy(() => {
        const kv = prompts();
        const lo = lora();
        const loraKeys = [...(lo?.set.keys() ?? [])];
        const nkv = 2 * (kv?.length ?? 0);
        const args: tf.Tensor[] = [
          x(),
          ...(kv ?? []).flatMap((p) => [p.k, p.v]),
          ...loraKeys.flatMap((k) => [lo!.set.get(k)!.a, lo!.set.get(k)!.b]),
        ];
        const mk = keyMask();
        const f = (...a: tf.Tensor[]): tf.Tensor => {
          const past = kv
            ? kv.map((_, j) => ({ k: a[1 + 2 * j] as tf.Tensor4D, v: a[2 + 2 * j] as tf.Tensor4D }))
            : undefined;
          // The LoRA weights as f's own arguments, so tf.grads differentiates with respect to them.
          const la: Lora | null = lo && {
            fields: lo.fields,
            set: new Map(
              loraKeys.map((k, j) => [
                k,
                { a: a[1 + nkv + 2 * j] as tf.Tensor2D, b: a[2 + nkv + 2 * j] as tf.Tensor2D },
              ]),
            ),
          };
          return this.run(a[0] as tf.Tensor3D, h.start, h.end, past, mk, la);
        };
        // The vector-Jacobian product of the span at its inputs: dy is the client's d loss / d output.
        const grads = tf.grads(f)(args, tf.tensor3d(gradOut.data, [B, T, C]));
        return { grads, nPrompts: kv?.length ?? 0, loraKeys };
      });
      const tensors: Tensors = new Map([['gradIn', await read(out.grads[0]!)]]);
      for (let j = 0; j < out.nPrompts; j++) {
        tensors.set(`dPastK.${h.start + j}`, await read(out.grads[1 + 2 * j]!));
        tensors.set(`dPastV.${h.start + j}`, await read(out.grads[2 + 2 * j]!));
      }
      for (let j = 0; j < out.loraKeys.length; j++) {
        const [i, m] = out.loraKeys[j]!.split(':');
        const at = 1 + 2 * out.nPrompts + 2 * j;
        tensors.set(`dLoraA${m}.${i}`, await read(out.grads[at]!));
        tensors.set(`dLoraB${m}.${i}`, await read(out.grads[at + 1]!));
      }
      return { fields: {}, tensors };
    }
    return this.step(h, x, prompts, lora);
  }

  /** One generation step: the session's cache grows by the new positions (and prompts, at 0). */
  private async step(
    h: Request<'step'>,
    x: () => tf.Tensor3D,
    prompts: () => LayerKV[] | undefined,
    lora: () => Lora | null,
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
    const lo = s ? s.lora : lora();
    const { y, presents } = tf.tidy(() => {
      const out: LayerKV[] = [];
      const y = this.run(x(), h.start, h.end, past, undefined, lo, out);
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
      lora: lo,
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
    lora: Lora | null = null,
    presents?: LayerKV[],
  ): tf.Tensor3D {
    const [B, T] = x.shape;
    const P = past?.[0]?.k.shape[2] ?? 0;
    const mask = attentionBias(T, P, B, keyMask);
    // In training, the client's seed: LoRA dropout draws the client's mask in forward and backward.
    const training = (lora?.fields.training ?? false) && presents === undefined;
    // The padding mask rides in the context where there is no past, so the fused kernels take it.
    const ctx = {
      training,
      seed: lora?.fields.seed ?? 0,
      causal: !past && !keyMask,
      keyMask: past ? undefined : keyMask,
    };
    // The client's LoRA goes in as hooks for this call only; the compute is synchronous, so no
    // other request can see them, and whatever hooks the model had are put back.
    const saved = new Map<string, LinearHook | undefined>();
    if (lora) {
      for (const [key, w] of lora.set) {
        const [i, m] = key.split(':');
        const name = `h.${i}.${LORA_MODULES[Number(m)]!}`;
        saved.set(name, this.model.hooks.get(name));
        this.model.hooks.set(name, loraHook(w.a, w.b, lora.fields, fnv1a(name)));
      }
    }
    try {
      let y = x;
      for (let i = start; i < end; i++) {
        const out = this.model.block(i, y, mask, past?.[i - start], ctx);
        if (presents) presents.push({ k: out.present.k, v: out.present.v });
        y = out.x;
      }
      return y;
    } finally {
      for (const [name, hook] of saved) {
        if (hook) this.model.hooks.set(name, hook);
        else this.model.hooks.delete(name);
      }
    }
  }

  private dropSession(id: string): void {
    const s = this.sessions.get(id);
    if (!s) return;
    tf.dispose(s.past.flatMap((p) => [p.k, p.v]));
    if (s.lora) tf.dispose([...s.lora.set.values()].flatMap((w) => [w.a, w.b]));
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

/**
 * x W + b + (dropout(x) A * scaling) B: LoRA's forward (peft/lora.ts), with the adapter's own
 * dropout (the same seed and layer salt give the client's mask).
 */
function loraHook(a: tf.Tensor2D, b: tf.Tensor2D, f: LoraFields, salt: number): LinearHook {
  return {
    apply(x, base, ctx) {
      const xin = adapterDropout(x, ctx, f.dropout, salt);
      return tf.add(base, matmul(tf.mul(matmul(xin, a), f.scaling) as tf.Tensor2D, b)) as tf.Tensor2D;
    },
  };
}

const tensor4 = (w: WireTensor): tf.Tensor4D =>
  tf.tensor4d(w.data, w.shape as [number, number, number, number]);

async function read(t: tf.Tensor): Promise<WireTensor> {
  const data = (await t.data()) as Float32Array;
  const shape = [...t.shape];
  t.dispose();
  return { shape, data };
}
