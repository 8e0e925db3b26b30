/**
 * The UI's handle on the training worker: the same LabApi as the in-process engine, over
 * postMessage (worker-client.ts matches replies by id and rebuilds errors as their named classes).
 */
import type { LabApi, LabEvents, LabRequests, RequestKind, RequestOf } from '../lib/protocol/lab-protocol';
import { WorkerClient } from './worker-client';

export class WorkerEngine extends WorkerClient<LabRequests, LabEvents> {
  constructor() {
    // One worker script hosts both engines (src/workers/engine.worker.ts): the name picks the Lab's.
    super(
      (name) => new Worker(new URL('../workers/engine.worker.ts', import.meta.url), { type: 'module', name }),
      'training',
      'training',
    );
  }

  /** The LabApi shape, for code written against either implementation. */
  api(): LabApi {
    const call =
      <K extends RequestKind>(k: K) =>
      (p: RequestOf<K>) =>
        this.request(k, p);
    return {
      init: call('init'),
      loadModel: call('loadModel'),
      loadModelFiles: call('loadModelFiles'),
      loadHubModel: call('loadHubModel'),
      train: call('train'),
      pause: call('pause'),
      resume: call('resume'),
      stop: call('stop'),
      generate: call('generate'),
      stopGenerate: call('stopGenerate'),
      classify: call('classify'),
      tag: call('tag'),
      exportAdapter: call('exportAdapter'),
      importAdapter: call('importAdapter'),
      combineAdapters: call('combineAdapters'),
      dropAdapter: call('dropAdapter'),
      useAdapter: call('useAdapter'),
      evaluate: call('evaluate'),
      fetchHubAdapter: call('fetchHubAdapter'),
      checkpoints: call('checkpoints'),
      deleteCheckpoint: call('deleteCheckpoint'),
    };
  }
}
