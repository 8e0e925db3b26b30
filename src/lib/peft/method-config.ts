/**
 * Each method's name (registry cliName) and the config type its folder declares, so a request that
 * names a method can only carry that method's fields: `{ method: 'lora', config: { r: 4 } }`
 * compiles, `{ method: 'lora', config: { numVirtualTokens: 4 } }` does not. Only the tfjs-free
 * catalog is loaded by importing this (the config types are type-only).
 */
import { methodInfo } from './catalog';
import type { VerbalizerFields } from './types';
import type { AdaLoraConfig } from './adalora/config';
import type { FullConfig } from './full/config';
import type { IA3Config } from './ia3/config';
import type { LoraConfig } from './lora/config';
import type { LnTuningConfig } from './ln-tuning/info';
import type { VeraConfig } from './vera/info';
import type { LoHaConfig } from './loha/info';
import type { LoKrConfig } from './lokr/info';
import type { OFTConfig } from './oft/info';
import type { BOFTConfig } from './boft/info';
import type { PTuningV2Config } from './p-tuning-v2/config';
import type { PromptEncoderConfig } from './p-tuning/config';
import type { PrefixTuningConfig } from './prefix-tuning/config';
import type { PromptTuningConfig } from './prompt-tuning/config';

/**
 * The map from name to config type. An interface, so a method folder outside this list (a test's)
 * adds its own entry by module augmentation (`declare module '.../peft/method-config'`) without
 * editing this file; the catalog and registry stay the only tables a new method is listed in.
 */
export interface MethodConfigs {
  lora: LoraConfig;
  adalora: AdaLoraConfig;
  ia3: IA3Config;
  'ln-tuning': LnTuningConfig;
  vera: VeraConfig;
  loha: LoHaConfig;
  lokr: LoKrConfig;
  oft: OFTConfig;
  boft: BOFTConfig;
  'prompt-tuning': PromptTuningConfig;
  'prefix-tuning': PrefixTuningConfig;
  'p-tuning': PromptEncoderConfig;
  'p-tuning-v2': PTuningV2Config;
  full: FullConfig;
}

export type MethodName = keyof MethodConfigs;

/**
 * Fields a request may set over the method's defaults (the engine sets peftType and the base model),
 * and, for any method on a classification task, the head's: a verbalizer instead of a linear head.
 */
export type ConfigOverrides<M extends MethodName> = Partial<
  Omit<MethodConfigs[M], 'peftType' | 'baseModelNameOrPath'>
> &
  VerbalizerFields;

/** A method and its config overrides, keyed by the method: a wrong field fails to compile. */
export type MethodRequest = { [M in MethodName]: { method: M; config: ConfigOverrides<M> } }[MethodName];

/** A race lane's method and, optionally, its config overrides: typed by the method, as a request. */
export type LaneMethod = {
  [M in MethodName]: { method: M; config?: ConfigOverrides<M> };
}[MethodName];

/**
 * A request from untyped input (the Lab's form, whose fields come from the catalog's table): the
 * name is checked against the catalog (PeftConfigError naming the known methods when unknown); the
 * fields are checked by the method's validate() when the engine plans the run.
 */
export function methodRequest(method: string, config: Record<string, unknown>): MethodRequest {
  methodInfo(method);
  return { method, config } as MethodRequest;
}
