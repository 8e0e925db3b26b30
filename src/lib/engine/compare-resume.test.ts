/**
 * A race whose worker dies (issue 17): its lanes' checkpoints stay in IndexedDB, a fresh engine
 * resumes the race from them, and every lane ends with the losses an uninterrupted race has.
 * The dead worker is an engine held paused for good after its checkpoint, as a worker that stopped
 * answering is; the fresh one shares only IndexedDB with it, as a new worker does.
 */
import 'fake-indexeddb/auto';
import { describe, it, expect, beforeAll } from 'vitest';
import { initNodeBackend } from '../backend/node';
import { CompareEngine } from './compare-engine';
import { LabEngine } from './lab-engine';
import type { CompareEvents, RaceRequest } from '../protocol/compare-protocol';
import { publicFetch } from './testing';

const REQUEST: RaceRequest = {
  task: 'spam',
  corpusUrl: 'data/spam/',
  settings: { steps: 6, batchSize: 2, seqLen: 16, seed: 3, evalEvery: 0 },
  lanes: [{ method: 'lora' }, { method: 'ia3' }],
  evalExamples: 8,
};

async function engine(
  onEvent: (kind: keyof CompareEvents, data: unknown) => void = () => {},
): Promise<CompareEngine> {
  const e = new CompareEngine(publicFetch, onEvent);
  await e.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
  return e;
}

describe('a race resumed from its lanes checkpoints', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('goes on from the checkpoints after the worker died, with the losses of an uninterrupted race', async () => {
    const whole = await (await engine()).race(REQUEST);
    const want = whole.lanes.map((l) => l.steps.map((p) => p.loss));

    const raceId = 'r-test';
    const checkpoint = { raceId, everyMs: 0 };
    let dead: CompareEngine | null = null;
    let written: CompareEvents['checkpoint'] | null = null;
    dead = await engine((kind, data) => {
      const c = data as CompareEvents['checkpoint'];
      // After the third round's checkpoint the worker stops answering for good.
      if (kind === 'checkpoint' && c.lanes.every((l) => l.step === 3)) {
        written = c;
        void dead!.pause();
      }
    });
    const hung = dead.race({ ...REQUEST, checkpoint });
    while (!written) await new Promise((r) => setTimeout(r, 20));

    const fresh = await engine();
    const found = await fresh.raceCheckpoint({ raceId });
    expect(found?.lanes.map((l) => [l.laneId, l.name, l.step])).toEqual([
      ['lane-1', 'LoRA', 3],
      ['lane-2', 'IA3', 3],
    ]);
    // The Lab does not offer a race's checkpoints as an interrupted run of its own.
    expect(await new LabEngine(publicFetch).checkpoints()).toEqual([]);

    const events: { kind: keyof CompareEvents; data: unknown }[] = [];
    const resumedEngine = new CompareEngine(publicFetch, (kind, data) => events.push({ kind, data }));
    await resumedEngine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const resumed = await resumedEngine.race({ ...REQUEST, checkpoint, resume: true });
    const read = events.find((e) => e.kind === 'checkpoint')?.data as CompareEvents['checkpoint'];
    expect(read.resumed).toBe(true);
    expect(read.lanes.map((l) => l.step)).toEqual([3, 3]);
    // Only steps 4-6 were trained again; 1-3 came back with the lanes' history.
    expect(events.filter((e) => e.kind === 'step')).toHaveLength(2 * 3);
    expect(resumed.lanes.map((l) => l.status)).toEqual(['done', 'done']);
    resumed.lanes.forEach((l, i) => {
      expect(l.steps.map((p) => p.step)).toEqual([1, 2, 3, 4, 5, 6]);
      l.steps.forEach((p, s) => expect(p.loss, `${l.name} step ${s + 1}`).toBeCloseTo(want[i]![s]!, 5));
    });
    // A finished race has nothing to resume: its checkpoints are gone.
    expect(await fresh.raceCheckpoint({ raceId })).toBe(null);
    await expect(fresh.race({ ...REQUEST, checkpoint, resume: true })).rejects.toThrow(
      /no checkpoints of race r-test/,
    );

    await dead.stop();
    await hung;
  }, 300_000);
});
