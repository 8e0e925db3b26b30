/** Quota and persistence: navigator.storage, no database needed. */

export interface StorageEstimate {
  usageBytes: number;
  quotaBytes: number;
}

/** navigator.storage.estimate() in bytes, or null where the browser (or Node) has none. */
export async function storageEstimate(): Promise<StorageEstimate | null> {
  try {
    const storage = typeof navigator === 'undefined' ? undefined : navigator.storage;
    if (!storage || typeof storage.estimate !== 'function') return null;
    const { usage, quota } = await storage.estimate();
    if (usage === undefined || quota === undefined) return null;
    return { usageBytes: usage, quotaBytes: quota };
  } catch {
    return null;
  }
}

/** Whether the browser has made our storage persistent (never evicted); false where unknown. */
export async function isPersisted(): Promise<boolean> {
  try {
    const storage = typeof navigator === 'undefined' ? undefined : navigator.storage;
    if (!storage || typeof storage.persisted !== 'function') return false;
    return await storage.persisted();
  } catch {
    return false;
  }
}

/**
 * Asks the browser not to evict our data under storage pressure. True when storage is (now)
 * persistent; false when refused or unsupported (headless Chromium always refuses).
 */
export async function requestPersistence(): Promise<boolean> {
  try {
    const storage = typeof navigator === 'undefined' ? undefined : navigator.storage;
    if (!storage || typeof storage.persist !== 'function') return false;
    if (typeof storage.persisted === 'function' && (await storage.persisted())) return true;
    return await storage.persist();
  } catch {
    return false;
  }
}
