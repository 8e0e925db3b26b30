import { describe, expect, it } from 'vitest';
import { SwarmRouteError } from '../errors';
import { Directory } from './directory';
import type { PeerInfo } from './protocol';
import { describeRoute, route } from './routing';

const H = 'a'.repeat(64);
const peer = (peerId: string, start: number, end: number, throughput: number, load = 0): PeerInfo => ({
  peerId,
  modelHash: H,
  start,
  end,
  throughput,
  load,
  address: `local:${peerId}`,
});

describe('routing', () => {
  // One fast whole-model peer far away, and two nearby halves, one of them slow.
  const peers = [peer('far', 0, 8, 800), peer('near1', 0, 4, 400), peer('near2', 4, 8, 50)];
  const rtt = (id: string): number => (id === 'far' ? 100 : 5);

  it('min-latency takes the nearby chain, max-throughput the one whose slowest peer is fastest', () => {
    expect(describeRoute(route(peers, { mode: 'min-latency', start: 0, end: 8, rttMs: rtt }))).toBe(
      'near1[0:4] -> near2[4:8]',
    );
    expect(describeRoute(route(peers, { mode: 'max-throughput', start: 0, end: 8, rttMs: rtt }))).toBe(
      'far[0:8]',
    );
  });

  it('counts load against throughput, takes parts of spans, and avoids peers', () => {
    const busy = [peer('far', 0, 8, 800, 31), peer('near1', 0, 4, 400), peer('near2', 4, 8, 50)];
    expect(describeRoute(route(busy, { mode: 'max-throughput', start: 0, end: 8 }))).toBe(
      'near1[0:4] -> near2[4:8]',
    );
    expect(describeRoute(route(peers, { mode: 'min-latency', start: 2, end: 6, rttMs: rtt }))).toBe(
      'near1[2:4] -> near2[4:6]',
    );
    expect(
      describeRoute(
        route(peers, { mode: 'min-latency', start: 0, end: 8, rttMs: rtt, avoid: new Set(['near2']) }),
      ),
    ).toBe('far[0:8]');
    expect(() =>
      route(peers, { mode: 'min-latency', start: 0, end: 8, avoid: new Set(['far', 'near1']) }),
    ).toThrow(SwarmRouteError);
    expect(() => route([peer('x', 0, 3, 1)], { mode: 'max-throughput', start: 0, end: 8 })).toThrow(
      /no chain of live peers covers blocks 0:8 \(live: x 0:3\)/,
    );
  });
});

describe('directory', () => {
  it('keeps peers that send heartbeats and drops the silent ones', async () => {
    let now = 0;
    const d = new Directory({ ttlMs: 1000, now: () => now });
    d.announce(peer('a', 0, 4, 10));
    d.announce(peer('b', 4, 8, 10));
    d.announce({ ...peer('other', 0, 8, 10), modelHash: 'b'.repeat(64) });
    now = 900;
    expect(d.heartbeat('a', 2, 12)).toBe(true);
    now = 1500;
    const live = await d.live(H);
    expect(live.map((p) => p.peerId)).toEqual(['a']);
    expect(live[0]).toMatchObject({ load: 2, throughput: 12 });
    expect(d.heartbeat('b', 0, 0)).toBe(false);
    const r = d.handle({ kind: 'heartbeat', id: 4, peerId: 'b', load: 0, throughput: 1 });
    expect(r).toMatchObject({ ok: false, error: { name: 'SwarmPeerError' } });
  });
});
