/**
 * A peer behind a WebSocket (Node only: `ws`). Every connection gets its own handler from the
 * BlockServer (so a token shown on one connection opens only that one); frames are binary, text is
 * refused, and a frame larger than the protocol's limit is refused by `ws` before it is buffered.
 * Listens on localhost unless told otherwise.
 */
import { WebSocketServer } from 'ws';
import type { AddressInfo } from 'node:net';
import type { BlockServer } from './block-server';
import { DEFAULT_LIMITS } from './protocol';

export interface ServedPeer {
  url: string;
  port: number;
  /** Open connections. */
  readonly connections: number;
  close(): Promise<void>;
}

export async function serveWebSocket(
  server: BlockServer,
  opts: { port: number; host?: string; maxMessageBytes?: number },
): Promise<ServedPeer> {
  const host = opts.host ?? '127.0.0.1';
  const wss = new WebSocketServer({
    port: opts.port,
    host,
    maxPayload: opts.maxMessageBytes ?? DEFAULT_LIMITS.maxMessageBytes,
  });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  wss.on('connection', (ws) => {
    const handle = server.connect();
    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        ws.close(1003, 'swarm frames are binary');
        return;
      }
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      void handle(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)).then((reply) => {
        if (ws.readyState === ws.OPEN) ws.send(reply);
      });
    });
  });
  const port = (wss.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `ws://${shownHost}:${port}`,
    port,
    get connections() {
      return wss.clients.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}
