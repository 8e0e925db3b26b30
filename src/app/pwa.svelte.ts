/**
 * The app's service worker (vite-plugin-pwa, configured in vite.config.ts): registered once, by
 * UpdatePrompt when the first model has loaded, and the update phase kept in a rune for the prompt.
 * `vite` dev registers none (the plugin's devOptions are off), so registerSW does nothing there.
 */
import { registerSW } from 'virtual:pwa-register';
import { UpdateFlow, type UpdatePhase } from './pwa';

/** How often an open tab asks the server for a new version, besides the browser's check on navigation. */
const UPDATE_CHECK_MS = 60 * 60 * 1000;

export class PwaState {
  phase = $state<UpdatePhase>('none');
  private flow: UpdateFlow | null = null;

  register(): void {
    if (this.flow || typeof navigator === 'undefined' || !('serviceWorker' in navigator)) return;
    this.flow = new UpdateFlow({
      register: registerSW,
      reloadPage: () => location.reload(),
      controlled: () => navigator.serviceWorker.controller !== null,
      onPhase: (p) => (this.phase = p),
      onRegistered: (registration) => {
        setInterval(() => {
          if (navigator.onLine) void registration.update();
        }, UPDATE_CHECK_MS);
      },
    });
  }

  /** Reload into the new version; refused while `busy`. */
  reload(busy: boolean): Promise<boolean> {
    return this.flow?.reload(busy) ?? Promise.resolve(false);
  }

  dismiss(): void {
    this.flow?.dismiss();
  }
}

/** One per page: the service worker registration is page-wide. */
export const pwa = new PwaState();
