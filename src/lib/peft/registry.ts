/**
 * The one table from method name to implementation, as tfjs lists its kernels in
 * register_all_kernels.ts: no registration by import side effect. A new method adds one line here
 * (and its description in catalog.ts). Keyed by the CLI/URL name: P-tuning v2 shares prefix
 * tuning's peft_type, so a file's peft_type finds the first entry of that type.
 */
import { AdapterError } from '../errors';
import { methodInfo } from './catalog';
import { adalora } from './adalora';
import { full } from './full/full';
import { ia3 } from './ia3';
import { lora } from './lora';
import { pTuning } from './p-tuning';
import { pTuningV2 } from './p-tuning-v2';
import { prefixTuning } from './prefix-tuning';
import { promptTuning } from './prompt-tuning';
import type { PeftConfigBase, PeftMethod } from './types';

export const METHODS: Record<string, PeftMethod<never>> = {
  lora: lora as PeftMethod<never>,
  adalora: adalora as PeftMethod<never>,
  ia3: ia3 as PeftMethod<never>,
  'prompt-tuning': promptTuning as PeftMethod<never>,
  'prefix-tuning': prefixTuning as PeftMethod<never>,
  'p-tuning': pTuning as PeftMethod<never>,
  'p-tuning-v2': pTuningV2 as PeftMethod<never>,
  full: full as PeftMethod<never>,
};

export function methodByType(peftType: string, source = 'adapter_config.json'): PeftMethod<PeftConfigBase> {
  const m = Object.values(METHODS).find((x) => x.peftType === peftType);
  if (!m) {
    const known = [...new Set(Object.values(METHODS).map((x) => x.peftType))];
    throw new AdapterError(
      `${source}: peft_type ${JSON.stringify(peftType)} is not supported; known: ${known.join(', ')}`,
    );
  }
  return m as unknown as PeftMethod<PeftConfigBase>;
}

export function methodByCliName(name: string): PeftMethod<PeftConfigBase> {
  methodInfo(name); // throws PeftConfigError listing the known names
  return METHODS[name] as unknown as PeftMethod<PeftConfigBase>;
}

/**
 * The entry that reads an adapter_config.json: of the methods saving its peft_type, the one whose
 * config knows the most of the file's fields (a PREFIX_TUNING file with P-tuning v2's verbalizer
 * fields is P-tuning v2's; a plain one is prefix tuning's).
 */
export function methodForConfigJson(
  json: Record<string, unknown>,
  source: string,
): PeftMethod<PeftConfigBase> {
  const first = methodByType(String(json.peft_type), source);
  const keys = Object.keys(json);
  let best = first;
  let bestKnown = -1;
  for (const m of Object.values(METHODS) as unknown as PeftMethod<PeftConfigBase>[]) {
    if (m.peftType !== first.peftType) continue;
    const fields = new Set(Object.keys(m.toPeftJson(m.defaults('CAUSAL_LM'))));
    const known = keys.filter((k) => fields.has(k)).length;
    if (known > bestKnown) [best, bestKnown] = [m, known];
  }
  return best;
}
