/**
 * The automatic backend choice's kept measurement (src/lib/backend/choose.ts), one record in `kv`.
 * A browser without IndexedDB (private mode) still gets a measured choice, only not a kept one, so
 * both functions swallow storage failures: a failed read is "nothing kept", a failed write is lost.
 */
import type { Measurement } from '../backend/choose';
import { DEFAULT_DB_NAME } from './db';
import type { JsonValue } from './db';
import { getSetting, setSetting } from './settings';

const KEY = 'backend-measurement';

export async function loadBackendMeasurement(dbName = DEFAULT_DB_NAME): Promise<Measurement | undefined> {
  try {
    return (await getSetting(KEY, dbName)) as Measurement | undefined;
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
