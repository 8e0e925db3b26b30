/**
 * For tests only: a server with the Hub's URL layout (`/{owner}/{name}/resolve/{rev}/{file}`) that
 * misbehaves on demand. It speaks HTTP/1.1 over a raw socket, so it can do what a well-behaved
 * HTTP library refuses to: announce a Content-Length and send fewer bytes, announce fewer than it
 * sends, stall after the headers, or vanish in the middle of a file. Each test starts and closes its own.
 */
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';

export type Fault =
  /** The file, whole (404 when there is none). */
  | { kind: 'ok' }
  /** This status, with these headers and a short text body. */
  | { kind: 'status'; status: number; headers?: Record<string, string> }
  /** 200 with a web page (text/html), as a login page or captive portal answers. */
  | { kind: 'html' }
  /** 200 with a web page but a type that says nothing (application/octet-stream). */
  | { kind: 'html-untyped' }
  /** The true Content-Length, then `keep` bytes, then the connection closes: a truncated body. */
  | { kind: 'cut'; keep: number }
  /** No Content-Length, `keep` bytes, then a clean close: a truncation HTTP cannot see. */
  | { kind: 'cut-unannounced'; keep: number }
  /** A Content-Length of `length`, which is not the file's length; the whole file is sent. */
  | { kind: 'wrong-length'; length: number }
  /** Never answers. */
  | { kind: 'stall-headers' }
  /** Headers and `keep` bytes, then nothing, with the connection left open. */
  | { kind: 'stall-body'; keep: number }
  /** `keep` bytes, then the whole server goes away (every connection dropped, no new ones). */
  | { kind: 'gone'; keep: number };

export interface FaultHub {
  endpoint: string;
  /** What was asked for, in order: the path, and the Authorization header (null when none came). */
  requests: { path: string; authorization: string | null }[];
  close(): Promise<void>;
}

const REASONS: Record<number, string> = {
  200: 'OK',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

function head(status: number, headers: Record<string, string | number>): Buffer {
  const lines = [`HTTP/1.1 ${status} ${REASONS[status] ?? 'Status'}`, 'connection: close'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`);
}

const PAGE = Buffer.from(
  '<!DOCTYPE html><html><head><title>Sign in</title></head><body>Sign in</body></html>',
);

/**
 * `repos` maps `owner/name` to its files; `fault(repo, file)` says how to answer each request
 * (undefined: normally).
 */
export async function startFaultHub(
  repos: Record<string, Record<string, Uint8Array>>,
  fault: (repo: string, file: string) => Fault | undefined = () => undefined,
): Promise<FaultHub> {
  const sockets = new Set<Socket>();
  const requests: FaultHub['requests'] = [];
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let got = '';
    socket.on('data', (d) => {
      if (got.includes('\r\n\r\n')) return;
      got += d.toString('latin1');
      if (!got.includes('\r\n\r\n')) return;
      const path = /^GET (\S+) HTTP/.exec(got)?.[1] ?? '';
      requests.push({ path, authorization: /\r\nauthorization: *([^\r]*)/i.exec(got)?.[1] ?? null });
      const m = /^\/([^/]+\/[^/]+)\/resolve\/[^/]+\/(.+)$/.exec(path);
      const repo = m?.[1] ?? '';
      const file = m?.[2] ?? '';
      const body = repos[repo]?.[file];
      const f = fault(repo, file) ?? { kind: 'ok' };
      const octets = { 'content-type': 'application/octet-stream' };
      switch (f.kind) {
        case 'ok':
          if (!body)
            socket.end(Buffer.concat([head(404, { 'content-length': 15 }), Buffer.from('Entry not found')]));
          else socket.end(Buffer.concat([head(200, { ...octets, 'content-length': body.byteLength }), body]));
          return;
        case 'status': {
          const text = Buffer.from(`HTTP ${f.status}`);
          socket.end(
            Buffer.concat([head(f.status, { ...f.headers, 'content-length': text.byteLength }), text]),
          );
          return;
        }
        case 'html':
        case 'html-untyped': {
          const type = f.kind === 'html' ? 'text/html; charset=utf-8' : 'application/octet-stream';
          socket.end(
            Buffer.concat([head(200, { 'content-type': type, 'content-length': PAGE.byteLength }), PAGE]),
          );
          return;
        }
        case 'stall-headers':
          return;
      }
      const all = body ?? new Uint8Array(0);
      switch (f.kind) {
        case 'cut':
          socket.end(
            Buffer.concat([
              head(200, { ...octets, 'content-length': all.byteLength }),
              all.subarray(0, f.keep),
            ]),
          );
          return;
        case 'cut-unannounced':
          socket.end(Buffer.concat([head(200, octets), all.subarray(0, f.keep)]));
          return;
        case 'wrong-length':
          socket.end(Buffer.concat([head(200, { ...octets, 'content-length': f.length }), all]));
          return;
        case 'stall-body':
          socket.write(
            Buffer.concat([
              head(200, { ...octets, 'content-length': all.byteLength }),
              all.subarray(0, f.keep),
            ]),
          );
          return;
        case 'gone':
          socket.write(
            Buffer.concat([
              head(200, { ...octets, 'content-length': all.byteLength }),
              all.subarray(0, f.keep),
            ]),
            () => void closeAll(),
          );
          return;
      }
    });
  });
  let closing: Promise<void> | null = null;
  const closeAll = (): Promise<void> =>
    (closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { endpoint: `http://127.0.0.1:${port}`, requests, close: closeAll };
}
