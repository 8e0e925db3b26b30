/**
 * Swarm peers as Node worker_threads (Node only; the browser's block workers use the same
 * BlockServer and PortChannel over a Web Worker). The parent hands a worker its span's weights and
 * the model hash; each client connection gets its own MessageChannel; killing the worker closes
 * every channel to it, as a crashed process would.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import { InternalError } from '../errors';
import type { Gpt2Model } from '../model/gpt2';
import type { PeerInfo } from './protocol';
import type { Channel, PortLike } from './transport';
import { PortChannel } from './transport';
import { nodePort } from './node-ports';
import type { WorkerPeerData } from './node-worker';

export interface WorkerPeer {
  info: PeerInfo;
  /** A new connection to the peer. */
  channel(): Channel;
  /** Terminates the worker: every open channel sees the peer die. */
  kill(): Promise<void>;
}

/** The weights of blocks start..end-1, copied out of the model. */
async function spanWeights(model: Gpt2Model, start: number, end: number): Promise<WorkerPeerData['weights']> {
  const out: WorkerPeerData['weights'] = [];
  for (const [name, v] of model.weights) {
    const m = /^h\.(\d+)\./.exec(name);
    if (!m || Number(m[1]) < start || Number(m[1]) >= end) continue;
    out.push([name, [...v.shape], new Float32Array((await v.data()) as Float32Array)]);
  }
  return out;
}

export async function spawnWorkerPeer(opts: {
  model: Gpt2Model;
  start: number;
  end: number;
  modelHash: string;
  peerId: string;
  token?: string;
  backend?: 'cpu' | 'wasm';
}): Promise<WorkerPeer> {
  const data: WorkerPeerData = {
    config: opts.model.config,
    weights: await spanWeights(opts.model, opts.start, opts.end),
    start: opts.start,
    end: opts.end,
    modelHash: opts.modelHash,
    peerId: opts.peerId,
    token: opts.token,
    backend: opts.backend ?? 'cpu',
  };
  // The worker runs our TypeScript directly, as the CLI's launcher does: it registers tsx, then
  // imports the entry (a worker's execArgv cannot carry --import).
  // The ESM build of tsx's API (its CommonJS build resolves its hooks wrongly from an eval'd worker).
  const tsx = pathToFileURL(
    createRequire(import.meta.url)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs'),
  ).href;
  const entry = new URL('./node-worker.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(entry)}); });`;
  const worker = new Worker(boot, { eval: true, workerData: data });
  let exited = false;
  const onExit = new Set<(reason: string) => void>();
  worker.on('exit', (code) => {
    exited = true;
    for (const f of onExit) f(`the worker exited with code ${code}`);
  });
  const info = await new Promise<PeerInfo>((resolve, reject) => {
    worker.once('message', (m: { ready?: PeerInfo }) =>
      m.ready ? resolve(m.ready) : reject(new InternalError('the worker peer sent no ready message')),
    );
    worker.once('error', reject);
    worker.once('exit', (code) =>
      reject(new Error(`the worker peer exited with code ${code} while starting`)),
    );
  });
  return {
    info,
    channel() {
      const { port1, port2 } = new MessageChannel();
      worker.postMessage({ connect: port2 }, [port2]);
      const inner = nodePort(port1);
      const port: PortLike = {
        ...inner,
        listen(onData, onLost) {
          const off = inner.listen(onData, onLost);
          if (exited) queueMicrotask(() => onLost('the worker has exited'));
          onExit.add(onLost);
          return () => {
            off();
            onExit.delete(onLost);
          };
        },
      };
      return new PortChannel(port);
    },
    async kill() {
      await worker.terminate();
    },
  };
}
