/**
 * The DOM's MessagePort (Web Workers, and Node's global MessageChannel) as the transport's PortLike.
 * A DOM port says nothing when the worker at its other end is terminated, so whoever knows of the
 * death (a Web Lock the peer held, released when it ended) reports it through `died`.
 */
import type { PortLike } from './transport';

export interface DeathWatch {
  /** Adds a listener for the peer's death; returns a remover. Called at once if it is already dead. */
  on(listener: (reason: string) => void): () => void;
}

/** A watch that fires when `death` resolves (with its reason). */
export function deathWatch(death: Promise<string>): DeathWatch & { dead: string | null } {
  const listeners = new Set<(reason: string) => void>();
  const w = {
    dead: null as string | null,
    on(listener: (reason: string) => void): () => void {
      if (w.dead !== null) {
        const reason = w.dead;
        queueMicrotask(() => listener(reason));
        return () => {};
      }
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  void death.then((reason) => {
    w.dead = reason;
    for (const l of [...listeners]) l(reason);
    listeners.clear();
  });
  return w;
}

export function domPort(port: MessagePort, death?: DeathWatch): PortLike {
  return {
    postMessage: (d, transfer = []) => port.postMessage(d, transfer),
    listen(onData, onExit) {
      const data = (e: MessageEvent): void => onData(e.data);
      port.addEventListener('message', data);
      port.start();
      const off = death?.on(onExit);
      return () => {
        port.removeEventListener('message', data);
        off?.();
      };
    },
    close: () => port.close(),
  };
}
