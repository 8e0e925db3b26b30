/**
 * What a method says about itself without TensorFlow.js (each method folder's info.ts fills one):
 * names, kind, task types, PEFT's defaults, the settings a person may change (a form in the UI,
 * flags in the CLI), a learning rate, its size knob for equal-budget races, its memory-ledger
 * profile and what can be read back from it. The code elsewhere asks these facts instead of
 * switching on a method's name. Shared field specs and size knobs live here too.
 */
import type { DecoderConfig, ModelFamily } from '../model/family';
import type { TaskType } from '../data/tasks/registry';
import type { MethodKind, PeftConfigBase, PeftType } from './types';

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

/**
 * The one setting an equal-budget race turns to size a method to a parameter budget (LoRA's r, the
 * number of virtual tokens): counts must grow with it, so the scan can stop once past the target.
 */
export interface SizeKnob {
  field: string;
  /** The largest value worth trying on this model at this sequence length. */
  max(model: DecoderConfig, seqLen: number): number;
  /** Other fields that follow the knob (AdaLoRA's targetR keeps its ratio to initR). */
  with?(value: number, defaults: Record<string, unknown>): Record<string, unknown>;
}

/**
 * Which fitted tensor counts of the memory ledger (race/ledger.ts ACTIVATION_COUNTS) describe a
 * step of the method: its structure (an encoder's shape, where its gradient enters the model).
 */
export type LedgerProfile =
  | 'lora'
  | 'dora'
  | 'adalora'
  | 'ia3'
  | 'ln-tuning'
  | 'vera'
  | 'loha'
  | 'lokr'
  | 'oft'
  | 'oft-exact'
  | 'boft'
  | 'prompt-table'
  | 'prompt-mlp'
  | 'prompt-lstm'
  | 'prefix-table'
  | 'prefix-mlp'
  | 'full';

/** What the memory ledger needs of a method beyond its adapter's live variables. */
export interface LedgerFacts<C extends PeftConfigBase = PeftConfigBase> {
  profile(config: C): LedgerProfile;
  /** The rank of an inject method's low-rank activations (LoRA's r); absent: none. */
  rank?(config: C): number;
}

/** What can be read back from a trained adapter beyond its weights. */
export interface Capabilities {
  /** A rank budget that moves during training (AdaLoRA): the adapter has `rankBudget()`. */
  rankHistory?: boolean;
  /** Soft prompts in the input, readable as their nearest vocabulary tokens. */
  nearestTokens?: boolean;
  /**
   * targetModules name the model's norms, not its linear layers (LN tuning): an opened adapter's
   * targets are checked by the method's own validation instead of against the linear layers.
   */
  targetsNorms?: boolean;
}

export interface MethodInfo<C extends PeftConfigBase = PeftConfigBase> {
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
  /** PEFT's defaults for this method. */
  defaults(taskType: TaskType): C;
  fields: FieldSpec[];
  /** Where the Lab's form starts instead of PEFT's defaults, field by field (absent: PEFT's). */
  labDefaults?: Record<string, unknown>;
  /**
   * The config with its values as PEFT's config class takes them, where the Lab's differ (LoRA's
   * form and flags give init_lora_weights's default as the option "true"); absent: as they are.
   */
  peftValues?(config: C): C;
  /**
   * Why PEFT 0.21 refuses this config though the Lab trains it (an exported Python project would
   * fail there), saying what to export instead; absent or null: PEFT takes it.
   */
  peftRefusal?(config: C): string | null;
  /** The size knob under a config (prefix tuning's depends on prefixProjection); null: fixed size. */
  sizeKnob(config: C): SizeKnob | null;
  ledger: LedgerFacts<C>;
  capabilities: Capabilities;
}

/**
 * The peftRefusal of a method whose PEFT 0.21 class takes nn.Linear layers only (LoHa, LoKr, OFT,
 * BOFT): GPT-2's c_attn / c_proj / c_fc are Conv1D layers, which it refuses.
 */
export function conv1dRefusal(
  label: string,
): (config: PeftConfigBase & { targetModules?: unknown }) => string | null {
  return (c) => {
    const targets = c.targetModules;
    if (!Array.isArray(targets) || !targets.some((t) => /(^|\.)c_(attn|proj|fc)$/.test(String(t))))
      return null;
    return `${label} on GPT-2's Conv1D layers (${targets.join(', ')}) is refused by PEFT 0.21, whose ${label} takes nn.Linear layers and not Conv1D: export it on a Llama-family model, or export LoRA for GPT-2`;
  };
}

/** GPT-2's linear layers as targetModules entries, with what each one is. */
export const GPT2_MODULES: readonly { id: string; label: string }[] = [
  { id: 'c_attn', label: 'attn.c_attn (query, key, value)' },
  { id: 'attn.c_proj', label: 'attn.c_proj (attention output)' },
  { id: 'mlp.c_fc', label: 'mlp.c_fc (MLP up)' },
  { id: 'mlp.c_proj', label: 'mlp.c_proj (MLP down)' },
];

/** The Llama family's linear layers (Llama, Qwen2, Mistral) as targetModules entries, PEFT's names. */
export const LLAMA_MODULES: readonly { id: string; label: string }[] = [
  { id: 'q_proj', label: 'self_attn.q_proj (query)' },
  { id: 'k_proj', label: 'self_attn.k_proj (key)' },
  { id: 'v_proj', label: 'self_attn.v_proj (value)' },
  { id: 'o_proj', label: 'self_attn.o_proj (attention output)' },
  { id: 'gate_proj', label: 'mlp.gate_proj (SwiGLU gate)' },
  { id: 'up_proj', label: 'mlp.up_proj (MLP up)' },
  { id: 'down_proj', label: 'mlp.down_proj (MLP down)' },
];

/** A family's linear layers as targetModules entries (GPT-2's, or the Llama family's). */
export function familyModules(family: ModelFamily): readonly { id: string; label: string }[] {
  return family === 'gpt2' ? GPT2_MODULES : LLAMA_MODULES;
}

export const VIRTUAL_TOKENS: FieldSpec = {
  field: 'numVirtualTokens',
  doc: 'Number of virtual tokens',
  type: 'int',
  min: 1,
  max: 128,
};
export const LORA_ALPHA: FieldSpec = {
  field: 'loraAlpha',
  doc: 'Scale of the update (alpha / r)',
  type: 'number',
  min: 0.01,
};
export const LORA_DROPOUT: FieldSpec = {
  field: 'loraDropout',
  doc: 'Dropout on the adapter input while training',
  type: 'number',
  min: 0,
  max: 0.9,
  step: 0.05,
};
export const TARGETS: FieldSpec = {
  field: 'targetModules',
  doc: 'Linear layers that get an adapter',
  type: 'modules',
};
export const PREFIX_FIELDS: FieldSpec[] = [
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

/** The number of virtual tokens, up to what the positions left by the sequence hold. */
export const VIRTUAL_TOKENS_KNOB: SizeKnob = {
  field: 'numVirtualTokens',
  max: (model, seqLen) => Math.max(1, model.nPositions - seqLen),
};
/** A prompt encoder's hidden size. */
export const ENCODER_HIDDEN_KNOB: SizeKnob = { field: 'encoderHiddenSize', max: () => 4096 };
