/**
 * The app's Hub path (LabEngine.loadHubModel, as the worker runs it) keeps a model in IndexedDB
 * whole or not at all: after each download fault injected by a real local server, the database
 * holds no record and no chunk of the model that failed, and a model cached before is untouched.
 * (fake-indexeddb stands in for the browser's; the download faults themselves: io/hub-faults.test.ts.)
 */
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../backend/node';
import { LabEngine } from './lab-engine';
import { publicFetch } from './testing';
import { startFaultHub } from '../io/fault-hub';
import type { Fault, FaultHub } from '../io/fault-hub';
import { HubAccessError, HubConnectionError, HubResponseError } from '../errors';
import { getModel, listModels } from '../storage/models';
import { closeLabDb, connect, deleteLabDb } from '../storage/db';

const MODEL = join(process.cwd(), 'public/models/peftlab-s');
const files = {
  'config.json': readFileSync(join(MODEL, 'config.json')),
  'model.safetensors': readFileSync(join(MODEL, 'model.safetensors')),
  'tokenizer.json': readFileSync(join(MODEL, 'tokenizer.json')),
};

/** Every chunk record's owner in the database: a torn write would leave some here. */
async function chunkOwners(): Promise<string[]> {
  const db = await connect('peft-lab');
  const keys = await db.getAllKeys('chunks');
  return [...new Set(keys.map((k) => k[0]))].sort();
}

let fault: Fault | undefined;
let hub: FaultHub;

describe('a Hub model is cached whole or not at all', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
    await deleteLabDb();
    hub = await startFaultHub({ 'm/kept': files, 'm/peftlab-s': files }, (repo, file) =>
      repo === 'm/peftlab-s' && file === 'model.safetensors' ? fault : undefined,
    );
  });
  afterAll(async () => {
    await hub.close();
    await closeLabDb();
    await deleteLabDb();
  });

  it('keeps what was cached before through every fault, and caches nothing of the failed model', async () => {
    const engine = new LabEngine(publicFetch);
    const req = (repoId: string) => ({ repoId, endpoint: hub.endpoint, gpt2TokenizerUrl: 'unused' });
    expect((await engine.loadHubModel(req('m/kept'))).cached).toBe(false);
    const before = await getModel('hub: m/kept');
    expect(await chunkOwners()).toEqual(['model:hub: m/kept']);

    const faults: [Fault, new (m: string) => Error][] = [
      [{ kind: 'cut', keep: 400_000 }, HubConnectionError],
      [{ kind: 'cut-unannounced', keep: 400_000 }, HubResponseError],
      [{ kind: 'wrong-length', length: files['model.safetensors'].byteLength - 1000 }, HubResponseError],
      [{ kind: 'html' }, HubResponseError],
      [{ kind: 'status', status: 403, headers: { 'x-error-code': 'GatedRepo' } }, HubAccessError],
    ];
    for (const [f, cls] of faults) {
      fault = f;
      const e = await engine.loadHubModel(req('m/peftlab-s')).catch((x: unknown) => x);
      expect(e, f.kind).toBeInstanceOf(cls);
      expect((await listModels()).map((m) => m.id)).toEqual(['hub: m/kept']);
      expect(await chunkOwners()).toEqual(['model:hub: m/kept']);
    }
    // The app's message for a gated repo says how to get it in without a token.
    expect(
      ((await engine.loadHubModel(req('m/peftlab-s')).catch((x: unknown) => x)) as Error).message,
    ).toMatch(
      /accept its licence at .*, then download its files there with your account and open them as a folder/,
    );

    const after = await getModel('hub: m/kept');
    expect(after?.sizeBytes).toBe(before?.sizeBytes);
    for (const [name, bytes] of Object.entries(files)) {
      expect(Buffer.compare(Buffer.from(after!.files[name]!), bytes), name).toBe(0);
    }
    // Once the server behaves, the same repo downloads and is cached whole.
    fault = undefined;
    expect((await engine.loadHubModel(req('m/peftlab-s'))).cached).toBe(false);
    expect((await listModels()).map((m) => m.id).sort()).toEqual(['hub: m/kept', 'hub: m/peftlab-s']);
    expect((await engine.loadHubModel(req('m/peftlab-s'))).cached).toBe(true);
  });
});
