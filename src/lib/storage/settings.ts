/** The `kv` store: small JSON settings (the chosen backend, saved races, checkpoint manifests). */
import { DEFAULT_DB_NAME, inTx } from './db';
import type { JsonValue } from './db';

/** A setting, or undefined when unset. The caller vouches for T (settings are ours to write). */
export async function getSetting<T extends JsonValue = JsonValue>(
  key: string,
  dbName = DEFAULT_DB_NAME,
): Promise<T | undefined> {
  const v = await inTx(dbName, ['kv'], 'readonly', `read setting "${key}"`, (tx) =>
    tx.objectStore('kv').get(key),
  );
  return v as T | undefined;
}

export async function setSetting(key: string, value: JsonValue, dbName = DEFAULT_DB_NAME): Promise<void> {
  await inTx(dbName, ['kv'], 'readwrite', `save setting "${key}"`, (tx) =>
    tx.objectStore('kv').put(value, key),
  );
}

export async function deleteSetting(key: string, dbName = DEFAULT_DB_NAME): Promise<void> {
  await inTx(dbName, ['kv'], 'readwrite', `delete setting "${key}"`, (tx) =>
    tx.objectStore('kv').delete(key),
  );
}
