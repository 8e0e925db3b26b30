/**
 * A classification batch (right padding, rows of different lengths, one of a single real token)
 * on wasm through a LoRA adapter and a head: with our kernels on, attention runs fused under the
 * padding mask (kernels/wasm/attention.ts); with them off (setWasmKernels(false)), the stock
 * composition under attentionBias / llamaAttentionBias. The loss, every trainable value's gradient
 * and the hidden states of every position (padded ones included: with right padding only they see
 * padded keys, so only they would show a mask left out) agree. Prefix tuning and P-tuning v2 too:
 * their virtual tokens' keys and values are past keys, which the fused kernels read in place and
 * give the prefix encoder its gradients through; the stock path concatenates them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../backend/node';
import type { ClsTaskType, EncodedSet } from '../data/cls-data';
import { padBatch } from '../data/cls-data';
import type { TaskInfo } from '../data/tasks/registry';
import { ATTENTION_FORWARD, GQA_FORWARD } from '../kernels/wasm/attention';
import { setWasmKernels } from '../kernels/wasm/heap';
import { maxDiff } from '../kernels/wasm/testing';
import type { DecoderModel } from '../model/decoder';
import { tinyGpt2, tinyLlama } from '../model/testing';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import { Rng } from '../util/rng';
import { clsBatchLoss, clsInputs } from './classification';
import { createAdapter, planAdapter } from './plan';

/** LoRA's defaults never tokenize. */
const NO_TOKENIZER: TextTokenizer = {
  vocabSize: 0,
  eosTokenId: null,
  encode: () => [1],
  decode: () => '',
  idToToken: () => undefined,
};

function taskInfo(taskType: ClsTaskType): TaskInfo {
  return {
    id: 'fused-cls-test',
    title: 'fused classification test',
    description: 'random tokens',
    taskType,
    metrics: ['accuracy'],
    labels: ['a', 'b', 'c'],
    dataDir: '',
    format: 'text',
    files: { train: '', validation: '', test: '' },
  };
}

const CASES: {
  name: string;
  make: () => DecoderModel;
  kernel: string;
  task: ClsTaskType;
  lens: number[];
  method?: string;
  config?: Record<string, unknown>;
}[] = [
  { name: 'tiny-gpt2', make: tinyGpt2, kernel: ATTENTION_FORWARD, task: 'SEQ_CLS', lens: [12, 1, 7, 3] },
  { name: 'tiny-gpt2', make: tinyGpt2, kernel: ATTENTION_FORWARD, task: 'TOKEN_CLS', lens: [5, 12, 1] },
  {
    name: 'tiny-llama',
    make: () => tinyLlama('tiny-llama'),
    kernel: GQA_FORWARD,
    task: 'SEQ_CLS',
    lens: [12, 1, 7, 3],
  },
  {
    name: 'tiny-qwen2',
    make: () => tinyLlama('tiny-qwen2'),
    kernel: GQA_FORWARD,
    task: 'TOKEN_CLS',
    lens: [5, 12, 1],
  },
  // A sliding window of 6 hides no key within 6 positions: fused too.
  {
    name: 'tiny-mistral',
    make: () => tinyLlama('tiny-mistral'),
    kernel: GQA_FORWARD,
    task: 'SEQ_CLS',
    lens: [6, 1, 4],
  },
  // Past keys: 5 virtual tokens (P <= 2T: fused), the prefix encoder an MLP or a table.
  {
    name: 'tiny-gpt2',
    make: tinyGpt2,
    kernel: ATTENTION_FORWARD,
    task: 'SEQ_CLS',
    lens: [12, 1, 7, 3],
    method: 'prefix-tuning',
    config: { numVirtualTokens: 5, prefixProjection: true, encoderHiddenSize: 16 },
  },
  {
    name: 'tiny-gpt2',
    make: tinyGpt2,
    kernel: ATTENTION_FORWARD,
    task: 'TOKEN_CLS',
    lens: [5, 12, 1],
    method: 'p-tuning-v2',
    config: { numVirtualTokens: 5 },
  },
  {
    name: 'tiny-llama',
    make: () => tinyLlama('tiny-llama'),
    kernel: GQA_FORWARD,
    task: 'SEQ_CLS',
    lens: [12, 1, 7, 3],
    method: 'prefix-tuning',
    config: { numVirtualTokens: 5, prefixProjection: true, encoderHiddenSize: 16 },
  },
  {
    name: 'tiny-qwen2',
    make: () => tinyLlama('tiny-qwen2'),
    kernel: GQA_FORWARD,
    task: 'TOKEN_CLS',
    lens: [5, 12, 1],
    method: 'p-tuning-v2',
    config: { numVirtualTokens: 1 },
  },
];

describe('classification on wasm: fused attention under the padding mask against the stock path', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });
  afterAll(() => {
    setWasmKernels(true);
  });

  it.each(CASES)(
    '$name, $task, lengths $lens, $method',
    async ({ make, kernel, task, lens, method, config }) => {
      const model = make();
      const info = taskInfo(task);
      const T = Math.max(...lens);
      const plan = planAdapter(
        model,
        method ?? 'lora',
        config ?? { r: 4 },
        info,
        { steps: 10, seqLen: T, seed: 1 },
        'test',
      );
      const adapter = createAdapter(model, NO_TOKENIZER, plan.method, plan.config, info, 1);
      const head = adapter.head!;
      const vars = [...new Set([...adapter.trainable().values()])];
      // LoRA's B starts at zero, which would leave A's gradient zero: every trainable value random.
      vars.forEach((v, i) => tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', 11 + i))));
      const rng = new Rng(3);
      const V = model.config.vocabSize;
      const set: EncodedSet = {
        task,
        padId: 0,
        examples: lens.map((n) => ({
          ids: Array.from({ length: n }, () => 1 + rng.int(V - 1)),
          label: task === 'SEQ_CLS' ? rng.int(3) : Array.from({ length: n }, () => rng.int(3)),
        })),
      };
      const batch = padBatch(
        set,
        lens.map((_, i) => i),
      );
      const run = (): Float32Array[] =>
        tf.tidy(() => {
          const hidden = model.forward(clsInputs(model, adapter, batch, false, 0)).hidden;
          const { value, grads } = tf.variableGrads(
            () => clsBatchLoss(model, adapter, head, batch, false, 0),
            vars,
          );
          return [hidden, value, ...vars.map((v) => grads[v.name]!)].map(
            (t) => t.dataSync().slice() as Float32Array,
          );
        });
      try {
        const before = tf.memory().numTensors;
        const profile = await tf.profile(() => void run());
        expect(tf.memory().numTensors).toBe(before);
        // Two forwards (hidden states, loss): every layer's attention is our kernel, and the only
        // Softmax left is the cross-entropy's.
        const count = (name: string): number => profile.kernels.filter((k) => k.name === name).length;
        expect(count(kernel)).toBe(2 * model.config.nLayer);
        expect(count('Softmax')).toBe(1);
        const fused = run();
        setWasmKernels(false);
        const stock = run();
        setWasmKernels(true);
        expect(stock.length).toBe(fused.length);
        expect(maxDiff(fused[0]!, stock[0]!)).toBeLessThan(1e-4); // hidden states, padded positions too
        expect(maxDiff(fused[1]!, stock[1]!)).toBeLessThan(1e-5); // loss
        for (let i = 2; i < fused.length; i++) {
          const scale = Math.max(1, ...stock[i]!.map(Math.abs));
          expect(maxDiff(fused[i]!, stock[i]!) / scale).toBeLessThan(1e-4);
        }
      } finally {
        setWasmKernels(true);
        adapter.dispose();
        model.dispose();
      }
    },
  );
});

/**
 * Generation after past keys on wasm (a prefix, then a prompt, then a decoding step): the prompt
 * (P <= 2T) runs our kernel with the past, the decoding step (T = 1 after P = 10) the stock path; the
 * hidden states and the presents (past and new keys, as the next step reads them) agree with the
 * stock path's throughout.
 */
describe('generation after past keys on wasm: fused against the stock path', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });
  afterAll(() => {
    setWasmKernels(true);
  });

  it.each([
    { name: 'tiny-gpt2', make: tinyGpt2, kernel: ATTENTION_FORWARD },
    { name: 'tiny-llama', make: () => tinyLlama('tiny-llama'), kernel: GQA_FORWARD },
  ])('$name: a prompt of 6 after 4 past positions, then one decoding step', async ({ make, kernel }) => {
    const model = make();
    const c = model.config;
    const kvHeads = 'nKvHead' in c ? c.nKvHead : c.nHead;
    const D = 'headDim' in c ? c.headDim : c.nEmbd / c.nHead;
    const [P, T] = [4, 6];
    const past = Array.from({ length: c.nLayer }, (_, i) => ({
      k: tf.randomNormal([2, kvHeads, P, D], 0, 1, 'float32', 20 + i) as tf.Tensor4D,
      v: tf.randomNormal([2, kvHeads, P, D], 0, 1, 'float32', 40 + i) as tf.Tensor4D,
    }));
    const ids = tf.tensor2d([1, 5, 9, 3, 7, 2, 4, 8, 6, 1, 3, 5], [2, T], 'int32');
    const next = tf.tensor2d([11, 12], [2, 1], 'int32');
    const run = (): Float32Array[] =>
      tf.tidy(() => {
        const first = model.forward({ ids, past, returnPresents: true });
        const second = model.forward({ ids: next, past: first.presents, returnPresents: true });
        const kv = second.presents!.flatMap((p) => [p.k, p.v]);
        return [first.hidden, second.hidden, ...kv].map((t) => t.dataSync().slice() as Float32Array);
      });
    try {
      const profile = await tf.profile(() => void run());
      const count = (name: string): number => profile.kernels.filter((k) => k.name === name).length;
      expect(count(kernel)).toBe(c.nLayer); // the prompt's layers, not the decoding step's
      const fused = run();
      setWasmKernels(false);
      const stock = run();
      setWasmKernels(true);
      expect(fused.length).toBe(2 + 2 * c.nLayer);
      for (let i = 0; i < fused.length; i++) expect(maxDiff(fused[i]!, stock[i]!)).toBeLessThan(1e-4);
    } finally {
      setWasmKernels(true);
      tf.dispose([ids, next, ...past.flatMap((p) => [p.k, p.v])]);
      model.dispose();
    }
  });
});
