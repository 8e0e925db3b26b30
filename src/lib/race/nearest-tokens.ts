/**
 * Reading a soft prompt back: for each learned virtual token, the vocabulary tokens whose input
 * embeddings are nearest by cosine similarity. Lester et al. (2021, section 7) and the P-tuning
 * papers read learned prompts this way; the nearest tokens are often not words, which is the
 * point: a continuous prompt need not be a sentence.
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderModel } from '../model/decoder';

export interface NearestRow {
  ids: number[];
  cosines: number[];
}

/** prompts [n, C] against the input embeddings [V, C] (wte, embed_tokens): the k nearest token ids per row, most similar first. */
export async function nearestTokenIds(
  model: DecoderModel,
  prompts: tf.Tensor2D,
  k: number,
): Promise<NearestRow[]> {
  const V = model.config.vocabSize;
  const kk = Math.max(1, Math.min(k, V));
  const { values, indices } = tf.tidy(() => {
    const unit = (x: tf.Tensor2D): tf.Tensor2D =>
      tf.div(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), 1e-12)) as tf.Tensor2D;
    const table = model.w(model.embeddingKey) as tf.Tensor2D;
    const cos = tf.matMul(unit(prompts), unit(table), false, true); // [n, V]
    return tf.topk(cos, kk);
  });
  const [v, i] = await Promise.all([values.data(), indices.data()]);
  tf.dispose([values, indices]);
  const n = prompts.shape[0];
  return Array.from({ length: n }, (_, r) => ({
    ids: Array.from(i.subarray(r * kk, (r + 1) * kk)),
    cosines: Array.from(v.subarray(r * kk, (r + 1) * kk)),
  }));
}
