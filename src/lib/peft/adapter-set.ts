/**
 * Several adapters resident on one frozen base, one active at a time, switched without reloading
 * anything (PEFT's `load_adapter` + `set_adapter`). A parked adapter keeps its variables but leaves
 * the model: an inject adapter's hooks come off (its `disableAdapter`), so two LoRA adapters on the
 * same layers never meet; prompt and prefix adapters only act through the forward decorator, so
 * parking them is a matter of not passing them.
 */
import { InputError, NotReadyError } from '../errors';
import type { Adapter } from './types';

interface Resident {
  adapter: Adapter;
  /** Puts a parked adapter back into the model; null while it is active. */
  restore: (() => void) | null;
}

export class AdapterSet {
  private readonly resident = new Map<string, Resident>();
  private activeName: string | null = null;

  /** The adapter forward passes should use (null: the base model). */
  get active(): Adapter | null {
    return this.activeName === null ? null : this.resident.get(this.activeName)!.adapter;
  }

  get activeAdapterName(): string | null {
    return this.activeName;
  }

  names(): string[] {
    return [...this.resident.keys()];
  }

  /** Parks the active adapter, then builds and activates a new one under `name`. */
  add(name: string, create: () => Adapter): Adapter {
    if (this.resident.has(name))
      throw new InputError(`an adapter named "${name}" is already loaded: pick another name`);
    this.park();
    const adapter = create();
    this.resident.set(name, { adapter, restore: null });
    this.activeName = name;
    return adapter;
  }

  /** Activates a resident adapter, or the base model with null. */
  use(name: string | null): void {
    if (name !== null && !this.resident.has(name)) {
      throw new NotReadyError(
        `no adapter named "${name}" is loaded; loaded: ${this.names().join(', ') || 'none'}`,
      );
    }
    if (name === this.activeName) return;
    this.park();
    if (name === null) return;
    const r = this.resident.get(name)!;
    r.restore?.();
    r.restore = null;
    this.activeName = name;
  }

  /** Gives a resident adapter another name (a free one), keeping whether it is active. */
  rename(from: string, to: string): void {
    const r = this.resident.get(from);
    if (!r) throw new NotReadyError(`no adapter named "${from}" is loaded`);
    if (from === to) return;
    if (this.resident.has(to))
      throw new InputError(`an adapter named "${to}" is already loaded: pick another name`);
    this.resident.delete(from);
    this.resident.set(to, r);
    if (this.activeName === from) this.activeName = to;
  }

  /** Frees one resident adapter (the base answers if it was active). */
  remove(name: string): void {
    const r = this.resident.get(name);
    if (!r) return;
    if (this.activeName === name) this.activeName = null;
    // A parked inject adapter's hooks are already off; dispose frees its variables either way.
    r.restore?.();
    r.adapter.dispose();
    this.resident.delete(name);
  }

  dispose(): void {
    for (const name of this.names()) this.remove(name);
  }

  private park(): void {
    if (this.activeName === null) return;
    const r = this.resident.get(this.activeName)!;
    r.restore = r.adapter.disableAdapter();
    this.activeName = null;
  }
}
