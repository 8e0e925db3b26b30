/**
 * The automatic backend choice's kept measurement (src/lib/backend/choose.ts), one record in `kv`.
 * A browser without IndexedDB (private mode) still gets a measured choice, only not a kept one, so
 * both functions swallow storage failures: a failed read is "nothing kept", a failed write is lost.
 */
import { CANDIDATES } from '../backend/choose';
import type { CandidateId, Measurement, Timing } from '../backend/choose';
import { StorageError } from '../errors';
import { showValue } from '../util/show';
import { DEFAULT_DB_NAME } from './db';
import type { JsonValue } from './db';
import { getSetting, setSetting } from './settings';

const KEY = 'backend-measurement';

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isCandidate = (v: unknown): v is CandidateId => (CANDIDATES as readonly unknown[]).includes(v);

/**
 * A kept measurement, checked field by field: the record may come from an older build, another tab
 * or a damaged profile, and the choice reads its fingerprint, winner and every timing's figure.
 * A fault is a StorageError naming the field; the caller then measures again.
 */
export function parseBackendMeasurement(raw: unknown): Measurement {
  const bad = (what: string, v: unknown): never => {
    throw new StorageError(
      `the kept backend measurement has ${what} ${showValue(v)}; it is ignored and the backends are measured again`,
    );
  };
  if (!isRecord(raw)) return bad('the value', raw);
  const fp = raw.fingerprint;
  if (!isRecord(fp)) return bad('fingerprint', fp);
  for (const k of ['app', 'userAgent', 'adapter'] as const) {
    if (typeof fp[k] !== 'string') bad(`fingerprint.${k}`, fp[k]);
  }
  if (typeof fp.crossOriginIsolated !== 'boolean')
    bad('fingerprint.crossOriginIsolated', fp.crossOriginIsolated);
  if (!isCandidate(raw.winner)) bad('winner', raw.winner);
  // A time Date can hold: the reason line prints it, and toISOString throws past 8.64e15 ms.
  if (typeof raw.measuredAt !== 'number' || !(Math.abs(raw.measuredAt) <= 8.64e15))
    bad('measuredAt', raw.measuredAt);
  if (typeof raw.probe !== 'string') bad('probe', raw.probe);
  // Five candidates are timed at most; more entries are not ours.
  if (!Array.isArray(raw.timings) || raw.timings.length > CANDIDATES.length) bad('timings', raw.timings);
  const timings: Timing[] = (raw.timings as unknown[]).map((t) => {
    if (!isRecord(t) || !isCandidate(t.id) || typeof t.label !== 'string') return bad('a timing', t);
    const ms = t.msPerStep;
    if (ms !== null && (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0)) bad('a step time', ms);
    if (t.note !== undefined && typeof t.note !== 'string') bad('a timing note', t.note);
    return {
      id: t.id,
      label: t.label,
      msPerStep: ms as number | null,
      ...(t.note !== undefined ? { note: t.note as string } : {}),
    };
  });
  return {
    fingerprint: {
      app: fp.app as string,
      userAgent: fp.userAgent as string,
      adapter: fp.adapter as string,
      crossOriginIsolated: fp.crossOriginIsolated as boolean,
    },
    timings,
    winner: raw.winner as CandidateId,
    measuredAt: raw.measuredAt as number,
    probe: raw.probe as string,
  };
}

/** The kept measurement, or undefined when there is none, it cannot be read, or it is malformed. */
export async function loadBackendMeasurement(dbName = DEFAULT_DB_NAME): Promise<Measurement | undefined> {
  try {
    const raw: unknown = await getSetting(KEY, dbName);
    return raw === undefined ? undefined : parseBackendMeasurement(raw);
  } catch {
    return undefined;
  }
}

export async function saveBackendMeasurement(m: Measurement, dbName = DEFAULT_DB_NAME): Promise<void> {
  try {
    await setSetting(KEY, m as unknown as JsonValue, dbName);
  } catch {
    // Not kept: the next start measures again.
  }
}
