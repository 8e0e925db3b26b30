/**
 * The table of method descriptions, without TensorFlow.js: each method folder's info.ts says what
 * the app, the CLI, equal budgets and the ledger need to know about it (method-info.ts). The
 * registry (registry.ts) is the table of implementations; the UI imports this file only. A new
 * method adds one line here and one there.
 */
import { PeftConfigError } from '../errors';
import { adaloraInfo } from './adalora/info';
import { fullInfo } from './full/info';
import { ia3Info } from './ia3/info';
import { loraInfo } from './lora/info';
import { lnTuningInfo } from './ln-tuning/info';
import { veraInfo } from './vera/info';
import { lohaInfo } from './loha/info';
import { lokrInfo } from './lokr/info';
import { oftInfo } from './oft/info';
import { boftInfo } from './boft/info';
import type { FieldSpec, MethodInfo } from './method-info';
import { pTuningInfo } from './p-tuning/info';
import { pTuningV2Info } from './p-tuning-v2/info';
import { prefixTuningInfo } from './prefix-tuning/info';
import { promptTuningInfo } from './prompt-tuning/info';
import type { PeftConfigBase } from './types';
import type { TaskType } from '../data/tasks/registry';

export type { FieldSpec, MethodInfo } from './method-info';
export { GPT2_MODULES, LLAMA_MODULES, familyModules } from './method-info';

const TABLE: MethodInfo[] = [
  loraInfo,
  adaloraInfo,
  ia3Info,
  lnTuningInfo,
  veraInfo,
  lohaInfo,
  lokrInfo,
  oftInfo,
  boftInfo,
  promptTuningInfo,
  prefixTuningInfo,
  pTuningInfo,
  pTuningV2Info,
  fullInfo,
];

/** Every method's description, in the order pickers list them. */
export const METHOD_INFO: readonly MethodInfo[] = TABLE;

/**
 * Adds a method's description to the table, for a method that lives outside this folder (the
 * test of a method defined only in a test folder); returns the function that takes it out again.
 * Everything that lists or looks up methods reads the table when asked, so the entry is seen by
 * forms, flags, equal budgets and the ledger alike. Its implementation goes in the registry's
 * table the same way (registry.ts addMethod).
 */
export function addMethodInfo(info: MethodInfo): () => void {
  if (TABLE.some((m) => m.cliName === info.cliName)) {
    throw new PeftConfigError(
      `a method named "${info.cliName}" is already in the catalog: choose another name`,
    );
  }
  TABLE.push(info);
  return () => {
    const i = TABLE.indexOf(info);
    if (i >= 0) TABLE.splice(i, 1);
  };
}

/**
 * The description of the method whose adapters carry this peft_type in their config: the first of
 * that type, as the registry reads files (P-tuning v2 saves as PREFIX_TUNING and describes its
 * ledger as prefix tuning does). An unknown type is an error, never another method's facts.
 */
export function methodInfoByPeftType(peftType: string): MethodInfo {
  const m = TABLE.find((x) => x.peftType === peftType);
  if (!m) {
    throw new PeftConfigError(
      `no method in the catalog has peft_type ${JSON.stringify(peftType)}; known: ${[...new Set(TABLE.map((x) => x.peftType))].join(', ')}`,
    );
  }
  return m;
}

export function methodInfo(cliName: string): MethodInfo {
  const m = METHOD_INFO.find((x) => x.cliName === cliName);
  if (!m) {
    throw new PeftConfigError(
      `unknown method "${cliName}"; choose one of ${METHOD_INFO.map((x) => x.cliName).join(', ')}`,
    );
  }
  return m;
}

/** Refuses a method on a task type it cannot train, saying which pairs work. */
export function checkTaskSupported(cliName: string, taskType: TaskType): void {
  const m = methodInfo(cliName);
  if (m.taskTypes.includes(taskType)) return;
  const others = METHOD_INFO.filter((x) => x.taskTypes.includes(taskType)).map((x) => x.label);
  throw new PeftConfigError(
    `${m.label} does not train ${taskType} tasks: it supports ${m.taskTypes.join(', ')}; for ${taskType} choose ${others.join(', ')}`,
  );
}

/**
 * What a run fills in that PEFT leaves to the user: AdaLoRA's budget schedule needs the number of
 * training steps (totalStep), which the Lab and the CLI know from the run itself.
 */
export function configForRun<C extends PeftConfigBase>(config: C, steps: number): C {
  const c = config as C & { totalStep?: number | null };
  return 'totalStep' in c && c.totalStep === null ? { ...config, totalStep: steps } : config;
}

/** Refuses a sequence length that, with the method's virtual tokens, overruns the model's positions. */
export function checkRunFits(config: PeftConfigBase, seqLen: number, nPositions: number): void {
  const n = (config as { numVirtualTokens?: number }).numVirtualTokens ?? 0;
  if (seqLen + n > nPositions) {
    throw new PeftConfigError(
      `sequence length ${seqLen}${n ? ` plus ${n} virtual tokens` : ''} exceeds the model's ${nPositions} positions: shorten the sequences${n ? ' or use fewer virtual tokens' : ''}`,
    );
  }
}

/** Whether a field applies under the config's other values (its `when`). */
export function fieldApplies(spec: FieldSpec, config: Record<string, unknown>): boolean {
  return !spec.when || config[spec.when.field] === spec.when.equals;
}
