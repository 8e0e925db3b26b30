/**
 * A block worker of the swarm: the page starts it and posts `{control}`, a port that the Swarm
 * screen's engine (swarm.worker.ts) then uses to send the span's weights and open connections
 * (src/lib/swarm/peer-host.ts). Killing the worker is a peer dying: the Web Lock engine.worker.ts
 * holds for it is released, and the engine hears of it.
 */
import { chooseBackend } from '../lib/backend/backend';
import { hostPeer } from '../lib/swarm/peer-host';

self.onmessage = (e: MessageEvent<{ control?: MessagePort }>) => {
  const control = e.data.control;
  if (!(control instanceof MessagePort)) return;
  hostPeer(control, async (init) => {
    // The engine's backend: one-thread wasm (see SwarmEngine.init).
    await chooseBackend('wasm', init.wasmBaseUrl);
  });
};
