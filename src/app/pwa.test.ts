import { describe, expect, it, vi } from 'vitest';
import type { RegisterSWOptions } from 'vite-plugin-pwa/types';
import { UpdateFlow, type UpdatePhase } from './pwa';

/** A registerSW stand-in: the options it got, and the updateSW it hands back as a spy. */
function setup(controlled?: () => boolean) {
  let options: RegisterSWOptions = {};
  const updateSW = vi.fn(() => Promise.resolve());
  const reloadPage = vi.fn();
  const phases: UpdatePhase[] = [];
  const flow = new UpdateFlow({
    register: (o) => {
      options = o;
      return updateSW;
    },
    reloadPage,
    onPhase: (p) => phases.push(p),
    controlled,
  });
  return { flow, options, updateSW, reloadPage, phases };
}

describe('UpdateFlow', () => {
  it('offers a waiting version and activates it only on Reload, then reloads when it takes control', async () => {
    const { flow, options, updateSW, reloadPage, phases } = setup();
    expect(flow.phase).toBe('none');
    options.onNeedRefresh?.();
    expect(phases).toEqual(['ready']);
    expect(updateSW).not.toHaveBeenCalled();
    expect(await flow.reload(false)).toBe(true);
    expect(updateSW).toHaveBeenCalledTimes(1);
    expect(reloadPage).not.toHaveBeenCalled(); // not until the new worker controls the page
    options.onNeedReload?.();
    expect(reloadPage).toHaveBeenCalledTimes(1);
  });

  it('reloads at once on Reload when no worker controls the page (no controllerchange will come)', async () => {
    const { flow, options, updateSW, reloadPage } = setup(() => false);
    options.onNeedRefresh?.();
    expect(await flow.reload(true)).toBe(false);
    expect(reloadPage).not.toHaveBeenCalled();
    expect(await flow.reload(false)).toBe(true);
    expect(updateSW).toHaveBeenCalledTimes(1);
    expect(reloadPage).toHaveBeenCalledTimes(1);
  });

  it('refuses Reload while training runs, and when there is nothing to reload into', async () => {
    const { flow, options, updateSW, reloadPage } = setup();
    expect(await flow.reload(false)).toBe(false);
    options.onNeedRefresh?.();
    expect(await flow.reload(true)).toBe(false);
    expect(updateSW).not.toHaveBeenCalled();
    expect(reloadPage).not.toHaveBeenCalled();
    expect(flow.phase).toBe('ready');
  });

  it('does not reload when another tab switched to the new version; says so, and reloads on Reload', async () => {
    const { flow, options, updateSW, reloadPage, phases } = setup();
    options.onNeedRefresh?.();
    options.onNeedReload?.(); // the new worker took control, but not because of this tab
    expect(reloadPage).not.toHaveBeenCalled();
    expect(phases).toEqual(['ready', 'taken-over']);
    expect(await flow.reload(true)).toBe(false);
    expect(await flow.reload(false)).toBe(true);
    expect(reloadPage).toHaveBeenCalledTimes(1);
    expect(updateSW).not.toHaveBeenCalled();
  });

  it('Later hides the prompt until the next version', () => {
    const { flow, options, phases } = setup();
    options.onNeedRefresh?.();
    flow.dismiss();
    expect(flow.phase).toBe('none');
    options.onNeedRefresh?.();
    expect(phases).toEqual(['ready', 'none', 'ready']);
  });

  it('registers at once and hands the registration on', () => {
    let options: RegisterSWOptions = {};
    const onRegistered = vi.fn();
    new UpdateFlow({
      register: (o) => ((options = o), () => Promise.resolve()),
      reloadPage: () => {},
      onPhase: () => {},
      onRegistered,
    });
    expect(options.immediate).toBe(true);
    const registration = {} as ServiceWorkerRegistration;
    options.onRegisteredSW?.('/sw.js', registration);
    options.onRegisteredSW?.('/sw.js', undefined);
    expect(onRegistered).toHaveBeenCalledExactlyOnceWith(registration);
  });
});
