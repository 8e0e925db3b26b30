/**
 * The Storage screen's state: the last reading of what is stored (storage.ts), which Delete awaits
 * its confirmation, and the error of a delete that failed (nothing is lost then: the list is read again).
 */
import { deleteStorageItem, readStorage } from './storage';
import type { StorageItem, StorageReport } from './storage';
import { requestPersistence } from '../lib/storage/quota';

const itemId = (i: Pick<StorageItem, 'kind' | 'key'>): string => `${i.kind}/${i.key}`;

export class StorageState {
  report = $state<StorageReport | null>(null);
  /** A reading is under way. */
  reading = $state(false);
  /** `kind/key` of the item whose Delete waits for Confirm or Cancel. */
  confirming = $state<string | null>(null);
  /** `kind/key` of the item being deleted. */
  deleting = $state<string | null>(null);
  error = $state<string | null>(null);
  /** What the browser answered to the last request for persistent storage. */
  persistAnswer = $state<string | null>(null);

  readonly id = itemId;

  async refresh(): Promise<void> {
    this.reading = true;
    try {
      this.report = await readStorage();
    } catch (e) {
      this.error = `Could not read what is stored: ${e instanceof Error ? e.message : String(e)}`;
    } finally {
      this.reading = false;
    }
  }

  ask(item: StorageItem): void {
    this.confirming = itemId(item);
    this.error = null;
  }

  cancel(): void {
    this.confirming = null;
  }

  /** Deletes a confirmed item, then reads the list and the estimate again; true when it was deleted. */
  async remove(item: StorageItem): Promise<boolean> {
    this.confirming = null;
    this.deleting = itemId(item);
    this.error = null;
    let ok = false;
    try {
      await deleteStorageItem(item);
      ok = true;
    } catch (e) {
      this.error = `Could not delete “${item.name}”: ${e instanceof Error ? e.message : String(e)}. Nothing was removed.`;
    } finally {
      this.deleting = null;
    }
    await this.refresh();
    return ok;
  }

  async persist(): Promise<void> {
    const granted = await requestPersistence();
    this.persistAnswer = granted
      ? 'Granted: the browser will not evict this data to free space.'
      : 'Refused: browsers grant it to sites you use often, install or bookmark; ask again later.';
    await this.refresh();
  }
}
