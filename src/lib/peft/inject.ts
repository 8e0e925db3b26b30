/**
 * targetModules matching for inject-kind methods, with PEFT's rules
 * (peft/tuners/tuners_utils.py `check_target_module_exists`):
 * - a string is a regular expression that must match the whole module name;
 * - a list matches a module whose name equals an entry or ends with "." + entry.
 * Module names are HF's full names for GPT-2, e.g. `transformer.h.0.attn.c_attn`.
 */
import { PeftConfigError } from '../errors';
import type { Gpt2Config, LinearModule } from '../model/config';
import { LINEAR_MODULES } from '../model/config';

export interface LinearSite {
  layer: number;
  module: LinearModule;
  /** Our hook key, e.g. `h.0.attn.c_attn`. */
  key: string;
  /** HF's module name, e.g. `transformer.h.0.attn.c_attn`. */
  hfName: string;
}

export function linearSites(config: Gpt2Config): LinearSite[] {
  const out: LinearSite[] = [];
  for (let layer = 0; layer < config.nLayer; layer++) {
    for (const module of LINEAR_MODULES) {
      const key = `h.${layer}.${module}`;
      out.push({ layer, module, key, hfName: `transformer.${key}` });
    }
  }
  return out;
}

export function matchesTarget(hfName: string, target: string | string[]): boolean {
  if (typeof target === 'string') return new RegExp(`^(?:${target})$`).test(hfName);
  return target.some((t) => hfName === t || hfName.endsWith(`.${t}`));
}

/** The linear layers a config targets; none is an error that lists what exists (unless allowEmpty). */
export function targetedSites(
  config: Gpt2Config,
  target: string | string[],
  layersToTransform?: number[] | null,
  allowEmpty = false,
): LinearSite[] {
  if (typeof target === 'string') {
    try {
      new RegExp(target);
    } catch {
      throw new PeftConfigError(`targetModules: ${JSON.stringify(target)} is not a valid regular expression`);
    }
  }
  const sites = linearSites(config).filter(
    (s) => matchesTarget(s.hfName, target) && (!layersToTransform || layersToTransform.includes(s.layer)),
  );
  if (sites.length === 0 && !allowEmpty) {
    throw new PeftConfigError(
      `targetModules: ${JSON.stringify(target)} matches no linear layer of this model; choose from ${LINEAR_MODULES.join(', ')}`,
    );
  }
  return sites;
}
