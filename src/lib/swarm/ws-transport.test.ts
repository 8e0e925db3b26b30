/**
 * Peers behind real loopback WebSocket servers (port 0, started and stopped here): one of them
 * holds the directory, the others announce to it with heartbeats, the client lists and routes
 * through it, and a server shut down mid-generation is routed around with the same tokens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { initNodeBackend } from '../backend/node';
import type { Gpt2Model } from '../model/gpt2';
import { generate } from '../model/generate';
import { SwarmAuthError, SwarmPeerError } from '../errors';
import { BlockServer } from './block-server';
import type { SwarmEvent } from './client';
import { generateThroughSwarm, SwarmClient } from './client';
import { Directory } from './directory';
import { modelHash } from './model-hash';
import { swarmTestModel } from './testing';
import { PeerConnection } from './transport';
import type { WebSocketLike } from './ws-transport';
import { keepAnnounced, openWebSocket, RemoteDirectory } from './ws-transport';
import type { ServedPeer } from './ws-server';
import { serveWebSocket } from './ws-server';

const factory = (url: string): WebSocketLike => new WebSocket(url) as unknown as WebSocketLike;

let model: Gpt2Model;
let hash: string;
const served = new Map<string, ServedPeer>();
const stops: (() => void)[] = [];
let dirUrl = '';

beforeAll(async () => {
  await initNodeBackend('cpu');
  model = swarmTestModel();
  hash = await modelHash(model);
  const spans: [string, number, number][] = [
    ['hub', 0, 3],
    ['s-b', 3, 6],
    ['s-b2', 3, 6],
  ];
  for (const [peerId, start, end] of spans) {
    const directory = peerId === 'hub' ? new Directory({ ttlMs: 60_000 }) : undefined;
    const server = new BlockServer({ model, start, end, modelHash: hash, peerId, token: 'tok', directory });
    server.throughput = peerId === 's-b2' ? 1 : 1000;
    const s = await serveWebSocket(server, { port: 0 });
    server.address = s.url;
    served.set(peerId, s);
    if (directory) {
      dirUrl = s.url;
      directory.announce(server.info());
    } else {
      const conn = new PeerConnection(await openWebSocket(dirUrl, factory), 'hub');
      await conn.request('hello', { token: 'tok' });
      stops.push(keepAnnounced(conn, server, 200), () => conn.close());
    }
  }
});

afterAll(async () => {
  for (const s of stops) s();
  await Promise.all([...served.values()].map((s) => s.close()));
  model.dispose();
});

async function client(events: SwarmEvent[]): Promise<SwarmClient> {
  const conn = new PeerConnection(await openWebSocket(dirUrl, factory), 'hub');
  await conn.request('hello', { token: 'tok' });
  return new SwarmClient({
    model,
    modelHash: hash,
    token: 'tok',
    peers: new RemoteDirectory(conn),
    onEvent: (e) => events.push(e),
    connect: (p) => openWebSocket(p.address, factory),
  });
}

describe('swarm over WebSockets on loopback', () => {
  it('listens on localhost, announces through the directory, and generates as locally', async () => {
    expect(dirUrl).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    const events: SwarmEvent[] = [];
    const c = await client(events);
    // Wait until both announcements have arrived.
    for (let i = 0; i < 50 && (await c.chain().catch(() => [])).length === 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    const local = await generate(model, [1, 2, 3], { maxNewTokens: 6 });
    expect(await generateThroughSwarm(c, [1, 2, 3], { maxNewTokens: 6 })).toEqual(local);
    expect(events.find((e) => e.type === 'route')).toMatchObject({ route: 'hub[0:3] -> s-b[3:6]' });
    c.close();
  });

  it('a peer shut down mid-generation is routed around with the same tokens', async () => {
    const local = await generate(model, [8, 1, 8], { maxNewTokens: 10 });
    const events: SwarmEvent[] = [];
    const c = await client(events);
    let n = 0;
    let closing: Promise<void> | null = null;
    const got = await generateThroughSwarm(c, [8, 1, 8], {
      maxNewTokens: 10,
      onToken: () => {
        if (++n === 3) closing = served.get('s-b')!.close();
      },
    });
    await closing;
    expect(got).toEqual(local);
    expect(events.find((e) => e.type === 'replay')).toMatchObject({ start: 3, end: 6, route: 's-b2[3:6]' });
    c.close();
  });

  it('refuses requests without the token, and text frames', async () => {
    const ch = await openWebSocket(dirUrl, factory);
    const conn = new PeerConnection(ch, 'hub');
    await expect(conn.request('list', { modelHash: hash })).rejects.toBeInstanceOf(SwarmAuthError);
    conn.close();
    const raw = new WebSocket(dirUrl);
    await new Promise((r) => raw.once('open', r));
    const closed = new Promise<number>((r) => raw.once('close', (code) => r(code)));
    raw.send('{"kind":"hello"}');
    expect(await closed).toBe(1003);
    // A frame from another protocol is answered with a named error, not run.
    const conn2 = new PeerConnection(await openWebSocket(dirUrl, factory), 'hub');
    const reply = await new Promise<Uint8Array>((resolve) => {
      conn2.channel.onFrame = resolve;
      conn2.channel.send(new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n'));
    });
    expect(new TextDecoder().decode(reply)).toMatch(/SwarmProtocolError.*no PLSW magic/);
    conn2.close();
  });

  it('a refused connection is a SwarmPeerError naming the address', async () => {
    const s = await serveWebSocket(
      new BlockServer({ model, start: 0, end: 1, modelHash: hash, peerId: 'x' }),
      { port: 0 },
    );
    const url = s.url;
    await s.close();
    await expect(openWebSocket(url, factory)).rejects.toBeInstanceOf(SwarmPeerError);
  });
});
