/**
 * The adapters of the prompt-learning methods: an encoder (encoders.ts) makes n virtual tokens, and
 * the kind decides where they go: `prompt` prepends them to the input embeddings (prompt tuning,
 * P-tuning), `prefix` reshapes them into every layer's past keys and values (prefix tuning,
 * P-tuning v2). Saved as PEFT saves prompt learning (peft/utils/save_and_load.py): one tensor,
 * `prompt_embeddings` [n, outDim], the encoder's output, so a saved adapter no longer needs its
 * encoder (P-tuning's "after training only the encoded prompts need keeping"). A classification
 * head is saved beside it as PEFT's modules_to_save.
 */
import * as tf from '@tensorflow/tfjs';
import type { LayerKV } from '../../model/gpt2';
import type { TaskHead } from '../../model/heads';
import { Rng } from '../../util/rng';
import { AdapterMismatchError } from '../../errors';
import type { PromptAdapter, PrefixAdapter } from '../types';
import type { StateDict } from '../state';
import { checkHeadFits, checkNoExtraKeys, headKeys, headState, loadHeadState, readForState } from '../state';
import type { PromptEncoderNet } from './encoders';
import { tableEncoder } from './encoders';
import type { PromptLearningConfig } from './config';

/** get_peft_model_state_dict's key for every prompt-learning method. */
export const PROMPT_KEY = 'prompt_embeddings';
/**
 * Where a prompt-learning model's head lives in PEFT's state dict: PeftModel wraps the transformers
 * model directly as `base_model` (no tuner wrapper), so `base_model.score.weight`, where LoRA's is
 * `base_model.model.score.weight`.
 */
export const PROMPT_HEAD_PREFIX = 'base_model.';

abstract class PromptLearningBase<C extends PromptLearningConfig> {
  protected encoder: PromptEncoderNet;
  private clsHead: TaskHead | null = null;

  constructor(
    readonly config: C,
    encoder: PromptEncoderNet,
  ) {
    this.encoder = encoder;
  }

  get numVirtualTokens(): number {
    return this.encoder.n;
  }

  get head(): TaskHead | null {
    return this.clsHead;
  }

  attachHead(head: TaskHead): void {
    this.clsHead = checkHeadFits(this.clsHead, head, this.config.taskType, 'prompt-learning adapter');
  }

  trainable(): Map<string, tf.Variable> {
    const m = new Map<string, tf.Variable>();
    for (const [k, v] of this.encoder.variables) m.set(`prompt_encoder.${k}`, v);
    for (const [k, p] of headKeys(this.clsHead, PROMPT_HEAD_PREFIX)) m.set(k, p.variable);
    return m;
  }

  /** The encoded virtual tokens [n, outDim], as saved. */
  encoded(training = false, seed = 0): tf.Tensor2D {
    return this.encoder.encode(training, seed);
  }

  async stateDict(): Promise<StateDict> {
    const out: StateDict = new Map();
    const enc = tf.tidy(() => tf.clone(this.encoder.encode(false, 0)));
    out.set(PROMPT_KEY, await readForState(enc));
    enc.dispose();
    await headState(out, this.clsHead, PROMPT_HEAD_PREFIX);
    return out;
  }

  /**
   * Loads `prompt_embeddings`: whatever encoder trained them, from now on the table holds them
   * (PEFT loads them into `prompt_encoder.embedding` of an inference-mode encoder the same way).
   */
  loadStateDict(tensors: StateDict, source: string): void {
    const known = new Set([PROMPT_KEY, ...headKeys(this.clsHead, PROMPT_HEAD_PREFIX).keys()]);
    checkNoExtraKeys(tensors, known, source);
    const t = tensors.get(PROMPT_KEY);
    const { n, outDim } = this.encoder;
    if (!t) throw new AdapterMismatchError(`${source}: tensor ${PROMPT_KEY} is missing`, 'missing-keys');
    if (t.shape.length !== 2 || t.shape[0] !== n || t.shape[1] !== outDim) {
      throw new AdapterMismatchError(
        `${source}: tensor ${PROMPT_KEY} has shape [${t.shape}] but this model and config need [${n},${outDim}]; open it on the base model it was made for`,
        'shape',
      );
    }
    loadHeadState(tensors, this.clsHead, PROMPT_HEAD_PREFIX, source);
    const table = tableEncoder(n, outDim, new Rng(0), tf.tensor2d(t.data, [n, outDim]));
    tf.dispose([...this.encoder.variables.values()]);
    this.encoder = table;
  }

  /** Prompt and prefix kinds join the forward only through the decorator: nothing to switch off. */
  disableAdapter(): () => void {
    return () => {};
  }

  dispose(): void {
    tf.dispose([...this.encoder.variables.values()]);
    this.encoder.variables.clear();
    this.clsHead?.dispose();
    this.clsHead = null;
  }
}

/** Soft prompts prepended to the input embeddings (prompt tuning, P-tuning). */
export class SoftPromptAdapter<C extends PromptLearningConfig>
  extends PromptLearningBase<C>
  implements PromptAdapter<C>
{
  readonly kind = 'prompt' as const;

  promptEmbeddings(batch: number, training: boolean, seed: number): tf.Tensor3D {
    const p = this.encoder.encode(training, seed); // [n, d]
    return tf.tile(tf.expandDims(p, 0), [batch, 1, 1]) as tf.Tensor3D; // [B, n, d]
  }
}

/** Keys and values for every layer (prefix tuning, P-tuning v2). */
export class PrefixKvAdapter<C extends PromptLearningConfig>
  extends PromptLearningBase<C>
  implements PrefixAdapter<C>
{
  readonly kind = 'prefix' as const;

  constructor(
    config: C,
    encoder: PromptEncoderNet,
    private readonly nLayer: number,
    private readonly nHead: number,
  ) {
    super(config, encoder);
  }

  /**
   * PEFT's get_prompt: [n, 2 L d] viewed as [n, 2L, H, D], permuted to [2L, H, n, D]; layer i takes
   * row 2i as its keys and 2i + 1 as its values, each repeated over the batch to [B, H, n, D].
   */
  pastKeyValues(batch: number, training: boolean, seed: number): LayerKV[] {
    const n = this.encoder.n;
    const L = this.nLayer;
    const H = this.nHead;
    const D = this.encoder.outDim / (2 * L * H);
    const kv = tf.transpose(tf.reshape(this.encoder.encode(training, seed), [n, 2 * L, H, D]), [1, 2, 0, 3]); // [2L, H, n, D]
    const rows = tf.split(kv, 2 * L, 0) as tf.Tensor4D[]; // each [1, H, n, D]
    const rep = (t: tf.Tensor4D): tf.Tensor4D => tf.tile(t, [batch, 1, 1, 1]); // [B, H, n, D]
    return Array.from({ length: L }, (_, i) => ({ k: rep(rows[2 * i]!), v: rep(rows[2 * i + 1]!) }));
  }
}
