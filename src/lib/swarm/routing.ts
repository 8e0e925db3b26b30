/**
 * Choosing a chain of peers that covers blocks start..end-1, by Petals' two modes
 * (routing/sequence_manager.py): lowest latency (a shortest path over block boundaries, each hop
 * costing the peer's round trip plus its compute for the blocks it takes) and highest throughput
 * (the chain whose slowest peer is fastest, load counted). A hop may take part of a peer's span, so
 * any peers whose spans overlap can be chained. The result is plain data, for the screen to show.
 */
import { SwarmRouteError } from '../errors';
import type { PeerInfo } from './protocol';

export type RoutingMode = 'min-latency' | 'max-throughput';

export interface Hop {
  peer: PeerInfo;
  start: number;
  end: number;
}

export interface RouteOptions {
  mode: RoutingMode;
  start: number;
  end: number;
  /** Peers not to use (failed, timed out, sent a bad reply). */
  avoid?: ReadonlySet<string>;
  /** Measured round trip to a peer in ms (0 when unknown). */
  rttMs?: (peerId: string) => number;
}

/** Milliseconds a peer takes per token per block, from its measured span throughput and load. */
function blockMs(p: PeerInfo): number {
  if (!(p.throughput > 0)) return 0;
  return (1000 * (1 + p.load)) / (p.throughput * (p.end - p.start));
}

/** A peer's effective throughput: shared among its load. */
const effective = (p: PeerInfo): number => p.throughput / (1 + p.load);

interface Best {
  cost: number;
  hops: number;
  prev: { at: number; hop: Hop } | null;
}

/** The better of two labels: lower cost, then fewer hops. */
const better = (a: { cost: number; hops: number }, b: Best | undefined): boolean =>
  !b || a.cost < b.cost - 1e-9 || (Math.abs(a.cost - b.cost) <= 1e-9 && a.hops < b.hops);

/**
 * Shortest path over boundaries start..end (a DAG: hops only move forward), among peers `ok`
 * admits. Peers are visited in id order, so equal routes resolve the same way every time.
 */
function shortest(peers: PeerInfo[], o: RouteOptions, ok: (p: PeerInfo) => boolean): Hop[] | null {
  const rtt = o.rttMs ?? (() => 0);
  const best = new Map<number, Best>([[o.start, { cost: 0, hops: 0, prev: null }]]);
  const sorted = [...peers].sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
  for (let i = o.start; i < o.end; i++) {
    const here = best.get(i);
    if (!here) continue;
    for (const p of sorted) {
      if (!ok(p) || p.start > i || p.end <= i) continue;
      const last = Math.min(p.end, o.end);
      for (let j = i + 1; j <= last; j++) {
        const label = { cost: here.cost + rtt(p.peerId) + blockMs(p) * (j - i), hops: here.hops + 1 };
        if (better(label, best.get(j)))
          best.set(j, { ...label, prev: { at: i, hop: { peer: p, start: i, end: j } } });
      }
    }
  }
  if (!best.has(o.end)) return null;
  const hops: Hop[] = [];
  for (let b = best.get(o.end)!; b.prev; b = best.get(b.prev.at)!) hops.unshift(b.prev.hop);
  return hops;
}

export function route(peers: PeerInfo[], o: RouteOptions): Hop[] {
  const usable = (p: PeerInfo): boolean => !o.avoid?.has(p.peerId);
  if (o.end <= o.start) return [];
  let hops: Hop[] | null;
  if (o.mode === 'min-latency') {
    hops = shortest(peers, o, usable);
  } else {
    // The best bottleneck first (largest effective throughput b such that peers of at least b still
    // cover the span), then the lowest-latency chain among those peers.
    const levels = [...new Set(peers.filter(usable).map(effective))].sort((a, b) => b - a);
    hops = null;
    for (const b of levels) {
      hops = shortest(peers, o, (p) => usable(p) && effective(p) >= b);
      if (hops) break;
    }
  }
  if (!hops) {
    const covering = peers.filter(usable).map((p) => `${p.peerId} ${p.start}:${p.end}`);
    throw new SwarmRouteError(
      `no chain of live peers covers blocks ${o.start}:${o.end} (live: ${covering.join(', ') || 'none'}); start a peer serving the missing blocks`,
    );
  }
  return hops;
}

/** The chain as one line for logs and the CLI: `peerA[0:3] -> peerB[3:6]`. */
export function describeRoute(hops: Hop[]): string {
  return hops.map((h) => `${h.peer.peerId}[${h.start}:${h.end}]`).join(' -> ');
}
