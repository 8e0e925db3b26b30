/**
 * The automatic backend choice, by measurement (tfjs-free, so it is tested in Node with made-up
 * timings): each candidate backend times one short training step, the fastest wins, and the reason
 * names every figure. The result is kept per device and reused until what it depends on changes:
 * the app build, the browser (its user agent), the WebGPU adapter, and cross-origin isolation (which
 * decides whether wasm may use threads).
 */
import { BackendError } from '../errors';

export const BACKENDS = ['webgpu', 'wasm', 'webgl', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

/**
 * What the automatic choice times: a tfjs backend, and for wasm how many threads. `wasm-threads` is
 * a candidate only where the page is cross-origin isolated (SharedArrayBuffer is then available).
 * Timed in this order: the CPU figures first give the GPU backends a figure to beat.
 */
export const CANDIDATES = ['wasm-threads', 'wasm', 'webgpu', 'webgl', 'cpu'] as const;
export type CandidateId = (typeof CANDIDATES)[number];

/** A person's choice: a candidate, or `auto` (measure). `wasm` is always one thread. */
export type BackendChoice = CandidateId | 'auto';

/** One candidate's figure: ms per probe step, or null with why it has none. */
export type Timing = {
  id: CandidateId;
  /** e.g. "wasm, 2 threads", "webgpu (google swiftshader, software)". */
  label: string;
  msPerStep: number | null;
  /** Why there is no figure: "did not start: ...", "over the 1500 ms cap". */
  note?: string;
};

/** What a kept measurement depends on; any change means measure again. */
export type Fingerprint = {
  app: string;
  userAgent: string;
  /** The WebGPU adapter's description, or "none". */
  adapter: string;
  crossOriginIsolated: boolean;
};

export type Measurement = {
  fingerprint: Fingerprint;
  timings: Timing[];
  winner: CandidateId;
  /** Date.now() when measured. */
  measuredAt: number;
  /** What the probe step is, for the reason line, e.g. "LoRA-free full step, 1 layer, d 192, 4 x 64 tokens". */
  probe: string;
};

export function sameFingerprint(a: Fingerprint, b: Fingerprint): boolean {
  return (
    a.app === b.app &&
    a.userAgent === b.userAgent &&
    a.adapter === b.adapter &&
    a.crossOriginIsolated === b.crossOriginIsolated
  );
}

function figure(ms: number): string {
  return ms >= 100 ? `${Math.round(ms)}` : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

/**
 * The reason line the header shows, e.g. "measured one training step: wasm, 2 threads 12.1 ms;
 * wasm, 1 thread 14.0 ms; webgpu (google swiftshader, software) over the 1500 ms cap; webgl 95.0 ms
 * -> wasm, 2 threads".
 */
export function describeMeasurement(m: Measurement, reused: boolean): string {
  const parts = m.timings.map((t) =>
    t.msPerStep !== null
      ? `${t.label} ${figure(t.msPerStep)} ms/step`
      : `${t.label} ${t.note ?? 'no figure'}`,
  );
  const winner = m.timings.find((t) => t.id === m.winner);
  const when = reused ? ` (kept from ${new Date(m.measuredAt).toISOString().slice(0, 10)})` : '';
  return `measured ${m.probe}: ${parts.join('; ')} -> ${winner?.label ?? m.winner}${when}`;
}

export interface ChooseDeps {
  fingerprint: Fingerprint;
  /** Candidates available here, in CANDIDATES order. */
  candidates: readonly CandidateId[];
  /** Times one candidate; resolves with a null figure (and a note) when it cannot run or is too slow. */
  measure(id: CandidateId): Promise<Timing>;
  /** Makes a candidate the running backend; false if it cannot start. */
  start(id: CandidateId): Promise<boolean>;
  /** The kept measurement, or undefined (storage failures are the caller's to swallow). */
  load(): Promise<Measurement | undefined>;
  save(m: Measurement): Promise<void>;
  probe: string;
  now?: () => number;
}

export interface Chosen {
  measurement: Measurement;
  /** True when a kept measurement was reused instead of timing again. */
  reused: boolean;
}

/**
 * Reuses the kept measurement when its fingerprint matches and its winner still starts; otherwise
 * times every candidate, keeps the result and starts the fastest (the next fastest if it will not).
 */
export async function chooseByMeasurement(deps: ChooseDeps): Promise<Chosen> {
  const kept = await deps.load();
  if (
    kept &&
    sameFingerprint(kept.fingerprint, deps.fingerprint) &&
    deps.candidates.includes(kept.winner) &&
    (await deps.start(kept.winner))
  ) {
    return { measurement: kept, reused: true };
  }
  const timings: Timing[] = [];
  for (const id of deps.candidates) timings.push(await deps.measure(id));
  const ranked = timings
    .filter((t) => t.msPerStep !== null && Number.isFinite(t.msPerStep))
    .sort((a, b) => a.msPerStep! - b.msPerStep!);
  for (const t of ranked) {
    if (await deps.start(t.id)) {
      const measurement: Measurement = {
        fingerprint: deps.fingerprint,
        timings,
        winner: t.id,
        measuredAt: (deps.now ?? Date.now)(),
        probe: deps.probe,
      };
      await deps.save(measurement);
      return { measurement, reused: false };
    }
  }
  const why = timings.map((t) => `${t.label}: ${t.note ?? 'did not start'}`).join('; ');
  throw new BackendError(`no tfjs backend could run a training step in this browser (${why})`);
}
