/**
 * targetModules matching for inject-kind methods, with PEFT's rules
 * (peft/tuners/tuners_utils.py `check_target_module_exists`):
 * - a string is a regular expression that must match the whole module name;
 * - a list matches a module whose name equals an entry or ends with "." + entry.
 * Module names are HF's full names, e.g. `transformer.h.0.attn.c_attn` (GPT-2) or
 * `model.layers.0.self_attn.q_proj` (Llama family).
 */
import { PeftConfigError } from '../errors';
import type { DecoderConfig, LinearModule } from '../model/family';
import { linearModules, linearNames } from '../model/family';

export interface LinearSite {
  layer: number;
  module: LinearModule;
  /** Our hook key, e.g. `h.0.attn.c_attn` or `layers.0.self_attn.q_proj`. */
  key: string;
  /** HF's module name, e.g. `transformer.h.0.attn.c_attn`. */
  hfName: string;
}

export function linearSites(config: DecoderConfig): LinearSite[] {
  const out: LinearSite[] = [];
  for (let layer = 0; layer < config.nLayer; layer++) {
    for (const module of linearModules(config))
      out.push({ layer, module, ...linearNames(config, layer, module) });
  }
  return out;
}

export function matchesTarget(hfName: string, target: string | string[]): boolean {
  if (typeof target === 'string') return new RegExp(`^(?:${target})$`).test(hfName);
  return target.some((t) => hfName === t || hfName.endsWith(`.${t}`));
}

/** The linear layers a config targets; none is an error that lists what exists (unless allowEmpty). */
export function targetedSites(
  config: DecoderConfig,
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
      `targetModules: ${JSON.stringify(target)} matches no linear layer of this model; choose from ${linearModules(config).join(', ')}`,
    );
  }
  return sites;
}

/**
 * PEFT's fan_in_fan_out says how the base layer stores its weight: true for GPT-2's Conv1D
 * ([in, out]), false for nn.Linear ([out, in]: the Llama family). Without a model, GPT-2 is assumed
 * unless the value says nn.Linear, which is checked once the model is known.
 */
export function checkFanInFanOut(fanInFanOut: boolean, model?: { family: string }): void {
  if (!model) return;
  const conv1d = model.family === 'gpt2';
  if (fanInFanOut !== conv1d) {
    throw new PeftConfigError(
      conv1d
        ? 'fanInFanOut must be true for GPT-2: its Conv1D layers store weights as [in, out]'
        : `fanInFanOut must be false for ${model.family}: its nn.Linear layers store weights as [out, in]`,
    );
  }
}
