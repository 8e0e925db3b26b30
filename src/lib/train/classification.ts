/**
 * Sequence and token classification through the model, an adapter and a head (model/heads.ts):
 * the loss of one padded batch (HF's CrossEntropyLoss, -100 ignored), a BatchSource for the
 * Trainer, and evaluation with the task metrics. Readbacks are async only (WebGPU).
 */
import * as tf from '@tensorflow/tfjs';
import type { ClsBatch, EncodedSet } from '../data/cls-data';
import { evalClsBatches, padBatch, sampleIndices } from '../data/cls-data';
import { IGNORE_INDEX } from '../data/tasks/align';
import { accuracy, macroF1, tokenAccuracy } from '../data/tasks/metrics';
import type { ForwardOptions, DecoderModel } from '../model/decoder';
import type { TaskHead } from '../model/heads';
import { lastTokenIndex, seqClsLogits, tokenClsLogits } from '../model/heads';
import { crossEntropy } from '../model/ops';
import { adapterDecorator, virtualPositions } from '../peft/forward';
import type { Adapter } from '../peft/types';
import type { BatchParts, BatchSource } from './trainer';
import { InternalError } from '../errors';

/** The first layer's inputs for a padded batch: ids, key mask, and the adapter's virtual tokens. */
export function clsInputs(
  model: DecoderModel,
  adapter: Adapter | null,
  b: ClsBatch,
  training: boolean,
  seed: number,
): ForwardOptions {
  const ids = tf.tensor2d(b.ids, [b.batch, b.seqLen], 'int32');
  const attentionMask = tf.tensor2d(b.mask, [b.batch, b.seqLen]);
  return adapterDecorator(model, adapter, training, seed)({ ids, attentionMask, training, seed }, true);
}

/**
 * Logits from ln_f's output [B, n + T, C]: [B, numLabels] for SEQ_CLS (the last real token of each
 * row), [B, T, numLabels] for TOKEN_CLS. Prompt adapters' virtual positions are dropped first.
 */
export function clsLogitsFromHidden(
  adapter: Adapter | null,
  head: TaskHead,
  b: ClsBatch,
  hidden: tf.Tensor3D,
): tf.Tensor {
  if (head.task !== b.task) throw new InternalError(`a ${head.task} head cannot score a ${b.task} batch`);
  const n = virtualPositions(adapter);
  const h = n > 0 ? (tf.slice(hidden, [0, n, 0], [-1, -1, -1]) as tf.Tensor3D) : hidden; // [B, T, C]
  return b.task === 'SEQ_CLS'
    ? seqClsLogits(head, h, lastTokenIndex(b.mask, b.batch, b.seqLen)) // [B, L]
    : tokenClsLogits(head, h); // [B, T, L]
}

/** Logits of one batch through the model, the adapter and the head (see clsLogitsFromHidden). */
export function clsLogits(
  model: DecoderModel,
  adapter: Adapter | null,
  head: TaskHead,
  b: ClsBatch,
  training: boolean,
  seed: number,
): tf.Tensor {
  if (head.task !== b.task) throw new InternalError(`a ${head.task} head cannot score a ${b.task} batch`);
  const hidden = model.forward(clsInputs(model, adapter, b, training, seed)).hidden;
  return clsLogitsFromHidden(adapter, head, b, hidden);
}

/** The two halves of a classification batch's loss (see BatchParts). */
export function clsParts(b: ClsBatch, head?: TaskHead): BatchParts {
  return {
    inputs: (model, adapter, training, seed) => clsInputs(model, adapter, b, training, seed),
    lossFromHidden: (_model, adapter, hidden, training) => {
      const h = headOf(adapter, head);
      const logits = clsLogitsFromHidden(adapter, h, b, hidden);
      const loss = crossEntropy(tf.reshape(logits, [-1, h.numLabels]) as tf.Tensor2D, b.labels);
      const extra = training ? adapter?.extraLoss?.() : null;
      return extra ? tf.add(loss, extra) : loss;
    },
  };
}

/** Mean cross-entropy of one batch (labels -100 ignored), plus the adapter's extra loss in training. */
export function clsBatchLoss(
  model: DecoderModel,
  adapter: Adapter | null,
  head: TaskHead,
  b: ClsBatch,
  training: boolean,
  seed: number,
): tf.Scalar {
  const parts = clsParts(b, head);
  const hidden = model.forward(parts.inputs(model, adapter, training, seed)).hidden;
  return parts.lossFromHidden(model, adapter, hidden, training);
}

/** The adapter's head, or a message that says how to give it one. */
function headOf(adapter: Adapter | null, head?: TaskHead): TaskHead {
  const h = head ?? adapter?.head;
  if (!h)
    throw new InternalError('classification needs a head: call adapter.attachHead(new ClsHead(...)) first');
  return h;
}

/**
 * Classification examples for a Trainer: each step draws batchSize x accum examples uniformly with
 * replacement from the trainer's RNG, padded per micro-batch. The head is the adapter's own
 * (attachHead) unless one is given.
 */
export function clsBatchSource(set: EncodedSet, head?: TaskHead): BatchSource {
  return {
    draw(rng, B, accum) {
      const idx = sampleIndices(set.examples.length, B * accum, rng);
      return Array.from({ length: accum }, (_, micro) => {
        const batch = padBatch(set, idx.slice(micro * B, (micro + 1) * B));
        let tokens = 0;
        for (const m of batch.mask) tokens += m;
        return {
          tokens,
          loss: (model, adapter, training, seed) =>
            clsBatchLoss(model, adapter, headOf(adapter, head), batch, training, seed),
          parts: clsParts(batch, head),
        };
      });
    },
  };
}

export interface ClsEvaluation {
  /** Mean cross-entropy over examples (SEQ_CLS) or labelled tokens (TOKEN_CLS). */
  loss: number;
  /** SEQ_CLS: accuracy over examples; TOKEN_CLS: token accuracy (tokens labelled -100 skipped). */
  accuracy: number;
  /** Macro-F1 over the same predictions. */
  macroF1: number;
  /** TOKEN_CLS only: equal to accuracy, under the task's metric name. */
  tokenAccuracy?: number;
  /** Predictions and gold labels that were scored (label ids). */
  predictions: Int32Array;
  gold: Int32Array;
}

/** Scores a tokenized set in order, batchSize examples at a time. */
export async function evaluateClassification(
  model: DecoderModel,
  adapter: Adapter | null,
  head: TaskHead,
  set: EncodedSet,
  opts: { batchSize?: number } = {},
): Promise<ClsEvaluation> {
  const preds: number[] = [];
  const gold: number[] = [];
  let lossSum = 0;
  let lossCount = 0;
  for (const b of evalClsBatches(set, opts.batchSize ?? 16)) {
    const { argmax, loss } = tf.tidy(() => {
      const logits = clsLogits(model, adapter, head, b, false, 0);
      const flat = tf.reshape(logits, [-1, head.numLabels]) as tf.Tensor2D;
      return { argmax: tf.argMax(flat, -1), loss: crossEntropy(flat, b.labels) };
    });
    const [p, l] = await Promise.all([argmax.data(), loss.data()]);
    tf.dispose([argmax, loss]);
    let counted = 0;
    for (let i = 0; i < b.labels.length; i++) {
      if (b.labels[i] === IGNORE_INDEX) continue;
      preds.push(p[i]!);
      gold.push(b.labels[i]!);
      counted++;
    }
    lossSum += l[0]! * counted;
    lossCount += counted;
  }
  const predictions = Int32Array.from(preds);
  const goldArr = Int32Array.from(gold);
  const acc = set.task === 'TOKEN_CLS' ? tokenAccuracy(predictions, goldArr) : accuracy(predictions, goldArr);
  return {
    loss: lossSum / Math.max(1, lossCount),
    accuracy: acc,
    macroF1: macroF1(predictions, goldArr),
    ...(set.task === 'TOKEN_CLS' ? { tokenAccuracy: acc } : {}),
    predictions,
    gold: goldArr,
  };
}
