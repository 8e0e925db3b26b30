/**
 * Test helper: a small random GPT-2 with enough blocks to spread over three peers (6 blocks,
 * width 16, 4 heads), seeded, so every test and worker builds the same weights.
 */
import * as tf from '@tensorflow/tfjs';
import type { Gpt2Config } from '../model/config';
import { Gpt2Model } from '../model/gpt2';

export const SWARM_TEST_CONFIG: Gpt2Config = {
  vocabSize: 48,
  nPositions: 64,
  nEmbd: 16,
  nLayer: 6,
  nHead: 4,
  nInner: 64,
  layerNormEpsilon: 1e-5,
  bosTokenId: 47,
  eosTokenId: 47,
};

/**
 * GPT-2's N(0, 0.02) makes a tiny random model's logits nearly flat, and greedy text one repeated
 * token; larger embeddings and attention weights give varied tokens, so a test of "the same tokens"
 * can fail.
 */
export function swarmTestModel(seed = 3): Gpt2Model {
  const model = Gpt2Model.random(SWARM_TEST_CONFIG, seed);
  for (const [name, v] of model.weights) {
    const k =
      name === 'wte.weight' || name === 'wpe.weight'
        ? 10
        : name.includes('attn.c_attn.weight')
          ? 12
          : name.endsWith('.weight') && !name.includes('ln_')
            ? 20
            : 1;
    v.assign(tf.tidy(() => tf.mul(v, k)));
  }
  return model;
}
