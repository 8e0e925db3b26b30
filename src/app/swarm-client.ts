/**
 * The Swarm screen's handles on its threads: the engine's worker (src/workers/engine.worker.ts
 * named 'swarm') and the block workers (the same script named 'peer'). The page starts the block
 * workers itself so that it can kill one, as a machine of a swarm dies: each holds a Web Lock named
 * in its worker name, and the engine hears of its death when the lock is released.
 */
import { SwarmPeerError } from '../lib/errors';
import type { FromBroker, SwarmEvents, SwarmRequests, ToBroker } from '../lib/protocol/swarm-protocol';
import { WORKER_ALIVE } from '../lib/protocol/wire';
import { WorkerClient } from './worker-client';

const spawn = (name: string): Worker =>
  new Worker(new URL('../workers/engine.worker.ts', import.meta.url), { type: 'module', name });

export class SwarmWorker extends WorkerClient<SwarmRequests, SwarmEvents> {
  constructor() {
    super(spawn, 'swarm', 'swarm');
  }
}

export interface BlockWorker {
  worker: Worker;
  /** The Web Lock the worker holds while it lives. */
  lock: string;
}

/** Starts a block worker and waits until it holds its lock (so its death can be seen from then on). */
export function startBlockWorker(): Promise<BlockWorker> {
  if (!('locks' in navigator))
    return Promise.reject(
      new SwarmPeerError('this browser has no Web Locks, which the swarm needs to see a worker die'),
    );
  const lock = `peft-lab-peer:${crypto.randomUUID()}`;
  const worker = spawn(`peer#${lock}`);
  return new Promise((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<{ event?: string }>) => {
      if (e.data?.event !== WORKER_ALIVE) return;
      worker.onmessage = null;
      resolve({ worker, lock });
    };
    worker.onerror = (e) => {
      worker.terminate();
      reject(new SwarmPeerError(`the block worker failed to start: ${e.message}`));
    };
  });
}

/**
 * This tab's line to the tab broker (a SharedWorker of the app's origin): offers of blocks from other
 * tabs, and this tab's own offers. Null where the browser has no SharedWorker (Chrome on Android).
 */
export function connectTabBroker(
  onMessage: (m: FromBroker, ports: readonly MessagePort[]) => void,
): MessagePort | null {
  if (typeof SharedWorker === 'undefined') return null;
  const shared = new SharedWorker(new URL('../workers/swarm-broker.worker.ts', import.meta.url), {
    type: 'module',
    name: 'peft-lab-swarm-broker',
  });
  const port = shared.port;
  port.onmessage = (e: MessageEvent<FromBroker>) => onMessage(e.data, e.ports);
  return port;
}

export function postToBroker(port: MessagePort, m: ToBroker, transfer: Transferable[] = []): void {
  port.postMessage(m, transfer);
}
