/**
 * How frames move between a client and a peer. A `Channel` carries whole frames both ways and
 * knows nothing of their content; `PeerConnection` pairs each request with its reply by id, with a
 * timeout, and validates the reply. Three channels: in-process (tests, and a peer in the same
 * thread), a MessagePort (worker_threads, Web Workers, BroadcastChannel-like ports) and a WebSocket
 * (ws-transport.ts). `emulate` wraps any channel in a link with latency, jitter, bandwidth and loss,
 * and every channel counts its bytes.
 */
import { rebuildError, SwarmPeerError } from '../errors';
import { Rng } from '../util/rng';
import type { FrameHandler } from './block-server';
import type {
  Message,
  ProtocolLimits,
  Reply,
  Request,
  RequestKind,
  SwarmReplies,
  SwarmRequests,
  Tensors,
} from './protocol';
import { decodeMessage, encodeMessage } from './protocol';

export interface LinkStats {
  bytesSent: number;
  bytesReceived: number;
  framesSent: number;
  framesReceived: number;
  /** Frames the emulated link dropped. */
  framesLost: number;
}

export interface Channel {
  send(frame: Uint8Array): void;
  /** Set by the connection: each frame that arrives. */
  onFrame: (frame: Uint8Array) => void;
  /** Set by the connection: the other side is gone (worker exited, socket closed). */
  onClose: (reason: string) => void;
  close(): void;
  readonly stats: LinkStats;
}

export const newStats = (): LinkStats => ({
  bytesSent: 0,
  bytesReceived: 0,
  framesSent: 0,
  framesReceived: 0,
  framesLost: 0,
});

/** Base for channels: counts bytes both ways and guards against use after close. */
export abstract class BaseChannel implements Channel {
  onFrame: (frame: Uint8Array) => void = () => {};
  onClose: (reason: string) => void = () => {};
  readonly stats = newStats();
  protected closed = false;

  send(frame: Uint8Array): void {
    if (this.closed) return;
    this.stats.bytesSent += frame.byteLength;
    this.stats.framesSent++;
    this.transmit(frame);
  }

  /** Called by subclasses for each frame that arrives. */
  protected deliver(frame: Uint8Array): void {
    if (this.closed) return;
    this.stats.bytesReceived += frame.byteLength;
    this.stats.framesReceived++;
    this.onFrame(frame);
  }

  /** Called by subclasses when the other side goes away. */
  protected lost(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(reason);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.shutdown();
  }

  protected abstract transmit(frame: Uint8Array): void;
  protected abstract shutdown(): void;
}

/**
 * A peer in the same thread: frames go through the handler asynchronously, copied, so neither
 * side can alias the other's buffers. `kill()` makes it vanish as a dead process would.
 */
export class LocalChannel extends BaseChannel {
  constructor(private readonly handler: FrameHandler) {
    super();
  }

  protected transmit(frame: Uint8Array): void {
    const copy = frame.slice();
    void this.handler(copy).then((reply) => {
      if (!this.closed) this.deliver(reply.slice());
    });
  }

  /** The peer dies: pending and later requests fail as with a crashed worker. */
  kill(): void {
    this.lost('the peer was killed');
  }

  protected shutdown(): void {}
}

/** What worker_threads' MessagePort and the DOM's MessagePort / Worker have in common, adapted. */
export interface PortLike {
  postMessage(data: unknown, transfer?: ArrayBuffer[]): void;
  /** Subscribes; returns an unsubscribe function. */
  listen(onData: (data: unknown) => void, onExit: (reason: string) => void): () => void;
  close(): void;
}

/** Frames over a port, transferring each frame's buffer (no copy of the tensors). */
export class PortChannel extends BaseChannel {
  private readonly unlisten: () => void;

  constructor(private readonly port: PortLike) {
    super();
    this.unlisten = port.listen(
      (data) => {
        if (data instanceof Uint8Array) this.deliver(data);
        else if (data instanceof ArrayBuffer) this.deliver(new Uint8Array(data));
      },
      (reason) => this.lost(reason),
    );
  }

  protected transmit(frame: Uint8Array): void {
    const buf =
      frame.byteOffset === 0 && frame.byteLength === frame.buffer.byteLength ? frame : frame.slice();
    this.port.postMessage(buf, [buf.buffer as ArrayBuffer]);
  }

  protected shutdown(): void {
    this.unlisten();
    this.port.close();
  }
}

/** Serves a BlockServer over a port: each frame in, its reply out (the worker side). */
export function servePort(port: PortLike, handler: FrameHandler): () => void {
  return port.listen(
    (data) => {
      const frame =
        data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : null;
      if (!frame) return;
      void handler(frame).then((reply) => port.postMessage(reply, [reply.buffer as ArrayBuffer]));
    },
    () => {},
  );
}

// ---------------------------------------------------------------------------------------------
// Network emulation

export interface LinkConditions {
  /** One-way delay in ms (a request and its reply take twice this). */
  latencyMs: number;
  /** Uniform extra delay in [0, jitterMs) per frame. */
  jitterMs: number;
  /** Bytes per second each way; 0 is unlimited. */
  bandwidthBytesPerS: number;
  /** Probability a frame is dropped (the request then times out). */
  loss: number;
}

export const PERFECT_LINK: LinkConditions = { latencyMs: 0, jitterMs: 0, bandwidthBytesPerS: 0, loss: 0 };

/**
 * A channel seen through an emulated link: each frame waits for the link to be free (bandwidth
 * serialises frames one after another, each way), then travels for latency plus jitter, or is lost.
 * The conditions can change while it runs (the screen's sliders); the seed makes jitter and loss
 * repeat in tests.
 */
export class EmulatedChannel implements Channel {
  onFrame: (frame: Uint8Array) => void = () => {};
  onClose: (reason: string) => void = () => {};
  private readonly rng: Rng;
  private busyUntil = { out: 0, in: 0 };
  private timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(
    private readonly inner: Channel,
    public conditions: LinkConditions,
    seed = 1,
  ) {
    this.rng = new Rng(seed);
    inner.onFrame = (f) => this.pass('in', f, (x) => this.onFrame(x));
    inner.onClose = (r) => this.onClose(r);
  }

  get stats(): LinkStats {
    return this.inner.stats;
  }

  send(frame: Uint8Array): void {
    this.pass('out', frame, (x) => this.inner.send(x));
  }

  private pass(dir: 'out' | 'in', frame: Uint8Array, go: (f: Uint8Array) => void): void {
    const c = this.conditions;
    if (c.loss > 0 && this.rng.next() < c.loss) {
      this.inner.stats.framesLost++;
      // An outgoing frame is counted as sent even when the link drops it: it used the wire.
      if (dir === 'out') {
        this.inner.stats.bytesSent += frame.byteLength;
        this.inner.stats.framesSent++;
      }
      return;
    }
    const now = performance.now();
    const txMs = c.bandwidthBytesPerS > 0 ? (frame.byteLength / c.bandwidthBytesPerS) * 1000 : 0;
    const startTx = Math.max(now, this.busyUntil[dir]);
    this.busyUntil[dir] = startTx + txMs;
    const delay = startTx + txMs - now + c.latencyMs + (c.jitterMs > 0 ? this.rng.next() * c.jitterMs : 0);
    if (delay <= 0) return go(frame);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      go(frame);
    }, delay);
    this.timers.add(timer);
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.inner.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Requests and replies

type ReplyFields<K extends RequestKind> = SwarmReplies[K];

/**
 * One client's connection to one peer: requests get ids, replies are matched to them, validated
 * (kind, shapes, finite values) and errors rebuilt as their named classes. A timeout, a closed
 * channel or a malformed reply is a SwarmPeerError naming the peer, so the client can avoid it.
 */
export class PeerConnection {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    {
      kind: RequestKind;
      resolve: (m: Message<Reply>) => void;
      reject: (e: Error) => void;
      timer: ReturnType<typeof setTimeout>;
    }
  >();
  private closedReason: string | null = null;

  constructor(
    readonly channel: Channel,
    readonly peerId: string,
    private readonly opts: { timeoutMs?: number; limits?: Partial<ProtocolLimits> } = {},
  ) {
    channel.onFrame = (frame) => this.receive(frame);
    channel.onClose = (reason) => this.fail(reason);
  }

  get alive(): boolean {
    return this.closedReason === null;
  }

  async request<K extends RequestKind>(
    kind: K,
    fields: SwarmRequests[K],
    tensors: Tensors = new Map(),
    timeoutMs = this.opts.timeoutMs ?? 30_000,
  ): Promise<{ fields: ReplyFields<K>; tensors: Tensors }> {
    if (this.closedReason !== null) {
      throw new SwarmPeerError(`peer ${this.peerId} is gone (${this.closedReason})`, this.peerId);
    }
    const id = this.nextId++;
    const frame = encodeMessage({ kind, id, ...fields } as Request, tensors);
    const reply = await new Promise<Message<Reply>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new SwarmPeerError(
            `peer ${this.peerId} did not answer ${kind} within ${timeoutMs} ms`,
            this.peerId,
          ),
        );
      }, timeoutMs);
      this.pending.set(id, { kind, resolve, reject, timer });
      this.channel.send(frame);
    });
    const h = reply.header;
    if (!h.ok) {
      const e = rebuildError(h.error);
      throw e;
    }
    const { kind: _k, id: _i, ok: _o, ...rest } = h as Reply & { ok: true };
    return { fields: rest as unknown as ReplyFields<K>, tensors: reply.tensors };
  }

  private receive(frame: Uint8Array): void {
    let msg: Message<Reply>;
    try {
      msg = decodeMessage(frame, 'reply', this.opts.limits);
    } catch (e) {
      // A peer that sends garbage is not trusted with anything still pending.
      this.fail(`sent a malformed reply: ${(e as Error).message}`);
      this.channel.close();
      return;
    }
    const p = this.pending.get(msg.header.id);
    // A late reply to a request that already timed out is dropped.
    if (!p) return;
    this.pending.delete(msg.header.id);
    clearTimeout(p.timer);
    if (msg.header.kind !== p.kind) {
      p.reject(
        new SwarmPeerError(`peer ${this.peerId} answered ${p.kind} with ${msg.header.kind}`, this.peerId),
      );
      return;
    }
    p.resolve(msg);
  }

  private fail(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new SwarmPeerError(`peer ${this.peerId} is gone (${reason})`, this.peerId));
      this.pending.delete(id);
    }
  }

  close(): void {
    this.fail('closed by the client');
    this.channel.close();
  }
}
