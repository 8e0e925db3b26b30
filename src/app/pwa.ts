/**
 * The update flow of the service worker, without Svelte or the browser, so it is tested in Node
 * (pwa.test.ts); pwa.svelte.ts runs it with vite-plugin-pwa's registerSW and keeps its state in runes.
 *
 * Updates wait for the person: a new version's worker, once installed, waits until Reload is clicked,
 * and Reload is refused while a training run is on. A page never reloads by itself: when the new worker
 * takes over because Reload was clicked in *another* tab, this tab only learns that it runs an old version
 * (its files may be gone from the cache) and offers Reload in turn, so a run there is not cut.
 */
import type { RegisterSWOptions } from 'vite-plugin-pwa/types';

/** none: up to date; ready: a new version waits; taken-over: another tab switched to it already. */
export type UpdatePhase = 'none' | 'ready' | 'taken-over';

export type RegisterFn = (options: RegisterSWOptions) => (reloadPage?: boolean) => Promise<void>;

export interface UpdateFlowOptions {
  register: RegisterFn;
  /** location.reload in the browser. */
  reloadPage: () => void;
  onPhase: (phase: UpdatePhase) => void;
  /** Whether a service worker controls this page (navigator.serviceWorker.controller); default true. */
  controlled?: () => boolean;
  /** Called once the registration exists (the browser's own check runs on each navigation only). */
  onRegistered?: (registration: ServiceWorkerRegistration) => void;
}

export class UpdateFlow {
  phase: UpdatePhase = 'none';
  /** Reload was clicked here: the new worker's taking control then reloads this tab. */
  private requested = false;
  private readonly updateSW: (reloadPage?: boolean) => Promise<void>;

  constructor(private readonly opts: UpdateFlowOptions) {
    this.updateSW = opts.register({
      immediate: true,
      onNeedRefresh: () => this.set('ready'),
      // registerSW's default here is location.reload() in every tab that saw the prompt.
      onNeedReload: () => {
        if (this.requested) opts.reloadPage();
        else this.set('taken-over');
      },
      onRegisteredSW: (_url, registration) => {
        if (registration) opts.onRegistered?.(registration);
      },
    });
  }

  private set(phase: UpdatePhase): void {
    this.phase = phase;
    this.opts.onPhase(phase);
  }

  /**
   * The person's Reload. Refused (false) while `busy` (a training run). When the new worker already
   * controls the page, reloads at once; else tells the waiting worker to take over, and the page reloads
   * when it does.
   */
  async reload(busy: boolean): Promise<boolean> {
    if (busy || this.phase === 'none') return false;
    this.requested = true;
    if (this.phase === 'taken-over') {
      this.opts.reloadPage();
      return true;
    }
    await this.updateSW(true);
    // A page no worker controls (the first visit: the worker installed after it loaded) gets no
    // controllerchange when the new worker takes over, so nothing else would reload it. The new worker
    // is active already then (the old one had no page to wait for), so the reload is served by it.
    if (this.opts.controlled?.() === false) this.opts.reloadPage();
    return true;
  }

  /** Later: hides the prompt until the next new version. */
  dismiss(): void {
    this.set('none');
  }
}
