/**
 * The directory (Petals' DHT role, kept in one place): peers announce the model they serve (its
 * hash), their span, measured throughput and load, and send heartbeats; a peer not heard from for
 * `ttlMs` drops out. A `swarm serve` process can hold one for the LAN (answering announce,
 * heartbeat and list over the wire); the browser holds its own for its workers and tabs.
 */
import type { Reply, Request } from './protocol';
import type { PeerInfo } from './protocol';
import type { DirectoryService } from './block-server';

/** What a client asks of a directory, wherever it is (in-process, or a peer's over the wire). */
export interface PeerSource {
  live(modelHash: string): Promise<PeerInfo[]>;
}

export class Directory implements DirectoryService, PeerSource {
  private readonly peers = new Map<string, { info: PeerInfo; lastSeen: number }>();
  private readonly now: () => number;
  readonly ttlMs: number;

  constructor(opts: { ttlMs?: number; now?: () => number } = {}) {
    this.ttlMs = opts.ttlMs ?? 15_000;
    this.now = opts.now ?? (() => Date.now());
  }

  announce(info: PeerInfo): void {
    this.peers.set(info.peerId, { info: { ...info }, lastSeen: this.now() });
  }

  /** Returns false for a peer the directory does not know (it must announce again). */
  heartbeat(peerId: string, load: number, throughput: number): boolean {
    const p = this.peers.get(peerId);
    if (!p) return false;
    p.info = { ...p.info, load, throughput };
    p.lastSeen = this.now();
    return true;
  }

  remove(peerId: string): void {
    this.peers.delete(peerId);
  }

  /** Peers heard from within ttlMs, for one model; the silent ones are forgotten. */
  liveNow(modelHash: string): PeerInfo[] {
    const now = this.now();
    for (const [id, p] of this.peers) if (now - p.lastSeen > this.ttlMs) this.peers.delete(id);
    return [...this.peers.values()].filter((p) => p.info.modelHash === modelHash).map((p) => ({ ...p.info }));
  }

  live(modelHash: string): Promise<PeerInfo[]> {
    return Promise.resolve(this.liveNow(modelHash));
  }

  handle(req: Request): Reply {
    const base = { kind: req.kind, id: req.id };
    switch (req.kind) {
      case 'announce':
        this.announce(req.peer);
        return { ...base, kind: 'announce', ok: true };
      case 'heartbeat':
        if (!this.heartbeat(req.peerId, req.load, req.throughput)) {
          return {
            ...base,
            ok: false,
            error: {
              name: 'SwarmPeerError',
              message: `peer ${req.peerId} is not in the directory: announce it again`,
            },
          };
        }
        return { ...base, kind: 'heartbeat', ok: true };
      case 'list':
        return { ...base, kind: 'list', ok: true, peers: this.liveNow(req.modelHash) };
      default:
        return {
          ...base,
          ok: false,
          error: { name: 'SwarmProtocolError', message: `${req.kind} is not a directory request` },
        };
    }
  }
}
