/**
 * The networks that produce a prompt-learning method's virtual tokens, each from a trainable
 * embedding of the n virtual token positions (PEFT's `prompt_encoder`):
 * - table: the embedding is the output (prompt tuning; prefix tuning without projection; any
 *   method loaded from files, which hold only the encoded output, as PEFT's inference mode does);
 * - prefix MLP: Linear(d, h), Tanh, Linear(h, 2 L d) (peft/tuners/prefix_tuning/model.py, PrefixEncoder);
 * - P-tuning MLP: Linear(d, h), ReLU, Linear(h, h), ReLU, Linear(h, d);
 * - P-tuning LSTM: a bidirectional LSTM (hidden h, encoderNumLayers layers) then Linear(2h, 2h),
 *   ReLU, Linear(2h, d) (peft/tuners/p_tuning/model.py, PromptEncoder; Liu et al. 2021, section 3.3).
 * Variables carry PyTorch module names (`embedding.weight`, `mlp_head.0.weight`...) so counts and
 * ledgers read like PEFT's; linear weights are kept [in, out] so the forward is a plain matmul.
 */
import * as tf from '@tensorflow/tfjs';
import { matmul, newVariable } from '../../model/ops';
import { Rng } from '../../util/rng';
import { InternalError } from '../../errors';

export interface PromptEncoderNet {
  /** Virtual tokens. */
  readonly n: number;
  /** Width of each encoded token: d for prompts, 2 L d for prefixes. */
  readonly outDim: number;
  /** Trainable variables by PyTorch module name under `prompt_encoder`. */
  readonly variables: Map<string, tf.Variable>;
  /** The encoded virtual tokens [n, outDim]. */
  encode(training: boolean, seed: number): tf.Tensor2D;
}

/** tfjs treats seed 0 as "no seed", so every draw gets a seed >= 1. */
const seedOf = (rng: Rng): number => rng.seed() + 1;

/** nn.Linear's default init: weight and bias U(-1/sqrt(in), 1/sqrt(in)); weight kept [in, out]. */
function linear(vars: Map<string, tf.Variable>, name: string, inDim: number, outDim: number, rng: Rng): void {
  const bound = 1 / Math.sqrt(inDim);
  vars.set(
    `${name}.weight`,
    newVariable(tf.randomUniform([inDim, outDim], -bound, bound, 'float32', seedOf(rng)), true),
  );
  vars.set(
    `${name}.bias`,
    newVariable(tf.randomUniform([outDim], -bound, bound, 'float32', seedOf(rng)), true),
  );
}

/**
 * A named matrix of the encoder. Variables are stored untyped by rank in the name map; every name
 * read here was created 2-D by linear()/embedding(), so a miss or another rank is a bug of ours.
 */
function mat(vars: Map<string, tf.Variable>, name: string): tf.Tensor2D {
  const v = vars.get(name);
  if (!v || v.rank !== 2) throw new InternalError(`prompt encoder: ${name} is not a matrix`);
  return v as tf.Tensor as tf.Tensor2D;
}

function applyLinear(vars: Map<string, tf.Variable>, name: string, x: tf.Tensor2D): tf.Tensor2D {
  const w = mat(vars, `${name}.weight`);
  return tf.add(matmul(x, w), vars.get(`${name}.bias`)!);
}

/** nn.Embedding's default init N(0, 1), or given rows (TEXT / SAMPLE_VOCAB init, loaded weights). */
function embedding(n: number, dim: number, rng: Rng, init?: tf.Tensor2D): tf.Variable {
  return newVariable(init ?? tf.randomNormal([n, dim], 0, 1, 'float32', seedOf(rng)), true);
}

/** The embedding is the output. `init` [n, dim] is taken over (and disposed with the variable). */
export function tableEncoder(n: number, dim: number, rng: Rng, init?: tf.Tensor2D): PromptEncoderNet {
  const variables = new Map([['embedding.weight', embedding(n, dim, rng, init)]]);
  return {
    n,
    outDim: dim,
    variables,
    encode: () => mat(variables, 'embedding.weight'),
  };
}

/** Prefix tuning's reparameterisation: embedding [n, d] -> Linear(d, h) -> Tanh -> Linear(h, outDim). */
export function prefixMlpEncoder(
  n: number,
  d: number,
  h: number,
  outDim: number,
  rng: Rng,
): PromptEncoderNet {
  const variables = new Map([['embedding.weight', embedding(n, d, rng)]]);
  linear(variables, 'transform.0', d, h, rng);
  linear(variables, 'transform.2', h, outDim, rng);
  return {
    n,
    outDim,
    variables,
    encode: () => {
      const e = mat(variables, 'embedding.weight'); // [n, d]
      return applyLinear(variables, 'transform.2', tf.tanh(applyLinear(variables, 'transform.0', e)));
    },
  };
}

/** P-tuning's MLP encoder: embedding [n, d] -> Linear(d, h), ReLU, Linear(h, h), ReLU, Linear(h, d). */
export function mlpPromptEncoder(n: number, d: number, h: number, rng: Rng): PromptEncoderNet {
  const variables = new Map([['embedding.weight', embedding(n, d, rng)]]);
  linear(variables, 'mlp_head.0', d, h, rng);
  linear(variables, 'mlp_head.2', h, h, rng);
  linear(variables, 'mlp_head.4', h, d, rng);
  return {
    n,
    outDim: d,
    variables,
    encode: () => {
      let x = mat(variables, 'embedding.weight'); // [n, d]
      x = tf.relu(applyLinear(variables, 'mlp_head.0', x)); // [n, h]
      x = tf.relu(applyLinear(variables, 'mlp_head.2', x)); // [n, h]
      return applyLinear(variables, 'mlp_head.4', x); // [n, d]
    },
  };
}

/**
 * One direction of one LSTM layer over x [n, in] with PyTorch's gate order (i, f, g, o):
 *   z = x W_ih^T + b_ih + h W_hh^T + b_hh;  c' = σ(f) c + σ(i) tanh(g);  h' = σ(o) tanh(c').
 * The virtual prompt is short (tens of tokens), so the time loop is unrolled in the graph.
 */
function lstmDirection(
  vars: Map<string, tf.Variable>,
  suffix: string,
  x: tf.Tensor2D,
  hidden: number,
  reverse: boolean,
): tf.Tensor2D {
  const n = x.shape[0];
  const wIh = mat(vars, `lstm_head.weight_ih_${suffix}`); // [in, 4h]
  const wHh = mat(vars, `lstm_head.weight_hh_${suffix}`); // [h, 4h]
  const bias = tf.add(vars.get(`lstm_head.bias_ih_${suffix}`)!, vars.get(`lstm_head.bias_hh_${suffix}`)!); // [4h]
  const xw = tf.add(matmul(x, wIh), bias); // [n, 4h]
  let h = tf.zeros([1, hidden]) as tf.Tensor2D;
  let c = tf.zeros([1, hidden]) as tf.Tensor2D;
  const outs: tf.Tensor2D[] = new Array<tf.Tensor2D>(n);
  for (let s = 0; s < n; s++) {
    const t = reverse ? n - 1 - s : s;
    const z = tf.add(tf.slice(xw, [t, 0], [1, 4 * hidden]), matmul(h, wHh)); // [1, 4h]
    const [i, f, g, o] = tf.split(z, 4, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    c = tf.add(tf.mul(tf.sigmoid(f), c), tf.mul(tf.sigmoid(i), tf.tanh(g)));
    h = tf.mul(tf.sigmoid(o), tf.tanh(c));
    outs[t] = h;
  }
  return tf.concat(outs, 0) as tf.Tensor2D; // [n, h]
}

/** P-tuning's LSTM encoder (bidirectional, `layers` deep, dropout between layers) and its MLP head. */
export function lstmPromptEncoder(
  n: number,
  d: number,
  h: number,
  layers: number,
  dropout: number,
  rng: Rng,
): PromptEncoderNet {
  const variables = new Map([['embedding.weight', embedding(n, d, rng)]]);
  // PyTorch's LSTM init: every weight and bias U(-1/sqrt(h), 1/sqrt(h)).
  const bound = 1 / Math.sqrt(h);
  const u = (shape: number[]): tf.Variable =>
    newVariable(tf.randomUniform(shape, -bound, bound, 'float32', seedOf(rng)), true);
  for (let l = 0; l < layers; l++) {
    const inDim = l === 0 ? d : 2 * h;
    for (const dir of ['', '_reverse']) {
      const s = `l${l}${dir}`;
      variables.set(`lstm_head.weight_ih_${s}`, u([inDim, 4 * h]));
      variables.set(`lstm_head.weight_hh_${s}`, u([h, 4 * h]));
      variables.set(`lstm_head.bias_ih_${s}`, u([4 * h]));
      variables.set(`lstm_head.bias_hh_${s}`, u([4 * h]));
    }
  }
  linear(variables, 'mlp_head.0', 2 * h, 2 * h, rng);
  linear(variables, 'mlp_head.2', 2 * h, d, rng);
  return {
    n,
    outDim: d,
    variables,
    encode: (training, seed) => {
      let x = mat(variables, 'embedding.weight'); // [n, d]
      for (let l = 0; l < layers; l++) {
        if (l > 0 && training && dropout > 0) x = tf.dropout(x, dropout, undefined, seed + l) as tf.Tensor2D;
        const fwd = lstmDirection(variables, `l${l}`, x, h, false);
        const bwd = lstmDirection(variables, `l${l}_reverse`, x, h, true);
        x = tf.concat([fwd, bwd], 1) as tf.Tensor2D; // [n, 2h]
      }
      return applyLinear(variables, 'mlp_head.2', tf.relu(applyLinear(variables, 'mlp_head.0', x))); // [n, d]
    },
  };
}

/** Parameters of each encoder, from the formulas (checked against the live variables in tests). */
export const encoderParams = {
  table: (n: number, dim: number): number => n * dim,
  prefixMlp: (n: number, d: number, h: number, outDim: number): number =>
    n * d + (d * h + h) + (h * outDim + outDim),
  mlp: (n: number, d: number, h: number): number => n * d + (d * h + h) + (h * h + h) + (h * d + d),
  lstm: (n: number, d: number, h: number, layers: number): number => {
    let p = n * d;
    for (let l = 0; l < layers; l++) p += 2 * (4 * h * ((l === 0 ? d : 2 * h) + h) + 8 * h);
    return p + (2 * h * 2 * h + 2 * h) + (2 * h * d + d);
  },
};
