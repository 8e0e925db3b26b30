/** `peft-lab swarm serve`: host blocks A..B-1 of a model for swarm clients, over a WebSocket. */
import { hostname } from 'node:os';
import { UsageError } from '../../lib/errors';
import { int, requiredStr, str } from '../args';
import type { Command } from '../command';
import { GLOBAL_HELP, print, startBackend } from '../command';
import { resolveModelArg } from '../hub';
import { readModelDir } from '../model-dir';
import type { WebSocketLike } from '../../lib/swarm/ws-transport';

/** "A:B" -> [A, B], as Petals' --block_indices. */
export function parseBlocks(s: string): [number, number] {
  const m = /^(\d+):(\d+)$/.exec(s);
  if (!m) throw new UsageError(`--blocks ${JSON.stringify(s)} is not A:B (blocks A to B-1, e.g. 0:6)`);
  const a = Number(m[1]);
  const b = Number(m[2]);
  if (b <= a) throw new UsageError(`--blocks ${s} is empty: B must be greater than A`);
  return [a, b];
}

export const swarm: Command = {
  name: 'swarm',
  subcommand: 'serve',
  summary: 'serve blocks of a model to swarm clients (swarm serve)',
  usage: `Usage: peft-lab swarm serve --model DIR --blocks A:B [options]

Hosts blocks A to B-1 of the model (frozen) for clients that run the rest: generation with a
per-session cache, and forward and backward for training through the swarm. Holds a directory
of peers unless --directory points at another one.

Options:
  --model DIR|REPO    model folder (config.json, model.safetensors), or a Hub repo id
  --blocks A:B        the blocks to serve (as Petals' --block_indices)
  --port P            port to listen on (default 0: any free port, printed)
  --host H            address to listen on (default 127.0.0.1: this machine only)
  --token T           require this token from every client
  --directory URL     announce to the directory of another \`swarm serve\` (ws://host:port)
  --peer-id ID        name in the directory (default host-port)
  --json              print one JSON line {"url", "peer"} once listening

${GLOBAL_HELP}`,
  options: {
    model: { type: 'string' },
    blocks: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    token: { type: 'string' },
    directory: { type: 'string' },
    'peer-id': { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(values, flags) {
    const dir = requiredStr(values, 'model', 'the model folder whose blocks to serve');
    const [start, end] = parseBlocks(requiredStr(values, 'blocks', 'the blocks to serve, A:B'));
    const port = int(values, 'port', 0, { min: 0, max: 65535 });
    const host = str(values, 'host') ?? '127.0.0.1';
    const token = str(values, 'token');
    if (token === '') throw new UsageError('--token is empty: give a token or leave the flag out');
    const dirUrl = str(values, 'directory');
    if (dirUrl !== undefined && !/^wss?:\/\/[^/\s]+\/?$/.test(dirUrl)) {
      throw new UsageError(`--directory ${JSON.stringify(dirUrl)} is not ws://host:port`);
    }
    const files = readModelDir(await resolveModelArg(dir));
    await startBackend(flags);
    const { loadModel } = await import('../load');
    const { BlockServer } = await import('../../lib/swarm/block-server');
    const { Directory } = await import('../../lib/swarm/directory');
    const { modelHash } = await import('../../lib/swarm/model-hash');
    const { serveWebSocket } = await import('../../lib/swarm/ws-server');
    const { requireGpt2 } = await import('../../lib/model/decoder');
    const model = requireGpt2(loadModel(files).model, 'The swarm');
    const L = model.config.nLayer;
    if (end > L) throw new UsageError(`--blocks ${start}:${end} runs past the model's ${L} blocks (0:${L})`);
    const hash = await modelHash(model);
    const directory = dirUrl === undefined ? new Directory() : undefined;
    const peerId = str(values, 'peer-id');
    const server = new BlockServer({
      model,
      start,
      end,
      modelHash: hash,
      peerId: peerId ?? 'pending',
      token,
      directory,
    });
    await server.measureThroughput();
    const served = await serveWebSocket(server, { port, host });
    if (peerId === undefined) {
      // The id is known once the port is: host-port is unique on a LAN.
      server.peerId = `${hostname()}-${served.port}`;
    }
    server.address = served.url;
    let stopHeartbeats: () => void;
    if (directory) {
      directory.announce(server.info());
      const timer = setInterval(
        () => directory.announce(server.info()),
        Math.min(5_000, directory.ttlMs / 3),
      );
      stopHeartbeats = () => clearInterval(timer);
    } else {
      const { WebSocket } = await import('ws');
      const { openWebSocket, keepAnnounced } = await import('../../lib/swarm/ws-transport');
      const { PeerConnection } = await import('../../lib/swarm/transport');
      const conn = new PeerConnection(
        await openWebSocket(dirUrl!, (u) => new WebSocket(u) as unknown as WebSocketLike),
        dirUrl!,
      );
      await conn.request('hello', token === undefined ? {} : { token });
      const stop = keepAnnounced(conn, server);
      stopHeartbeats = () => {
        stop();
        conn.close();
      };
    }
    const info = server.info();
    if (values.json) print(JSON.stringify({ url: served.url, peer: info }));
    else {
      print(
        `serving blocks ${start}:${end} of ${files.name} (model ${hash.slice(0, 12)}, ${info.throughput.toFixed(0)} tok/s) at ${served.url} as ${info.peerId}; directory ${directory ? 'here' : dirUrl}${token === undefined ? '' : '; token required'}`,
      );
      if (host !== '127.0.0.1' && host !== 'localhost' && host !== '::1' && token === undefined) {
        process.stderr.write(
          'warning: listening beyond this machine without --token: anyone on the network can use this peer\n',
        );
      }
    }
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    stopHeartbeats();
    await served.close();
    server.dispose();
    model.dispose();
  },
};
