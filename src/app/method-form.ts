/**
 * The Lab's method settings as plain data: one form (field name -> value) per method, built from the
 * catalog's FieldSpecs, and what of it a training request carries. No DOM, no tensors; the settings
 * panel renders the same FieldSpecs.
 */
import { METHOD_INFO, familyModules, fieldApplies } from '../lib/peft/catalog';
import type { FieldSpec, MethodInfo } from '../lib/peft/catalog';
import type { TaskType } from '../lib/data/tasks/registry';
import { familyDefaults } from '../lib/model/family';
import type { ModelFamily } from '../lib/model/family';

export const DEFAULT_METHOD = 'lora';

/** A method's settings as the form holds them: only its `fields`, by PEFT's camelCase name. */
export type MethodForm = Record<string, unknown>;

/** What a kind of method changes in the model, for the picker's badge. */
export const KIND_DOC: Record<MethodInfo['kind'], string> = {
  inject: 'inject: hooks beside chosen linear layers',
  prompt: 'prompt: virtual token embeddings before the input',
  prefix: 'prefix: trained keys and values at every attention layer',
  full: 'full: the base weights themselves train',
};

export function findMethod(cliName: string): MethodInfo | undefined {
  return METHOD_INFO.find((m) => m.cliName === cliName);
}

/**
 * The starting form: the method's defaults for the task type (its labDefaults where it has them),
 * with the target modules PEFT picks for the model's family (q_proj and v_proj on Llama for LoRA).
 */
export function initialForm(info: MethodInfo, taskType: TaskType, family: ModelFamily = 'gpt2'): MethodForm {
  const defaults: Record<string, unknown> = {
    ...info.defaults(taskType),
    ...familyDefaults(info.peftType, family),
  };
  const own = info.labDefaults ?? {};
  const form: MethodForm = {};
  for (const spec of info.fields) {
    const value = spec.field in own ? own[spec.field] : defaults[spec.field];
    // Arrays are copied so the form never shares them with the defaults.
    form[spec.field] = Array.isArray(value) ? [...(value as unknown[])] : value;
  }
  return form;
}

/** One form per method, so switching back and forth keeps what was typed. */
export function initialForms(taskType: TaskType, family: ModelFamily = 'gpt2'): Record<string, MethodForm> {
  return Object.fromEntries(METHOD_INFO.map((m) => [m.cliName, initialForm(m, taskType, family)]));
}

/**
 * The forms after a model of another family loads: the module fields (layer names differ between
 * families) start again from the family's defaults; every other field keeps what was typed.
 */
export function formsForFamily(
  forms: Record<string, MethodForm>,
  taskType: TaskType,
  family: ModelFamily,
): Record<string, MethodForm> {
  return Object.fromEntries(
    METHOD_INFO.map((m) => {
      const fresh = initialForm(m, taskType, family);
      const form = { ...(forms[m.cliName] ?? fresh) };
      for (const f of m.fields) if (f.type === 'modules') form[f.field] = fresh[f.field];
      return [m.cliName, form];
    }),
  );
}

/** The fields shown (and sent) under the form's current values. */
export function applyingFields(info: MethodInfo, form: MethodForm): FieldSpec[] {
  return info.fields.filter((f) => fieldApplies(f, form));
}

/** The request's `config`: the applying fields only; the engine merges them over the defaults. */
export function requestConfig(info: MethodInfo, form: MethodForm): Record<string, unknown> {
  return Object.fromEntries(
    applyingFields(info, form).map((f) => {
      const v = form[f.field];
      return [f.field, Array.isArray(v) ? [...(v as unknown[])] : v];
    }),
  );
}

/** Why the form cannot train as it stands (an empty required field, no target layer), or null. */
export function formProblem(info: MethodInfo, form: MethodForm): string | null {
  for (const spec of applyingFields(info, form)) {
    const v = form[spec.field];
    if (spec.type === 'modules') {
      if (spec.field === 'targetModules' && (!Array.isArray(v) || v.length === 0))
        return `${spec.field}: tick at least one layer`;
    } else if ((v === null || v === undefined || v === '' || Number.isNaN(v)) && !spec.nullable) {
      return `${spec.field} needs a value`;
    }
  }
  return null;
}

/** ["SEQ_CLS", "TOKEN_CLS"] -> "SEQ_CLS and TOKEN_CLS" (with `or`: "SEQ_CLS or TOKEN_CLS"). */
export function listWords(words: readonly string[], and = 'and'): string {
  return words.length < 2 ? (words[0] ?? '') : `${words.slice(0, -1).join(', ')} ${and} ${words.at(-1)}`;
}

/** Null when the method trains the task type, else the reason (e.g. "P-tuning v2: SEQ_CLS and TOKEN_CLS only"). */
export function unsupportedReason(info: MethodInfo, taskType: TaskType): string | null {
  return info.taskTypes.includes(taskType) ? null : `${info.label}: ${listWords(info.taskTypes)} only`;
}

/** The modules field's value as a list in the family's layer order, with `id` ticked or not. */
export function toggleModule(
  value: unknown,
  id: string,
  on: boolean,
  family: ModelFamily = 'gpt2',
): string[] {
  const set = new Set(Array.isArray(value) ? (value as string[]) : []);
  if (on) set.add(id);
  else set.delete(id);
  return familyModules(family)
    .map((m) => m.id)
    .filter((m) => set.has(m));
}
