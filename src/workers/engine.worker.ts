/**
 * The one worker script behind both engines: the Lab's (train.worker.ts) and the Compare screen's
 * (compare.worker.ts), chosen by the name the page gives the worker (src/app/engine-client.ts,
 * compare-client.ts). Each still runs in a worker of its own, with its own thread and model.
 *
 * Why one script: Vite bundles every `new Worker(new URL(...))` entry on its own, so two worker
 * entries each carried their own 2.5 MB copy of TensorFlow.js. One entry that loads its engine with
 * a dynamic import lets the bundler put tfjs and the rest of lib/ in chunks both engines share: the
 * browser downloads, caches and compiles them once.
 */
import { InternalError } from '../lib/errors';
import { WORKER_ALIVE } from '../lib/protocol/wire';

/** The names the page may give this worker, and the module that serves each. */
const ENGINES = {
  training: () => import('./train.worker'),
  compare: () => import('./compare.worker'),
  swarm: () => import('./swarm.worker'),
  peer: () => import('./peer.worker'),
} as const;

type EngineName = keyof typeof ENGINES;

// The DOM library types `self` as a Window; in this file it is the worker's scope.
const scope = self as unknown as DedicatedWorkerGlobalScope;
// "<engine>" or "<engine>#<lock>": the page names a Web Lock this worker holds while it lives, so
// the page learns of its death however it comes (src/app/worker-client.ts).
const [name = '', lock] = scope.name.split('#');
if (lock && 'locks' in navigator) {
  void navigator.locks.request(lock, () => {
    scope.postMessage({ event: WORKER_ALIVE, data: null });
    return new Promise<never>(() => {}); // held until the worker ends
  });
}
if (!(name in ENGINES)) {
  // A page bug, not a user's: the worker cannot answer anything, so it says so at once.
  throw new InternalError(
    `engine worker named "${name}"; expected one of ${Object.keys(ENGINES).join(', ')}`,
  );
}

// The page posts its first requests at once, but the engine's module arrives a moment later, and
// a message that reaches a worker before any listener is there is dropped. So messages wait here
// until the engine's module has installed its handler, then go to it in order.
const waiting: MessageEvent[] = [];
const hold = (e: MessageEvent): void => void waiting.push(e);
scope.addEventListener('message', hold);

ENGINES[name as EngineName]().then(
  () => {
    scope.removeEventListener('message', hold);
    for (const e of waiting.splice(0)) {
      scope.dispatchEvent(new MessageEvent('message', { data: e.data, ports: [...e.ports] }));
    }
  },
  (err: unknown) => {
    // A rejected promise stays inside the worker; an uncaught throw reaches the page's
    // worker.onerror, which fails the pending requests with "the ... worker crashed" (worker-client.ts).
    setTimeout(() => {
      throw err;
    });
  },
);

// A module (for the compiler too), so its names stay its own.
export {};
