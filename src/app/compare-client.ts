/**
 * The Compare screen's handle on its worker: src/workers/engine.worker.ts, named 'compare' so it
 * serves compare.worker.ts.
 */
import type { CompareEvents, CompareRequests } from '../lib/protocol/compare-protocol';
import { WorkerClient } from './worker-client';

export class CompareClient extends WorkerClient<CompareRequests, CompareEvents> {
  constructor() {
    super(
      (name) => new Worker(new URL('../workers/engine.worker.ts', import.meta.url), { type: 'module', name }),
      'compare',
      'compare',
    );
  }
}
