/**
 * The Compare screen's set-up as plain data, and its URL-hash codec, so a race is a link
 * (tensorflow/playground keeps every setting in the URL the same way). No DOM, no tensors.
 *
 * The query after `#/compare?`:
 *   model=peftlab-s             a bundled model id
 *   task=spam                   a built-in task id or an imported data set's id (`data-...`)
 *   methods=lora,prompt-tuning  the racing methods, by cliName, in lane order
 *   steps=60  time=0            optimizer steps per lane; an optional time budget in seconds (0: none)
 *   batch=8  seq=64  eval=20  seed=0
 *   equal=1  budget=4608        equal-budget mode; the target (absent: the engine's default)
 *   template=Is this spam? {text}   classification: a manual prompt around each input (one `{text}`)
 *   lr.<method>=0.003           a learning rate other than the method's default
 *   cfg.<method>.<field>=value  a setting other than the default, in PEFT's camelCase name:
 *                               numbers as written, booleans 1/0, `null` for a nullable field
 *                               left empty, module lists comma-separated (`c_attn,mlp.c_fc`)
 * Only what differs from the defaults is written. Reading is forgiving: an unknown method, task or
 * field, or a value that does not parse, falls back to the default, and each one is named in a note.
 */
import { GPT2_MODULES, METHOD_INFO } from '../lib/peft/catalog';
import type { FieldSpec, MethodInfo } from '../lib/peft/catalog';
import type { TaskType } from '../lib/data/tasks/registry';
import { findMethod, initialForm } from './method-form';
import type { MethodForm } from './method-form';

export const COMPARE_ROUTE = '#/compare';

export interface CompareSetup {
  model: string;
  task: string;
  /** cliNames, in lane order. */
  methods: string[];
  /** Peak learning rate per method (every method has one, its default until changed). */
  lr: Record<string, number>;
  /** Settings form per method (every method has one, so unticking and ticking again keeps it). */
  forms: Record<string, MethodForm>;
  steps: number;
  /** Seconds of training per lane after which it stops early; 0: steps only. */
  timeBudgetS: number;
  batchSize: number;
  seqLen: number;
  evalEvery: number;
  seed: number;
  equal: boolean;
  /** The equal budget in trainable parameters; null: the engine's default for the model and task. */
  budget: number | null;
  /** Sequence classification: a manual prompt around each input (`"... {text} ..."`); '' for none. */
  template: string;
}

export const DEFAULT_COMPARE_TASK = 'spam';
export const DEFAULT_COMPARE_METHODS = ['lora', 'prompt-tuning', 'ia3'];

/** The scalar settings: URL name, setup key, lower bound (all are whole numbers). */
const NUMBERS = [
  { param: 'steps', key: 'steps', min: 1 },
  { param: 'time', key: 'timeBudgetS', min: 0 },
  { param: 'batch', key: 'batchSize', min: 1 },
  { param: 'seq', key: 'seqLen', min: 1 },
  { param: 'eval', key: 'evalEvery', min: 0 },
  { param: 'seed', key: 'seed', min: 0 },
] as const;

export function defaultSetup(model: string, task: string, taskType: TaskType): CompareSetup {
  return {
    model,
    task,
    methods: DEFAULT_COMPARE_METHODS.filter((m) => findMethod(m)?.taskTypes.includes(taskType)),
    lr: Object.fromEntries(METHOD_INFO.map((m) => [m.cliName, m.defaultLr])),
    forms: Object.fromEntries(METHOD_INFO.map((m) => [m.cliName, initialForm(m, taskType)])),
    // Small enough to finish in a minute or two on wasm on peftlab-s; the user raises it.
    steps: 40,
    timeBudgetS: 0,
    batchSize: 8,
    seqLen: 64,
    evalEvery: 10,
    seed: 0,
    equal: false,
    budget: null,
    template: '',
  };
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => x === b[i]);
  return a === b;
}

function writeField(spec: FieldSpec, v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (spec.type === 'bool') return v ? '1' : '0';
  if (spec.type === 'modules') return Array.isArray(v) ? v.join(',') : '';
  return String(v);
}

/** A field's value from its URL text, or an Error saying why it does not fit. */
function readField(spec: FieldSpec, s: string): unknown {
  switch (spec.type) {
    case 'int':
    case 'number': {
      if ((s === 'null' || s === '') && spec.nullable) return null;
      const n = Number(s);
      if (s.trim() === '' || !Number.isFinite(n)) return new Error(`"${s}" is not a number`);
      if (spec.type === 'int' && !Number.isInteger(n)) return new Error(`"${s}" is not a whole number`);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max))
        return new Error(`${n} is outside ${spec.min ?? '-∞'}..${spec.max ?? '∞'}`);
      return n;
    }
    case 'bool':
      if (s === '1' || s === 'true') return true;
      if (s === '0' || s === 'false') return false;
      return new Error(`"${s}" is not 1 or 0`);
    case 'enum':
      return spec.options?.includes(s) ? s : new Error(`"${s}" is not one of ${spec.options?.join(', ')}`);
    case 'text':
      return s === 'null' || s === '' ? null : s;
    case 'modules': {
      const ids = s === '' ? [] : s.split(',');
      const known = GPT2_MODULES.map((m) => m.id);
      const bad = ids.filter((id) => !known.includes(id));
      if (bad.length) return new Error(`unknown module ${bad.join(', ')} (one of ${known.join(', ')})`);
      return known.filter((id) => ids.includes(id));
    }
  }
}

/** The query for a set-up: only what differs from `defaultSetup` for the same model and task. */
export function setupToParams(setup: CompareSetup, taskType: TaskType): URLSearchParams {
  const d = defaultSetup(setup.model, setup.task, taskType);
  const p = new URLSearchParams();
  p.set('model', setup.model);
  p.set('task', setup.task);
  p.set('methods', setup.methods.join(','));
  for (const { param, key } of NUMBERS) if (setup[key] !== d[key]) p.set(param, String(setup[key]));
  if (setup.equal) {
    p.set('equal', '1');
    if (setup.budget !== null) p.set('budget', String(setup.budget));
  }
  if (setup.template) p.set('template', setup.template);
  for (const m of setup.methods) {
    const info = findMethod(m);
    if (!info) continue;
    if (setup.lr[m] !== info.defaultLr && setup.lr[m] !== undefined) p.set(`lr.${m}`, String(setup.lr[m]));
    const form = setup.forms[m] ?? {};
    const def = d.forms[m] ?? {};
    for (const spec of info.fields) {
      if (!sameValue(form[spec.field], def[spec.field]))
        p.set(`cfg.${m}.${spec.field}`, writeField(spec, form[spec.field]));
    }
  }
  return p;
}

export interface ParsedSetup {
  setup: CompareSetup;
  /** What in the link was not understood and fell back to a default, one sentence each. */
  notes: string[];
}

export interface SetupContext {
  /** Known model ids (the first is the default). */
  models: readonly string[];
  /** The task type of a known task id, undefined for an unknown one. */
  taskType(id: string): TaskType | undefined;
}

/** A set-up from a hash query; anything that does not fit falls back to the default, with a note. */
export function paramsToSetup(p: URLSearchParams, ctx: SetupContext): ParsedSetup {
  const notes: string[] = [];
  let model = p.get('model') ?? ctx.models[0] ?? '';
  if (!ctx.models.includes(model)) {
    notes.push(`unknown model "${model}": using ${ctx.models[0]}`);
    model = ctx.models[0] ?? '';
  }
  let task = p.get('task') ?? DEFAULT_COMPARE_TASK;
  let taskType = ctx.taskType(task);
  if (!taskType) {
    notes.push(`unknown task "${task}": using ${DEFAULT_COMPARE_TASK}`);
    task = DEFAULT_COMPARE_TASK;
    taskType = ctx.taskType(task) ?? 'SEQ_CLS';
  }
  const setup = defaultSetup(model, task, taskType);

  const methods = p.get('methods');
  if (methods !== null) {
    const picked: string[] = [];
    for (const m of methods.split(',').filter((x) => x !== '')) {
      const info = findMethod(m);
      if (!info) notes.push(`unknown method "${m}" left out`);
      else if (!info.taskTypes.includes(taskType))
        notes.push(`${info.label} does not train ${task}: left out`);
      else if (!picked.includes(m)) picked.push(m);
    }
    setup.methods = picked;
  }

  for (const { param, key, min } of NUMBERS) {
    const s = p.get(param);
    if (s === null) continue;
    const n = Number(s);
    if (s.trim() === '' || !Number.isSafeInteger(n) || n < min)
      notes.push(`${param}=${s} is not a whole number ≥ ${min}: using ${setup[key]}`);
    else setup[key] = n;
  }

  setup.equal = p.get('equal') === '1' || p.get('equal') === 'true';
  const budget = p.get('budget');
  if (budget !== null) {
    const n = Number(budget);
    if (!Number.isSafeInteger(n) || n < 1)
      notes.push(`budget=${budget} is not a positive whole number: using the default`);
    else setup.budget = n;
  }

  const template = p.get('template');
  if (template !== null && template !== '') {
    if (taskType !== 'SEQ_CLS') notes.push(`a prompt template applies to classification only: left out`);
    else if (template.split('{text}').length !== 2)
      notes.push(`template "${template}" needs exactly one {text} where the input goes: left out`);
    else setup.template = template;
  }

  for (const [key, value] of p) {
    const lr = /^lr\.(.+)$/.exec(key);
    if (lr) {
      const info = findMethod(lr[1]!);
      const n = Number(value);
      if (!info) notes.push(`${key}: unknown method`);
      else if (value.trim() === '' || !Number.isFinite(n) || n <= 0)
        notes.push(`${key}=${value} is not a positive number: using ${info.defaultLr}`);
      else setup.lr[info.cliName] = n;
      continue;
    }
    const cfg = /^cfg\.([^.]+)\.(.+)$/.exec(key);
    if (!cfg) continue;
    const info: MethodInfo | undefined = findMethod(cfg[1]!);
    const spec = info?.fields.find((f) => f.field === cfg[2]);
    if (!info || !spec) {
      notes.push(`${key}: ${info ? `${info.label} has no field "${cfg[2]}"` : 'unknown method'}`);
      continue;
    }
    const v = readField(spec, value);
    if (v instanceof Error) notes.push(`${key}: ${v.message}; using the default`);
    else setup.forms[info.cliName]![spec.field] = v;
  }
  return { setup, notes };
}
