/**
 * `--swarm URL[,URL...]` for generate and train: a SwarmClient whose peers are the given
 * `swarm serve` processes plus every peer their directories list. The client holds the model's
 * embeddings, final norm and head itself; the blocks run on the peers.
 */
import { WebSocket } from 'ws';
import { UsageError } from '../lib/errors';
import type { Gpt2Model } from '../lib/model/gpt2';
import type { SwarmClient, SwarmEvent } from '../lib/swarm/client';
import type { PeerInfo } from '../lib/swarm/protocol';
import type { RoutingMode } from '../lib/swarm/routing';
import type { WebSocketLike } from '../lib/swarm/ws-transport';
import { str } from './args';
import type { OptionSpec, Values } from './args';

export const SWARM_OPTIONS = {
  swarm: { type: 'string' },
  'swarm-token': { type: 'string' },
  'swarm-mode': { type: 'string' },
} as const satisfies OptionSpec;

export const SWARM_HELP = `  --swarm URL[,URL...]    run the model's blocks on these \`peft-lab swarm serve\` peers (ws://host:port),
                          and on every peer their directories list; the output is the same as local
  --swarm-token T         the token the peers were started with
  --swarm-mode M          min-latency (default) or max-throughput routing`;

export interface SwarmFlags {
  urls: string[];
  token: string | undefined;
  mode: RoutingMode;
}

/** The --swarm flags, checked; null when --swarm is not given. */
export function swarmFlags(values: Values): SwarmFlags | null {
  const list = str(values, 'swarm');
  if (list === undefined) {
    for (const f of ['swarm-token', 'swarm-mode'])
      if (values[f] !== undefined) throw new UsageError(`--${f} needs --swarm`);
    return null;
  }
  const urls = list
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  for (const u of urls) {
    if (!/^wss?:\/\/[^/\s]+\/?$/.test(u))
      throw new UsageError(`--swarm ${JSON.stringify(u)} is not a peer address; give ws://host:port`);
  }
  if (urls.length === 0) throw new UsageError('--swarm needs at least one ws://host:port');
  const mode = str(values, 'swarm-mode') ?? 'min-latency';
  if (mode !== 'min-latency' && mode !== 'max-throughput') {
    throw new UsageError(`--swarm-mode must be min-latency or max-throughput, got ${JSON.stringify(mode)}`);
  }
  return { urls, token: str(values, 'swarm-token'), mode };
}

const factory = (url: string): WebSocketLike => new WebSocket(url) as unknown as WebSocketLike;

/** Connects to the seed peers and builds the client (the backend must be started). */
export async function swarmClient(
  model: Gpt2Model,
  flags: SwarmFlags,
  log: (line: string) => void,
): Promise<SwarmClient> {
  const { SwarmClient } = await import('../lib/swarm/client');
  const { modelHash } = await import('../lib/swarm/model-hash');
  const { openWebSocket } = await import('../lib/swarm/ws-transport');
  const { PeerConnection } = await import('../lib/swarm/transport');
  const hash = await modelHash(model);
  const hello = flags.token === undefined ? {} : { token: flags.token };
  // Every connection opened is closed again if any seed fails, so a refused token ends the process.
  const opened: InstanceType<typeof PeerConnection>[] = [];
  let seeds: { conn: InstanceType<typeof PeerConnection>; info: PeerInfo }[];
  try {
    seeds = await Promise.all(
      flags.urls.map(async (url) => {
        const conn = new PeerConnection(await openWebSocket(url, factory), url);
        opened.push(conn);
        const { fields } = await conn.request('hello', hello);
        return { conn, info: { ...fields.peer, address: url } };
      }),
    );
  } catch (e) {
    for (const c of opened) c.close();
    throw e;
  }
  const peers = {
    async live(h: string): Promise<PeerInfo[]> {
      const found = new Map<string, PeerInfo>();
      for (const s of seeds) {
        if (s.info.modelHash === h) found.set(s.info.peerId, s.info);
        if (!s.conn.alive) continue;
        try {
          for (const p of (await s.conn.request('list', { modelHash: h })).fields.peers)
            if (!found.has(p.peerId)) found.set(p.peerId, p);
        } catch {
          // A peer without a directory only speaks for itself.
        }
      }
      return [...found.values()];
    },
  };
  const client = new SwarmClient({
    model,
    modelHash: hash,
    peers,
    token: flags.token,
    mode: flags.mode,
    connect: (p) => openWebSocket(p.address, factory),
    onEvent: (e: SwarmEvent) => {
      if (e.type === 'route') log(`swarm route: ${e.route}`);
      else if (e.type === 'failure')
        log(`swarm: peer ${e.peerId} failed ${e.kind} (${e.message}); routing around it`);
      else log(`swarm: replayed ${e.positions} positions of blocks ${e.start}:${e.end} on ${e.route}`);
    },
  });
  const close = client.close.bind(client);
  client.close = () => {
    close();
    for (const s of seeds) s.conn.close();
  };
  return client;
}
