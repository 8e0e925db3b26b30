/**
 * The tab broker, a SharedWorker every tab of the app reaches (src/lib/swarm/tab-broker.ts says what
 * it does and why it is a SharedWorker). Its own small entry: it imports no TensorFlow.js.
 */
import { TabBroker } from '../lib/swarm/tab-broker';

// The DOM library types `self` as a Window; in this file it is a shared worker's scope.
const scope = self as unknown as SharedWorkerGlobalScope;
const broker = new TabBroker((lock) => navigator.locks.request(lock, () => undefined).then(() => undefined));

scope.onconnect = (e: MessageEvent) => {
  const port = e.ports[0];
  if (!port) return;
  port.onmessage = (m: MessageEvent) => broker.receive(port, m.data, m.ports);
  broker.join(port);
};

export {};
