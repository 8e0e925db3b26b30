import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it } from 'vitest';
import { BackendError, StorageError } from '../errors';
import { deleteLabDb } from '../storage/db';
import {
  loadBackendMeasurement,
  parseBackendMeasurement,
  saveBackendMeasurement,
} from '../storage/backend-measurement';
import { setSetting } from '../storage/settings';
import { chooseByMeasurement, describeMeasurement, sameFingerprint } from './choose';
import type { CandidateId, ChooseDeps, Fingerprint, Timing } from './choose';

const DB = 'choose-test';
const FP: Fingerprint = {
  app: '0.1.0 2026-01-01',
  userAgent: 'Chromium/156',
  adapter: 'google swiftshader (software fallback)',
  crossOriginIsolated: true,
};

/** Made-up timings, starts and the real kept-measurement store on fake-indexeddb; records calls. */
function harness(
  ms: Partial<Record<CandidateId, number | null>>,
  opts: { fingerprint?: Fingerprint; wontStart?: CandidateId[] } = {},
) {
  const measured: CandidateId[] = [];
  const started: CandidateId[] = [];
  const candidates = (Object.keys(ms) as CandidateId[]).filter((c) => c in ms);
  const deps: ChooseDeps = {
    fingerprint: opts.fingerprint ?? FP,
    candidates,
    probe: 'one step',
    now: () => Date.UTC(2026, 0, 2),
    async measure(id): Promise<Timing> {
      measured.push(id);
      const v = ms[id] ?? null;
      return v === null
        ? { id, label: id, msPerStep: null, note: 'over the 2000 ms cap' }
        : { id, label: id, msPerStep: v };
    },
    async start(id) {
      started.push(id);
      return !(opts.wontStart ?? []).includes(id);
    },
    load: () => loadBackendMeasurement(DB),
    save: (m) => saveBackendMeasurement(m, DB),
  };
  return { deps, measured, started };
}

afterEach(async () => {
  await deleteLabDb(DB);
});

describe('chooseByMeasurement', () => {
  it('times every candidate, runs the fastest, keeps the result and says why with the figures', async () => {
    const h = harness({ webgpu: null, 'wasm-threads': 9.5, wasm: 12, webgl: 95 });
    const { measurement, reused } = await chooseByMeasurement(h.deps);
    expect(reused).toBe(false);
    expect(h.measured).toEqual(['webgpu', 'wasm-threads', 'wasm', 'webgl']);
    expect(measurement.winner).toBe('wasm-threads');
    expect(h.started.at(-1)).toBe('wasm-threads');
    expect(describeMeasurement(measurement, false)).toBe(
      'measured one step: webgpu over the 2000 ms cap; wasm-threads 9.50 ms/step; wasm 12.0 ms/step; webgl 95.0 ms/step -> wasm-threads',
    );
    expect((await loadBackendMeasurement(DB))?.winner).toBe('wasm-threads');
  });

  it('a second start reuses the kept result without measuring again', async () => {
    await chooseByMeasurement(harness({ wasm: 12, webgl: 5 }).deps);
    const second = harness({ wasm: 1, webgl: 500 });
    const { measurement, reused } = await chooseByMeasurement(second.deps);
    expect(reused).toBe(true);
    expect(second.measured).toEqual([]);
    expect(second.started).toEqual(['webgl']);
    expect(measurement.winner).toBe('webgl');
    expect(describeMeasurement(measurement, true)).toMatch(/-> webgl \(kept from 2026-01-02\)$/);
  });

  it.each<[string, Partial<Fingerprint>]>([
    ['a new app build', { app: '0.2.0' }],
    ['another browser', { userAgent: 'Chromium/157' }],
    ['another WebGPU adapter', { adapter: 'nvidia ada' }],
    ['cross-origin isolation turned off', { crossOriginIsolated: false }],
  ])('measures again after %s', async (_what, change) => {
    await chooseByMeasurement(harness({ wasm: 12, webgl: 5 }).deps);
    const again = harness({ wasm: 3, webgl: 5 }, { fingerprint: { ...FP, ...change } });
    const { measurement, reused } = await chooseByMeasurement(again.deps);
    expect(reused).toBe(false);
    expect(again.measured).toEqual(['wasm', 'webgl']);
    expect(measurement.winner).toBe('wasm');
    expect((await loadBackendMeasurement(DB))?.fingerprint).toEqual({ ...FP, ...change });
  });

  it('measures again when the kept winner no longer starts', async () => {
    await chooseByMeasurement(harness({ wasm: 12, webgl: 5 }).deps);
    const again = harness({ wasm: 12, webgl: 5 }, { wontStart: ['webgl'] });
    const { measurement, reused } = await chooseByMeasurement(again.deps);
    expect(reused).toBe(false);
    expect(again.measured).toEqual(['wasm', 'webgl']);
    // The fastest would not start, so the next fastest runs and is what is kept.
    expect(measurement.winner).toBe('wasm');
  });

  it('fails with a BackendError naming each candidate when none can run a step', async () => {
    const err = await chooseByMeasurement(harness({ webgpu: null, cpu: null }).deps).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as Error).message).toMatch(/webgpu: over the 2000 ms cap; cpu: over the 2000 ms cap/);
    expect(await loadBackendMeasurement(DB)).toBeUndefined();
  });

  it('measures again when the kept record is malformed, and says which field (fuzz findings)', async () => {
    // Before: the record was cast; a missing fingerprint threw TypeError inside the choice.
    await setSetting('backend-measurement', { winner: 'wasm' }, DB);
    const h = harness({ wasm: 12 });
    const { reused } = await chooseByMeasurement(h.deps);
    expect(reused).toBe(false);
    expect(h.measured).toEqual(['wasm']);
    const kept = (await loadBackendMeasurement(DB))!;
    expect(parseBackendMeasurement(kept)).toEqual(kept);
    expect(() => parseBackendMeasurement({ ...kept, fingerprint: undefined })).toThrow(StorageError);
    expect(() => parseBackendMeasurement({ ...kept, winner: 'tpu' })).toThrow(/winner "tpu"/);
    expect(() =>
      parseBackendMeasurement({ ...kept, timings: [{ id: 'wasm', label: 'wasm', msPerStep: -1 }] }),
    ).toThrow(/a step time -1/);
    // Before: a time past Date's range threw RangeError from toISOString in the reason line.
    expect(() => parseBackendMeasurement({ ...kept, measuredAt: 1e308 })).toThrow(/measuredAt 1e\+308/);
  });

  it('compares fingerprints field by field', () => {
    expect(sameFingerprint(FP, { ...FP })).toBe(true);
    expect(sameFingerprint(FP, { ...FP, userAgent: 'x' })).toBe(false);
  });
});
