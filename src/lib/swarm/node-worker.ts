/**
 * A swarm peer in a Node worker_thread: it receives its span's weights (never code), builds the
 * blocks, measures its throughput, says it is ready, then answers frames on its port until the
 * parent terminates it. Started by spawnWorkerPeer (node-peers.ts); the parent's worker_threads
 * must be able to load TypeScript (tsx registered, as the CLI and the tests do).
 */
import { MessagePort, parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import type { Gpt2Config } from '../model/config';
import { Gpt2Model } from '../model/gpt2';
import { newVariable } from '../model/ops';
import { BlockServer } from './block-server';
import { nodePort } from './node-ports';
import { servePort } from './transport';

export interface WorkerPeerData {
  config: Gpt2Config;
  /** The span's weights only: name, shape, values. */
  weights: [string, number[], Float32Array][];
  start: number;
  end: number;
  modelHash: string;
  peerId: string;
  token?: string;
  backend: 'cpu' | 'wasm';
}

const data = workerData as WorkerPeerData;
const port = parentPort!;
await initNodeBackend(data.backend);
const weights = new Map(
  data.weights.map(([name, shape, values]) => [name, newVariable(tf.tensor(values, shape), false)]),
);
const model = new Gpt2Model(data.config, weights);
const server = new BlockServer({ ...data, model });
await server.measureThroughput();
// Each client connection comes as its own MessagePort, so replies never cross between clients and
// each connection shows its token on its own.
port.on('message', (m: unknown) => {
  const p = (m as { connect?: unknown } | null)?.connect;
  if (p instanceof MessagePort) servePort(nodePort(p), server.connect());
});
port.postMessage({ ready: server.info() });
