/**
 * The shapes every PEFT method shares. A method is one of four kinds, and the trainer switches on
 * the kind, never on a method's name (ARCHITECTURE.md, habit 1):
 * - inject: hooks around named linear layers (LoRA, AdaLoRA, IA3);
 * - prompt: virtual token embeddings prepended to the input (prompt tuning, P-tuning);
 * - prefix: past keys/values for every layer (prefix tuning, P-tuning v2);
 * - full: the base weights themselves train.
 */
import type * as tf from '@tensorflow/tfjs';
import type { DecoderModel, LayerKV } from '../model/decoder';
import type { TaskHead } from '../model/heads';
import type { MethodInfo } from './method-info';
import type { TaskType } from '../data/tasks/registry';

/**
 * PEFT's PeftType names; FULL is ours (full fine-tuning has no PEFT type). Open to other names, so a
 * method described outside this folder (a test's, a later one's) brings its own without editing this.
 */
export type PeftType =
  'LORA' | 'ADALORA' | 'IA3' | 'PROMPT_TUNING' | 'P_TUNING' | 'PREFIX_TUNING' | 'FULL' | (string & {});
export type MethodKind = 'inject' | 'prompt' | 'prefix' | 'full';

/** Fields every PEFT config carries (PeftConfig in peft/config.py). */
export interface PeftConfigBase {
  peftType: PeftType;
  taskType: TaskType;
  baseModelNameOrPath: string | null;
  inferenceMode: boolean;
}

/** An adapter's training-time state: named float32 arrays with their shapes, and plain JSON. */
export interface AdapterTrainingState {
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  json: Record<string, unknown>;
}

/**
 * A classification head's fields, which any method's config may carry on a SEQ_CLS/TOKEN_CLS task
 * (task-head.ts): classify with the label words' LM-head logits instead of a trained linear head.
 */
// A type literal, not an interface: requests carrying it stay assignable to Record<string, unknown>.
export type VerbalizerFields = {
  verbalizer?: boolean;
  /** The label words' token ids, filled in when the verbalizer is made. */
  verbalizerTokenIds?: number[] | null;
};

/** What the trainer hands a method after each optimizer step (AdaLoRA's budget lives here). */
export interface StepContext {
  step: number;
  grads: Map<string, tf.Tensor>;
}

export interface RankBudget {
  /** The adapted matrices, as HF names them (e.g. `transformer.h.0.attn.c_attn`). */
  matrices: string[];
  initR: number;
  /** Ranks per matrix, from step 0 (every matrix at initR) to each allocation since. */
  points: { step: number; ranks: number[] }[];
}

interface AdapterCommon<C extends PeftConfigBase> {
  readonly kind: MethodKind;
  readonly config: C;
  /** Trainable variables by their PEFT state-dict key (e.g. `...c_attn.lora_A.weight`). */
  trainable(): Map<string, tf.Variable>;
  /** Tensors to save, by PEFT key, in PEFT's layout (may transpose our compute layout). */
  stateDict(): Promise<Map<string, { shape: number[]; data: Float32Array }>>;
  /** Loads tensors saved by `stateDict` (or by Python PEFT); throws AdapterError on any mismatch. */
  loadStateDict(tensors: Map<string, { shape: number[]; data: Float32Array }>, source: string): void;
  /** Extra loss term (AdaLoRA's orthogonal regulariser); called inside the gradient scope. */
  extraLoss?(): tf.Scalar | null;
  /** Per-step work after the optimizer update (ARCHITECTURE.md habit 1); the trainer awaits it. */
  onStep?(ctx: StepContext): void | Promise<void>;
  /**
   * What onStep has accumulated beyond the weights (AdaLoRA's importance averages and rank pattern),
   * for a checkpoint, so a resumed run continues exactly; `loadTrainingState` puts it back.
   */
  trainingState?(): Promise<AdapterTrainingState>;
  loadTrainingState?(state: AdapterTrainingState): void;
  /**
   * How the rank budget moved (a method whose description has capabilities.rankHistory, as
   * AdaLoRA): the adapted matrices, their starting rank, and the ranks after each allocation.
   */
  rankBudget?(): RankBudget;
  /**
   * Turns the adapter off until the returned function is called, so the base model answers
   * (PEFT's `disable_adapter()` context). Prompt and prefix kinds need nothing: callers pass no decorator.
   */
  disableAdapter(): () => void;
  /** Removes the adapter from the model and frees its tensors. */
  dispose(): void;
  /** The classification head trained and saved with the adapter (PEFT's modules_to_save), if any. */
  readonly head?: TaskHead | null;
  /**
   * Gives the adapter a SEQ_CLS/TOKEN_CLS head: from then on trainable(), stateDict() and
   * loadStateDict() include it (PEFT's modules_to_save), and dispose() frees it.
   */
  attachHead?(head: TaskHead): void;
}

export interface InjectAdapter<C extends PeftConfigBase = PeftConfigBase> extends AdapterCommon<C> {
  readonly kind: 'inject';
  /** Folds the adapter into the base weights (PEFT `merge`); outputs stay the same. */
  merge(): void;
  /** Restores the base weights exactly as they were before `merge`. */
  unmerge(): void;
  readonly merged: boolean;
}

export interface PromptAdapter<C extends PeftConfigBase = PeftConfigBase> extends AdapterCommon<C> {
  readonly kind: 'prompt';
  readonly numVirtualTokens: number;
  /** Virtual token embeddings [B, n, C]. */
  promptEmbeddings(batch: number, training: boolean, seed: number): tf.Tensor3D;
}

export interface PrefixAdapter<C extends PeftConfigBase = PeftConfigBase> extends AdapterCommon<C> {
  readonly kind: 'prefix';
  readonly numVirtualTokens: number;
  /** Past keys/values per layer, each [B, nHead, n, headDim]. */
  pastKeyValues(batch: number, training: boolean, seed: number): LayerKV[];
}

export interface FullAdapter<C extends PeftConfigBase = PeftConfigBase> extends AdapterCommon<C> {
  readonly kind: 'full';
}

export type Adapter = InjectAdapter | PromptAdapter | PrefixAdapter | FullAdapter;

/** What `create` may need beyond the config: PROMPT_TUNING's TEXT init tokenizes its text. */
export interface CreateOptions {
  /** Token ids of a text, with the model's tokenizer. */
  tokenize?: (text: string) => number[];
  /**
   * The adapter is about to receive saved weights (loadAdapter): initialisation that needs more
   * than the config (TEXT init's tokenizer) is skipped, since the weights replace it.
   */
  forLoading?: boolean;
}

/**
 * One registry entry: the method's description (its folder's info.ts, tfjs-free) and the code that
 * builds, checks, counts and converts its adapters.
 */
export interface PeftMethod<C extends PeftConfigBase = PeftConfigBase> extends MethodInfo<C> {
  /** Throws PeftConfigError naming the field and its value; `model` checks fit. */
  validate(config: C, model?: DecoderModel): void;
  /** PEFT's snake_case adapter_config.json <-> our camelCase config. */
  toPeftJson(config: C): Record<string, unknown>;
  fromPeftJson(json: Record<string, unknown>, source: string): C;
  /** Builds the adapter on the model (hooks attached, variables created from the seed). */
  create(model: DecoderModel, config: C, seed: number, opts?: CreateOptions): Adapter;
  /** Trainable parameter count from the formula (checked against the live adapter in tests). */
  countParams(model: DecoderModel, config: C): number;
}
