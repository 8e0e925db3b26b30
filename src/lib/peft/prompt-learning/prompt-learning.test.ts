/**
 * Prompt-learning numerics against independent references on the tiny checkpoint:
 * - a soft prompt equal to the embeddings of real tokens gives exactly the model's outputs on
 *   those tokens followed by the text (and the same greedy continuation through the KV cache);
 * - a prefix equal to the keys and values real tokens produce gives the outputs of the full
 *   sequence, which pins PEFT's [n, 2 L d] -> per-layer key/value layout;
 * - P-tuning's LSTM encoder equals a plain-JavaScript PyTorch LSTM (gate order i, f, g, o);
 * - TEXT init repeats and cuts the text's tokens, and takes their embeddings.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../backend/node';
import type { Gpt2Model } from '../../model/gpt2';
import { generate } from '../../model/generate';
import { adapterDecorator } from '../forward';
import { methodByCliName } from '../registry';
import type { Adapter, PeftConfigBase } from '../types';
import { PROMPT_KEY } from './adapter';
import { textInitIds } from '../prompt-tuning';
import { tinyGpt2 } from '../../model/testing';

const PROMPT = [5, 17, 42];
const TEXT = [8, 3, 61, 20];

function create(model: Gpt2Model, method: string, config: Record<string, unknown>): Adapter {
  const m = methodByCliName(method);
  const c = { ...m.defaults('CAUSAL_LM'), ...config } as PeftConfigBase;
  return m.create(model, c as never, 1);
}

async function hidden(model: Gpt2Model, ids: number[], adapter: Adapter | null = null): Promise<number[]> {
  const t = tf.tidy(
    () =>
      model.forward(adapterDecorator(model, adapter)({ ids: tf.tensor2d([ids], undefined, 'int32') }, true))
        .hidden,
  );
  const out = Array.from(await t.data());
  t.dispose();
  return out;
}

function expectClose(a: number[], b: number[], tol: number): void {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  expect(worst).toBeLessThan(tol);
}

describe('prompt learning against references', () => {
  let model: Gpt2Model;
  beforeAll(async () => {
    await initNodeBackend('wasm');
    model = tinyGpt2();
  });

  it('a soft prompt of real token embeddings equals those tokens before the text', async () => {
    const adapter = create(model, 'prompt-tuning', { numVirtualTokens: PROMPT.length });
    const wte = await model.w('wte.weight').array();
    const rows = PROMPT.flatMap((id) => (wte as number[][])[id]!);
    adapter.loadStateDict(
      new Map([[PROMPT_KEY, { shape: [PROMPT.length, 16], data: Float32Array.from(rows) }]]),
      'test',
    );
    expectClose(await hidden(model, TEXT, adapter), await hidden(model, [...PROMPT, ...TEXT]), 1e-5);
    // Generation through the KV cache continues exactly as the plain model after the real tokens.
    const viaPrompt = await generate(
      model,
      TEXT,
      { maxNewTokens: 8, reservedPositions: PROMPT.length },
      adapterDecorator(model, adapter),
    );
    expect(viaPrompt).toEqual(await generate(model, [...PROMPT, ...TEXT], { maxNewTokens: 8 }));
    adapter.dispose();
  });

  it("a prefix of real tokens' keys and values equals those tokens before the text (PEFT's layout)", async () => {
    const { nLayer: L, nHead: H, nEmbd: d } = model.config;
    const D = d / H;
    const n = PROMPT.length;
    const ids = tf.tensor2d([PROMPT], undefined, 'int32');
    const r = model.forward({ ids, returnPresents: true });
    const presents = await Promise.all(
      r.presents!.map(async (p) => ({ k: (await p.k.array())[0]!, v: (await p.v.array())[0]! })),
    );
    tf.dispose([ids, r.hidden, ...r.presents!.flatMap((p) => [p.k, p.v])]);
    // PEFT views [n, 2 L d] as [n, 2L, H, D]: row 2i holds layer i's keys, row 2i + 1 its values.
    const enc = new Float32Array(n * 2 * L * d);
    for (let j = 0; j < n; j++)
      for (let i = 0; i < L; i++)
        for (let kv = 0; kv < 2; kv++)
          for (let h = 0; h < H; h++)
            for (let e = 0; e < D; e++) {
              const src = kv === 0 ? presents[i]!.k : presents[i]!.v;
              enc[j * 2 * L * d + ((2 * i + kv) * H + h) * D + e] = src[h]![j]![e]!;
            }
    const adapter = create(model, 'prefix-tuning', { numVirtualTokens: n });
    adapter.loadStateDict(new Map([[PROMPT_KEY, { shape: [n, 2 * L * d], data: enc }]]), 'test');
    const full = await hidden(model, [...PROMPT, ...TEXT]);
    expectClose(await hidden(model, TEXT, adapter), full.slice(n * d), 1e-5);
    const viaPrefix = await generate(
      model,
      TEXT,
      { maxNewTokens: 8, reservedPositions: n },
      adapterDecorator(model, adapter),
    );
    expect(viaPrefix).toEqual(await generate(model, [...PROMPT, ...TEXT], { maxNewTokens: 8 }));
    adapter.dispose();
  });

  it("P-tuning's LSTM encoder equals PyTorch's LSTM written out in plain JavaScript", async () => {
    const n = 5;
    const h = 6;
    const adapter = create(model, 'p-tuning', {
      numVirtualTokens: n,
      encoderReparameterizationType: 'LSTM',
      encoderHiddenSize: h,
      encoderNumLayers: 2,
    });
    const vars = new Map<string, number[][] | number[]>();
    for (const [k, v] of adapter.trainable())
      vars.set(k.replace('prompt_encoder.', ''), (await v.array()) as number[][]);
    const W = (k: string): number[][] => vars.get(k) as number[][];
    const b = (k: string): number[] => vars.get(k) as number[];
    const sig = (x: number): number => 1 / (1 + Math.exp(-x));
    // y = x @ W (W stored [in, out]) + bias
    const lin = (x: number[], w: number[][], bias: number[]): number[] =>
      bias.map((bb, o) => bb + x.reduce((s, xi, i) => s + xi * w[i]![o]!, 0));
    const run = (xs: number[][], s: string, reverse: boolean): number[][] => {
      let hh = new Array<number>(h).fill(0);
      let c = new Array<number>(h).fill(0);
      const out: number[][] = new Array<number[]>(xs.length);
      const zeros = new Array<number>(4 * h).fill(0);
      for (let step = 0; step < xs.length; step++) {
        const t = reverse ? xs.length - 1 - step : step;
        const zi = lin(xs[t]!, W(`lstm_head.weight_ih_${s}`), b(`lstm_head.bias_ih_${s}`));
        const zh = lin(hh, W(`lstm_head.weight_hh_${s}`), b(`lstm_head.bias_hh_${s}`));
        const z = zeros.map((_, k) => zi[k]! + zh[k]!);
        const gate = (g: number, j: number): number => z[g * h + j]!;
        c = c.map((cj, j) => sig(gate(1, j)) * cj + sig(gate(0, j)) * Math.tanh(gate(2, j)));
        hh = c.map((cj, j) => sig(gate(3, j)) * Math.tanh(cj));
        out[t] = hh;
      }
      return out;
    };
    let x = W('embedding.weight');
    for (let l = 0; l < 2; l++) {
      const f = run(x, `l${l}`, false);
      const r = run(x, `l${l}_reverse`, true);
      x = f.map((row, t) => [...row, ...r[t]!]);
    }
    const want = x.map((row) =>
      lin(
        lin(row, W('mlp_head.0.weight'), b('mlp_head.0.bias')).map((v) => Math.max(0, v)),
        W('mlp_head.2.weight'),
        b('mlp_head.2.bias'),
      ),
    );
    const sd = await adapter.stateDict();
    expectClose(Array.from(sd.get(PROMPT_KEY)!.data), want.flat(), 1e-5);
    adapter.dispose();
  });

  it("TEXT init repeats or cuts the text's tokens and starts from their embeddings", async () => {
    expect(textInitIds([1, 2, 3], 7)).toEqual([1, 2, 3, 1, 2, 3, 1]);
    expect(textInitIds([1, 2, 3], 2)).toEqual([1, 2]);
    const m = methodByCliName('prompt-tuning');
    const c = {
      ...m.defaults('CAUSAL_LM'),
      numVirtualTokens: 5,
      promptTuningInit: 'TEXT',
      promptTuningInitText: 'xyz',
    };
    const adapter = m.create(model, c as never, 1, { tokenize: () => [4, 9] });
    const got = Array.from((await adapter.stateDict()).get(PROMPT_KEY)!.data);
    const wte = (await model.w('wte.weight').array()) as number[][];
    expect(got).toEqual([4, 9, 4, 9, 4].flatMap((id) => wte[id]!));
    adapter.dispose();
    expect(() => m.create(model, c as never, 1)).toThrow(/TEXT needs the model's tokenizer/);
  });
});
