/**
 * Frames over a WebSocket, the client's side: the browser's WebSocket or Node's `ws` (passed in,
 * so this file imports neither). Each frame is one binary message; text is refused. Also the
 * directory of a remote peer as a PeerSource, and the heartbeats a peer sends to one.
 */
import { SwarmPeerError } from '../errors';
import type { BlockServer } from './block-server';
import type { PeerSource } from './directory';
import type { PeerInfo } from './protocol';
import { BaseChannel, PeerConnection } from './transport';

/** What the DOM WebSocket and `ws`'s WebSocket share, as far as we use them. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type WebSocketFactory = (url: string) => WebSocketLike;

export class WebSocketChannel extends BaseChannel {
  constructor(private readonly ws: WebSocketLike) {
    super();
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (ev) => {
      const d = ev.data;
      if (d instanceof ArrayBuffer) this.deliver(new Uint8Array(d));
      else if (d instanceof Uint8Array) this.deliver(d);
      else this.lost('the peer sent a text message; swarm frames are binary');
    };
    ws.onclose = () => this.lost('the connection closed');
    ws.onerror = () => this.lost('the connection failed');
  }

  protected transmit(frame: Uint8Array): void {
    this.ws.send(frame);
  }

  protected shutdown(): void {
    this.ws.close();
  }
}

/** Opens a socket and waits for it; a refusal is a SwarmPeerError naming the address. */
export function openWebSocket(
  url: string,
  factory: WebSocketFactory,
  timeoutMs = 10_000,
): Promise<WebSocketChannel> {
  return new Promise((resolve, reject) => {
    const ws = factory(url);
    const timer = setTimeout(() => {
      ws.close();
      reject(new SwarmPeerError(`${url}: no connection within ${timeoutMs} ms`, url));
    }, timeoutMs);
    ws.onopen = () => {
      clearTimeout(timer);
      resolve(new WebSocketChannel(ws));
    };
    ws.onerror = () => {
      clearTimeout(timer);
      reject(new SwarmPeerError(`${url}: cannot connect (is \`peft-lab swarm serve\` running there?)`, url));
    };
  });
}

/** The directory a `swarm serve` process holds, asked over its connection. */
export class RemoteDirectory implements PeerSource {
  constructor(private readonly conn: PeerConnection) {}

  async live(modelHash: string): Promise<PeerInfo[]> {
    return (await this.conn.request('list', { modelHash })).fields.peers;
  }
}

/**
 * Announces a peer to a directory and keeps it there with heartbeats (its load and throughput);
 * a directory that forgot it (restarted) gets the announcement again. Returns a stop function.
 */
export function keepAnnounced(conn: PeerConnection, server: BlockServer, intervalMs = 5_000): () => void {
  let stopped = false;
  const announce = (): Promise<unknown> => conn.request('announce', { peer: server.info() });
  const beat = async (): Promise<void> => {
    const i = server.info();
    try {
      await conn.request('heartbeat', { peerId: i.peerId, load: i.load, throughput: i.throughput });
    } catch {
      if (!stopped && conn.alive) await announce().catch(() => undefined);
    }
  };
  void announce().catch(() => undefined);
  const timer = setInterval(() => void beat(), intervalMs);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
