/** worker_threads' ports and Worker objects as the transport's PortLike (Node only). */
import type { MessagePort, Worker } from 'node:worker_threads';
import type { PortLike } from './transport';

/** A worker's parentPort (or any MessagePort). */
export function nodePort(port: MessagePort): PortLike {
  return {
    postMessage: (d, transfer) => port.postMessage(d, transfer),
    listen(onData, onExit) {
      const data = (d: unknown): void => onData(d);
      const exit = (): void => onExit('the port closed');
      port.on('message', data);
      port.on('close', exit);
      return () => {
        port.off('message', data);
        port.off('close', exit);
      };
    },
    close: () => port.close(),
  };
}

/** The parent's side of a worker: frames to it, and its exit seen as the peer dying. */
export function workerPort(worker: Worker): PortLike {
  return {
    postMessage: (d, transfer) => worker.postMessage(d, transfer),
    listen(onData, onExit) {
      const data = (d: unknown): void => onData(d);
      const exit = (code: number): void => onExit(`the worker exited with code ${code}`);
      const error = (e: Error): void => onExit(`the worker failed: ${e.message}`);
      worker.on('message', data);
      worker.on('exit', exit);
      worker.on('error', error);
      return () => {
        worker.off('message', data);
        worker.off('exit', exit);
        worker.off('error', error);
      };
    },
    close: () => {},
  };
}
