/**
 * What the app, the CLI and the registry say about each method, without TensorFlow.js: names,
 * kind, the task types it supports, PEFT's defaults, a sensible learning rate, and the settings a
 * person may change (rendered as a form by the UI, as flags by the CLI). The registry
 * (registry.ts) adds the implementations; the UI imports this file only.
 */
import { PeftConfigError } from '../errors';
import { adaloraDefaults } from './adalora/config';
import { fullDefaults } from './full/config';
import { ia3Defaults } from './ia3/config';
import { loraDefaults } from './lora/config';
import { pTuningDefaults, ENCODER_TYPES } from './p-tuning/config';
import { prefixTuningDefaults } from './prefix-tuning/config';
import { PROMPT_TUNING_INITS, promptTuningDefaults } from './prompt-tuning/config';
import { pTuningV2Defaults } from './p-tuning-v2/config';
import type { MethodKind, PeftConfigBase, PeftType } from './types';
import type { TaskType } from '../data/tasks/registry';

/** One setting of a method, in PEFT's camelCase name. */
export interface FieldSpec {
  field: string;
  /** One line on what it does. */
  doc: string;
  type: 'int' | 'number' | 'bool' | 'enum' | 'text' | 'modules';
  min?: number;
  max?: number;
  step?: number;
  options?: readonly string[];
  /** null is allowed and means what the placeholder says (e.g. "model width"). */
  nullable?: string;
  /** Shown (and applied) only while another field has this value. */
  when?: { field: string; equals: unknown };
}

export interface MethodInfo {
  /** CLI and URL name. */
  cliName: string;
  label: string;
  /** The peft_type its adapter_config.json carries. */
  peftType: PeftType;
  kind: MethodKind;
  taskTypes: TaskType[];
  /** One line on what it does, shown in the method picker. */
  summary: string;
  /** A learning rate that trains our small models in a few hundred steps (prompt methods need larger ones). */
  defaultLr: number;
  defaults(taskType: TaskType): PeftConfigBase;
  fields: FieldSpec[];
}

/** GPT-2's linear layers as targetModules entries, with what each one is. */
export const GPT2_MODULES: readonly { id: string; label: string }[] = [
  { id: 'c_attn', label: 'attn.c_attn (query, key, value)' },
  { id: 'attn.c_proj', label: 'attn.c_proj (attention output)' },
  { id: 'mlp.c_fc', label: 'mlp.c_fc (MLP up)' },
  { id: 'mlp.c_proj', label: 'mlp.c_proj (MLP down)' },
];

const VIRTUAL_TOKENS: FieldSpec = {
  field: 'numVirtualTokens',
  doc: 'Number of virtual tokens',
  type: 'int',
  min: 1,
  max: 128,
};
const LORA_ALPHA: FieldSpec = {
  field: 'loraAlpha',
  doc: 'Scale of the update (alpha / r)',
  type: 'number',
  min: 0.01,
};
const LORA_DROPOUT: FieldSpec = {
  field: 'loraDropout',
  doc: 'Dropout on the adapter input while training',
  type: 'number',
  min: 0,
  max: 0.9,
  step: 0.05,
};
const TARGETS: FieldSpec = {
  field: 'targetModules',
  doc: 'Linear layers that get an adapter',
  type: 'modules',
};
const PREFIX_FIELDS: FieldSpec[] = [
  VIRTUAL_TOKENS,
  {
    field: 'prefixProjection',
    doc: 'Reparameterise the prefix with an MLP (Linear, Tanh, Linear)',
    type: 'bool',
  },
  {
    field: 'encoderHiddenSize',
    doc: 'Hidden size of the MLP',
    type: 'int',
    min: 1,
    nullable: 'model width',
    when: { field: 'prefixProjection', equals: true },
  },
];

export const METHOD_INFO: readonly MethodInfo[] = [
  {
    cliName: 'lora',
    label: 'LoRA',
    peftType: 'LORA',
    kind: 'inject',
    taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
    summary: 'Low-rank matrices A, B beside chosen linear layers; the frozen weights never change.',
    defaultLr: 3e-3,
    defaults: loraDefaults,
    fields: [
      { field: 'r', doc: 'Rank of the update B·A', type: 'int', min: 1, max: 256 },
      LORA_ALPHA,
      LORA_DROPOUT,
      { field: 'useRslora', doc: 'Scale by alpha / sqrt(r) instead (rsLoRA)', type: 'bool' },
      TARGETS,
    ],
  },
  {
    cliName: 'adalora',
    label: 'AdaLoRA',
    peftType: 'ADALORA',
    kind: 'inject',
    taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
    summary: 'LoRA in SVD form P·Λ·Q whose rank budget moves to the matrices that matter most.',
    defaultLr: 5e-3,
    defaults: adaloraDefaults,
    fields: [
      { field: 'initR', doc: 'Starting rank of every matrix', type: 'int', min: 1, max: 256 },
      { field: 'targetR', doc: 'Average rank the budget shrinks to', type: 'int', min: 1, max: 256 },
      { field: 'tinit', doc: 'Warm-up steps before the budget shrinks', type: 'int', min: 0 },
      { field: 'tfinal', doc: 'Final steps at the target budget', type: 'int', min: 0 },
      { field: 'deltaT', doc: 'Steps between budget allocations', type: 'int', min: 1 },
      { field: 'beta1', doc: 'Smoothing of the sensitivity', type: 'number', min: 0, max: 0.999, step: 0.01 },
      { field: 'beta2', doc: 'Smoothing of the uncertainty', type: 'number', min: 0, max: 0.999, step: 0.01 },
      {
        field: 'orthRegWeight',
        doc: 'Weight of the orthogonal regulariser',
        type: 'number',
        min: 0,
        step: 0.1,
      },
      LORA_ALPHA,
      LORA_DROPOUT,
      TARGETS,
    ],
  },
  {
    cliName: 'ia3',
    label: 'IA3',
    peftType: 'IA3',
    kind: 'inject',
    taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
    summary: 'Learned vectors that rescale keys, values and the feed-forward activations.',
    defaultLr: 1e-2,
    defaults: ia3Defaults,
    fields: [
      TARGETS,
      {
        field: 'feedforwardModules',
        doc: 'Targets whose input is scaled (feed-forward layers)',
        type: 'modules',
      },
    ],
  },
  {
    cliName: 'prompt-tuning',
    label: 'Prompt tuning',
    peftType: 'PROMPT_TUNING',
    kind: 'prompt',
    taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
    summary: 'Soft token embeddings prepended to the input; nothing inside the model changes.',
    defaultLr: 3e-2,
    defaults: promptTuningDefaults,
    fields: [
      VIRTUAL_TOKENS,
      {
        field: 'promptTuningInit',
        doc: 'Start from random vectors, a text, or random vocabulary tokens',
        type: 'enum',
        options: PROMPT_TUNING_INITS,
      },
      {
        field: 'promptTuningInitText',
        doc: 'Text whose token embeddings start the prompt',
        type: 'text',
        when: { field: 'promptTuningInit', equals: 'TEXT' },
      },
    ],
  },
  {
    cliName: 'prefix-tuning',
    label: 'Prefix tuning',
    peftType: 'PREFIX_TUNING',
    kind: 'prefix',
    taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
    summary: 'Trained keys and values prepended at every attention layer, optionally through an MLP.',
    defaultLr: 1e-2,
    defaults: prefixTuningDefaults,
    fields: PREFIX_FIELDS,
  },
  {
    cliName: 'p-tuning',
    label: 'P-tuning',
    peftType: 'P_TUNING',
    kind: 'prompt',
    taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
    summary: 'Virtual token embeddings produced by a small prompt encoder (MLP or LSTM).',
    defaultLr: 1e-2,
    defaults: pTuningDefaults,
    fields: [
      VIRTUAL_TOKENS,
      {
        field: 'encoderReparameterizationType',
        doc: 'Prompt encoder',
        type: 'enum',
        options: ENCODER_TYPES,
      },
      {
        field: 'encoderHiddenSize',
        doc: 'Hidden size of the encoder',
        type: 'int',
        min: 1,
        nullable: 'model width',
      },
      {
        field: 'encoderNumLayers',
        doc: 'LSTM layers',
        type: 'int',
        min: 1,
        max: 4,
        when: { field: 'encoderReparameterizationType', equals: 'LSTM' },
      },
      {
        field: 'encoderDropout',
        doc: 'Dropout between LSTM layers',
        type: 'number',
        min: 0,
        max: 0.9,
        step: 0.05,
        when: { field: 'encoderReparameterizationType', equals: 'LSTM' },
      },
    ],
  },
  {
    cliName: 'p-tuning-v2',
    label: 'P-tuning v2',
    peftType: 'PREFIX_TUNING',
    kind: 'prefix',
    taskTypes: ['SEQ_CLS', 'TOKEN_CLS'],
    summary:
      'Deep prompts at every layer plus a linear head (or a verbalizer), for classification and tagging.',
    defaultLr: 1e-2,
    defaults: pTuningV2Defaults,
    fields: [
      ...PREFIX_FIELDS,
      {
        field: 'verbalizer',
        doc: "Classify with the label words' LM-head logits instead of a trained linear head",
        type: 'bool',
      },
    ],
  },
  {
    cliName: 'full',
    label: 'Full fine-tuning',
    peftType: 'FULL',
    kind: 'full',
    taskTypes: ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'],
    summary: 'Every weight of the model trains: the baseline the others are measured against.',
    // Every weight moves: a tenth of LoRA's rate keeps small pretrained models from forgetting.
    defaultLr: 3e-4,
    defaults: fullDefaults,
    fields: [],
  },
];

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
