/**
 * Task heads over the decoder's final hidden states [B, T, C]:
 * - CAUSAL_LM: logits = h @ wte^T (GPT2LMHeadModel, tied weights);
 * - SEQ_CLS and TOKEN_CLS come with the methods issue (GPT2ForSequenceClassification's `score`,
 *   GPT2ForTokenClassification's `classifier`).
 */
import * as tf from '@tensorflow/tfjs';
import type { Gpt2Model } from './gpt2';
import { matmul } from './ops';

/** LM logits for hidden [B, T, C] -> [B, T, V]. */
export function lmLogits(model: Gpt2Model, hidden: tf.Tensor3D): tf.Tensor3D {
  const [B, T, C] = hidden.shape;
  const logits = matmul(tf.reshape(hidden, [B * T, C]) as tf.Tensor2D, model.wteT()); // [B*T, V]
  return tf.reshape(logits, [B, T, model.config.vocabSize]) as tf.Tensor3D;
}
