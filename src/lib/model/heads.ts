/**
 * Task heads over the decoder's final hidden states [B, T, C]:
 * - CAUSAL_LM: logits = h @ wte^T (GPT2LMHeadModel, tied weights);
 * - SEQ_CLS: GPT2ForSequenceClassification's `score`, Linear(n_embd, num_labels, bias=False) on every
 *   position, then the logits of each row's last non-padding token are pooled;
 * - TOKEN_CLS: GPT2ForTokenClassification's `classifier`, dropout then Linear(n_embd, num_labels)
 *   with bias on every token. The dropout is HF's classifier_dropout, else resid_pdrop: 0 for our
 *   models, so there is none here.
 * The Llama family's (LlamaForSequenceClassification, LlamaForTokenClassification: transformers'
 * GenericFor*Classification) are the same two heads, except that the token head is named `score`
 * too (with bias). Its dropout defaults to 0.1 in training (classifier_dropout, else 0.1); we train
 * it without, as GPT-2's, so evaluation logits are HF's and training differs by that dropout.
 * Classification heads are not part of the frozen base: one is made per run (or per loaded
 * adapter) and trains in full, as PEFT's `modules_to_save` does.
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderModel } from './decoder';
import type { ModelFamily } from './family';
import { isFrozen, matmul, matmulFrozen, newVariable } from './ops';
import { InternalError, PeftConfigError } from '../errors';

/** LM logits for hidden [B, T, C] -> [B, T, V]. */
export function lmLogits(model: DecoderModel, hidden: tf.Tensor3D): tf.Tensor3D {
  const [B, T, C] = hidden.shape;
  const x = tf.reshape(hidden, [B * T, C]) as tf.Tensor2D;
  // The cached wte^T is a plain tensor, not a frozen variable, so matmul would take it for a
  // trainable one and compute a [C, V] weight gradient nobody uses: say it is frozen.
  // The head as stored ([V, C]) is the transpose the backward needs: no transpose per step.
  const head = model.w(model.lmHeadKey) as tf.Tensor2D;
  const logits = isFrozen(head) ? matmulFrozen(x, model.lmHeadT(), head) : matmul(x, model.lmHeadT()); // [B*T, V]
  return tf.reshape(logits, [B, T, model.config.vocabSize]) as tf.Tensor3D;
}

export type ClsTask = 'SEQ_CLS' | 'TOKEN_CLS';

/** HF's module name of each task's head, as its state dict spells it. */
export const HEAD_MODULE = { SEQ_CLS: 'score', TOKEN_CLS: 'classifier' } as const;
export type HeadModule = (typeof HEAD_MODULE)[ClsTask];

/** The head's module name in a family's HF class: the Llama family names both heads `score`. */
export function headModule(family: ModelFamily, task: ClsTask): HeadModule {
  return family === 'gpt2' ? HEAD_MODULE[task] : 'score';
}

/**
 * What classification needs of a head: a trained linear one (ClsHead) or a verbalizer that reads
 * label words off the frozen LM head (VerbalizerHead).
 */
export interface TaskHead {
  readonly task: ClsTask;
  /** HF's module name (`score`, `classifier`), or `verbalizer` for a head with nothing to train. */
  readonly module: HeadModule | 'verbalizer';
  readonly numLabels: number;
  /** Trainable parameters by state-dict name (none for a verbalizer). */
  params(): Map<string, HeadParam>;
  /** The head on every position: hidden [B, T, C] -> logits [B, T, numLabels]. */
  logits(hidden: tf.Tensor3D): tf.Tensor3D;
  dispose(): void;
}

/** One parameter of a head: the variable, and whether the state dict stores it transposed. */
export interface HeadParam {
  variable: tf.Variable;
  transpose: boolean;
}

/** A linear classification head, `score` (no bias) or `classifier` (with bias). */
export class ClsHead implements TaskHead {
  readonly module: HeadModule;
  /** Weight in compute layout [C, numLabels]; HF's nn.Linear stores it [numLabels, C]. */
  readonly weightT: tf.Variable;
  /** [numLabels] for TOKEN_CLS, none for SEQ_CLS. */
  readonly bias: tf.Variable | null;

  /**
   * HF's `_init_weights` for nn.Linear: weight N(0, initializer_range = 0.02), bias zero. `module`
   * is the head's HF name (headModule: GPT-2's by default); TOKEN_CLS heads have a bias either way.
   */
  constructor(
    readonly task: ClsTask,
    readonly nEmbd: number,
    readonly numLabels: number,
    seed: number,
    module: HeadModule = HEAD_MODULE[task],
  ) {
    if (!Number.isInteger(numLabels) || numLabels < 1) {
      // Internal: numLabels is a task's label count; built-in tasks have several and import refuses one.
      throw new InternalError(`numLabels must be a positive integer, got ${numLabels}`);
    }
    this.module = module;
    this.weightT = newVariable(tf.randomNormal([nEmbd, numLabels], 0, 0.02, 'float32', seed), true);
    this.bias = task === 'TOKEN_CLS' ? newVariable(tf.zeros([numLabels]), true) : null;
  }

  /** Parameters by HF state-dict name relative to the model: `score.weight`, `classifier.bias`. */
  params(): Map<string, HeadParam> {
    const m = new Map<string, HeadParam>([
      [`${this.module}.weight`, { variable: this.weightT, transpose: true }],
    ]);
    if (this.bias) m.set(`${this.module}.bias`, { variable: this.bias, transpose: false });
    return m;
  }

  /** The head on every position: hidden [B, T, C] -> logits [B, T, numLabels]. */
  logits(hidden: tf.Tensor3D): tf.Tensor3D {
    const [B, T, C] = hidden.shape;
    let y = matmul(tf.reshape(hidden, [B * T, C]) as tf.Tensor2D, this.weightT as tf.Tensor2D); // [B*T, L]
    if (this.bias) y = tf.add(y, this.bias);
    return tf.reshape(y, [B, T, this.numLabels]) as tf.Tensor3D;
  }

  dispose(): void {
    tf.dispose([this.weightT, ...(this.bias ? [this.bias] : [])]);
  }
}

/**
 * Index of each row's last non-padding token, from a key mask [B * T] (1 = token, 0 = padding).
 * HF finds it from `input_ids != pad_token_id` (the rightmost non-pad token; 0 for a row of only
 * padding); GPT-2 has no pad token and we right-pad with eos, so the mask we build is the source of
 * truth instead: an eos inside the text is a token, not padding.
 */
export function lastTokenIndex(mask: ArrayLike<number>, batch: number, seqLen: number): Int32Array {
  const out = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    for (let t = seqLen - 1; t >= 0; t--) {
      if (mask[b * seqLen + t]! > 0) {
        out[b] = t;
        break;
      }
    }
  }
  return out;
}

/**
 * GPT2ForSequenceClassification: `score` on every position, then each row's logits at `last`
 * (see lastTokenIndex): hidden [B, T, C] -> [B, numLabels]. The pooling is a one-hot product
 * rather than a gather, since gather has no gradient on wasm.
 */
export function seqClsLogits(head: TaskHead, hidden: tf.Tensor3D, last: Int32Array): tf.Tensor2D {
  const [B, T] = hidden.shape;
  const all = head.logits(hidden); // [B, T, L]
  const pick = new Float32Array(B * T);
  for (let b = 0; b < B; b++) pick[b * T + last[b]!] = 1;
  const sel = tf.tensor3d(pick, [B, T, 1]);
  return tf.sum(tf.mul(all, sel), 1) as tf.Tensor2D; // [B, L]
}

/** GPT2ForTokenClassification: hidden [B, T, C] -> [B, T, numLabels] (dropout 0, see above). */
export function tokenClsLogits(head: TaskHead, hidden: tf.Tensor3D): tf.Tensor3D {
  return head.logits(hidden);
}

/**
 * A verbalizer (P-tuning v2's "with verbalizer" ablation; Liu et al. 2022, table 5): each class is a
 * label word, and its logit is the frozen LM head's logit for the word's first token, h @ wte[id]^T,
 * so the head has nothing to train. Label words whose first tokens coincide cannot be told apart.
 */
export class VerbalizerHead implements TaskHead {
  readonly module = 'verbalizer' as const;
  /** wte rows of the label tokens, transposed: [C, numLabels], frozen. */
  private readonly table: tf.Variable;

  constructor(
    readonly task: ClsTask,
    model: DecoderModel,
    readonly tokenIds: readonly number[],
  ) {
    const bad = tokenIds.find((id) => !Number.isInteger(id) || id < 0 || id >= model.config.vocabSize);
    if (bad !== undefined) {
      throw new PeftConfigError(
        `verbalizerTokenIds: token id ${bad} is outside the vocabulary (0..${model.config.vocabSize - 1}): give ids the model's tokenizer makes, or turn the verbalizer off for the linear head`,
      );
    }
    if (new Set(tokenIds).size !== tokenIds.length) {
      throw new PeftConfigError(
        `verbalizer token ids ${JSON.stringify(tokenIds)} repeat: every class needs its own token; give each label word a different first token, or turn the verbalizer off`,
      );
    }
    this.table = newVariable(
      tf.tidy(() => tf.transpose(tf.gather(model.w(model.lmHeadKey), tf.tensor1d([...tokenIds], 'int32')))),
      false,
    );
  }

  get numLabels(): number {
    return this.tokenIds.length;
  }

  params(): Map<string, HeadParam> {
    return new Map();
  }

  logits(hidden: tf.Tensor3D): tf.Tensor3D {
    const [B, T, C] = hidden.shape;
    const y = matmul(tf.reshape(hidden, [B * T, C]) as tf.Tensor2D, this.table as tf.Tensor2D); // [B*T, L]
    return tf.reshape(y, [B, T, this.numLabels]) as tf.Tensor3D;
  }

  dispose(): void {
    this.table.dispose();
  }
}

/**
 * The first token of " " + word for each class (GPT-2 words follow a space), refusing words that
 * share a first token, since the verbalizer could not tell those classes apart.
 */
export function verbalizerTokenIds(encode: (text: string) => number[], words: readonly string[]): number[] {
  const ids = words.map((w) => {
    const t = encode(` ${w}`);
    if (t.length === 0) {
      throw new PeftConfigError(
        `verbalizer word ${JSON.stringify(w)} has no tokens: give the label a word, or turn the verbalizer off for the linear head`,
      );
    }
    return t[0]!;
  });
  ids.forEach((id, i) => {
    const j = ids.indexOf(id);
    if (j !== i) {
      throw new PeftConfigError(
        `verbalizer words ${JSON.stringify(words[j])} and ${JSON.stringify(words[i])} start with the same token (${id}): the LM head cannot tell them apart; use the linear head`,
      );
    }
  });
  return ids;
}
