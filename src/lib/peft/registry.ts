/**
 * The one table from PeftType to method, as tfjs lists its kernels in register_all_kernels.ts:
 * no registration by import side effect. A new method adds one line here.
 */
import { AdapterError, PeftConfigError } from '../errors';
import { full } from './full/full';
import { lora } from './lora';
import type { PeftConfigBase, PeftMethod, PeftType } from './types';

export const METHODS: Record<PeftType, PeftMethod<never>> = {
  LORA: lora as PeftMethod<never>,
  FULL: full as PeftMethod<never>,
};

export function methodByType(peftType: string, source = 'adapter_config.json'): PeftMethod<PeftConfigBase> {
  const m = (METHODS as Record<string, PeftMethod<never> | undefined>)[peftType];
  if (!m) {
    throw new AdapterError(
      `${source}: peft_type ${JSON.stringify(peftType)} is not supported; known: ${Object.keys(METHODS).join(', ')}`,
    );
  }
  return m as unknown as PeftMethod<PeftConfigBase>;
}

export function methodByCliName(name: string): PeftMethod<PeftConfigBase> {
  const m = Object.values(METHODS).find((x) => x.cliName === name);
  if (!m) {
    throw new PeftConfigError(
      `unknown method "${name}"; choose one of ${Object.values(METHODS)
        .map((x) => x.cliName)
        .join(', ')}`,
    );
  }
  return m as unknown as PeftMethod<PeftConfigBase>;
}
