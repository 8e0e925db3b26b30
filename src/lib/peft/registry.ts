/**
 * The one table from method name to implementation, as tfjs lists its kernels in
 * register_all_kernels.ts: no registration by import side effect. A new method adds one line here
 * and its description (its folder's info.ts) to catalog.ts. Keyed by the CLI/URL name: P-tuning v2
 * shares prefix tuning's peft_type, so a file's peft_type finds the first entry of that type.
 */
import { AdapterError, PeftConfigError } from '../errors';
import { methodInfo } from './catalog';
import { adalora } from './adalora';
import { full } from './full/full';
import { ia3 } from './ia3';
import { lora } from './lora';
import { lnTuning } from './ln-tuning';
import { vera } from './vera';
import { loha } from './loha';
import { lokr } from './lokr';
import { oft } from './oft';
import { boft } from './boft';
import { pTuning } from './p-tuning';
import { pTuningV2 } from './p-tuning-v2';
import { prefixTuning } from './prefix-tuning';
import { promptTuning } from './prompt-tuning';
import { camelToSnake } from './peft-json';
import type { PeftMethod } from './types';
import { showValue } from '../util/show';

// Each entry is typed by its own config; PeftMethod's methods take their config bivariantly, so
// every entry is a PeftMethod of the base config without a cast.
const TABLE: Record<string, PeftMethod> = {
  lora,
  adalora,
  ia3,
  'ln-tuning': lnTuning,
  vera,
  loha,
  lokr,
  oft,
  boft,
  'prompt-tuning': promptTuning,
  'prefix-tuning': prefixTuning,
  'p-tuning': pTuning,
  'p-tuning-v2': pTuningV2,
  full,
};

/** Every implementation by CLI name. */
export const METHODS: Readonly<Record<string, PeftMethod>> = TABLE;

/**
 * Adds a method's implementation to the table (the test of a method defined only in a test
 * folder); its description must be in the catalog first (catalog.ts addMethodInfo), so the two
 * tables agree. Returns the function that takes it out again.
 */
export function addMethod(method: PeftMethod): () => void {
  if (methodInfo(method.cliName).peftType !== method.peftType) {
    throw new PeftConfigError(
      `${method.cliName}: the implementation's peft_type ${method.peftType} is not the catalog's ${methodInfo(method.cliName).peftType}`,
    );
  }
  if (method.cliName in TABLE) {
    throw new PeftConfigError(
      `a method named "${method.cliName}" is already registered: choose another name`,
    );
  }
  TABLE[method.cliName] = method;
  return () => {
    if (TABLE[method.cliName] === method) delete TABLE[method.cliName];
  };
}

export function methodByType(peftType: string, source = 'adapter_config.json'): PeftMethod {
  const m = Object.values(TABLE).find((x) => x.peftType === peftType);
  if (!m) {
    const known = [...new Set(Object.values(TABLE).map((x) => x.peftType))];
    throw new AdapterError(
      `${source}: peft_type ${showValue(peftType)} is not supported; known: ${known.join(', ')}`,
    );
  }
  return m;
}

export function methodByCliName(name: string): PeftMethod {
  methodInfo(name); // throws PeftConfigError listing the known names
  const m = TABLE[name];
  if (!m) {
    throw new PeftConfigError(
      `method "${name}" is described in the catalog but has no implementation in the registry: add it to registry.ts`,
    );
  }
  return m;
}

/**
 * The entry that reads an adapter_config.json: of the methods saving its peft_type, the one whose
 * config knows the most of the file's fields (a PREFIX_TUNING file with P-tuning v2's verbalizer
 * fields is P-tuning v2's; a plain one is prefix tuning's).
 */
export function methodForConfigJson(json: Record<string, unknown>, source: string): PeftMethod {
  const first = methodByType(String(json.peft_type), source);
  const keys = Object.keys(json);
  let best = first;
  let bestKnown = -1;
  for (const m of Object.values(TABLE)) {
    if (m.peftType !== first.peftType) continue;
    // The fields its file may carry: the written ones, and its config's own (P-tuning v2 writes its
    // verbalizer fields only when the verbalizer is on).
    const defaults = m.defaults('CAUSAL_LM');
    const fields = new Set([
      ...Object.keys(m.toPeftJson(defaults)),
      ...Object.keys(defaults).map(camelToSnake),
    ]);
    const known = keys.filter((k) => fields.has(k)).length;
    if (known > bestKnown) [best, bestKnown] = [m, known];
  }
  return best;
}
