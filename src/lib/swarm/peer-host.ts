/**
 * A block worker's side of the swarm, wherever its thread is (a Web Worker in the app, a plain
 * MessageChannel in tests): over its control port it receives its span's weights (data, never
 * code), builds the blocks, measures its throughput and answers `{ready}`; then each `{connect}`
 * brings a port for one client connection, served by the same BlockServer as every other peer.
 */
import * as tf from '@tensorflow/tfjs';
import { serializeError } from '../errors';
import { Gpt2Model } from '../model/gpt2';
import { newVariable } from '../model/ops';
import type { FromPeer, PeerInit, ToPeer } from '../protocol/swarm-protocol';
import { BlockServer } from './block-server';
import { domPort } from './dom-ports';
import { servePort } from './transport';

/** Serves `control` until the thread ends; `prepare` starts the backend before the weights are made. */
export function hostPeer(control: MessagePort, prepare: (init: PeerInit) => Promise<void>): void {
  let server: BlockServer | null = null;
  const reply = (m: FromPeer): void => control.postMessage(m);
  control.addEventListener('message', (e: MessageEvent<ToPeer>) => {
    const m = e.data;
    if ('init' in m) {
      void (async () => {
        try {
          const init = m.init;
          await prepare(init);
          const weights = new Map(
            init.weights.map(([name, shape, values]) => [name, newVariable(tf.tensor(values, shape), false)]),
          );
          server = new BlockServer({ ...init, model: new Gpt2Model(init.config, weights) });
          await server.measureThroughput();
          reply({ ready: server.info() });
        } catch (err) {
          reply({ failed: serializeError(err) });
        }
      })();
    } else if ('connect' in m && server) {
      servePort(domPort(m.connect), server.connect());
    }
  });
  control.start();
}
