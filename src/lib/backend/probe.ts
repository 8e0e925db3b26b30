/**
 * The step the automatic backend choice times: one full training step (forward, loss, backward over
 * every weight) of our own GPT-2 code on a small random model, so each backend is judged on the ops
 * training really runs (matmuls, attention's softmax, layer norm, GELU, the tied LM head), not on
 * a lone matmul. It is sized so wasm takes a few ms and a software WebGPU adapter shows its per-op
 * cost within the cap.
 */
import * as tf from '@tensorflow/tfjs';
import type { Gpt2Config } from '../model/config';
import { Gpt2Model } from '../model/gpt2';
import { lmLogits } from '../model/heads';
import { addMany, crossEntropy } from '../model/ops';

const BATCH = 4;
const SEQ = 32;
export const PROBE_CONFIG: Gpt2Config = {
  vocabSize: 256,
  nPositions: SEQ,
  nEmbd: 128,
  nLayer: 1,
  nHead: 4,
  nInner: 512,
  layerNormEpsilon: 1e-5,
  bosTokenId: 0,
  eosTokenId: 0,
};
export const PROBE_LABEL = `one training step (1-layer GPT-2, d ${PROBE_CONFIG.nEmbd}, ${BATCH} x ${SEQ} tokens)`;

/**
 * A backend whose first step (shader compiles included) takes longer than this is "too slow": a
 * backend 50x slower than wasm cannot win, and waiting for it would hold up every first start.
 */
export const PROBE_CAP_MS = 2000;
/** Timed steps after the warm-up one; the best is kept (the least disturbed by other work). */
const TIMED_STEPS = 3;

export interface ProbeResult {
  msPerStep: number | null;
  note?: string;
  /** countProbeOps only: kernels one step runs. */
  ops?: number;
}

/** How many kernels (ops) one probe step runs on the backend running now. */
export async function countProbeOps(): Promise<number> {
  return (await runProbe(0, true)).ops ?? 0;
}

/** A known figure to beat: the fastest backend's ms per step so far and the step's op count. */
export interface ToBeat {
  msPerStep: number;
  ops: number;
}

/**
 * The running backend's cost of one small op (dispatch and bookkeeping, no arithmetic to speak of):
 * a chain of adds on 64 numbers, after one warm-up that compiles the program.
 */
async function msPerOp(): Promise<number> {
  const chain = async (n: number): Promise<number> => {
    const t0 = performance.now();
    const y = tf.tidy(() => {
      let x = tf.ones([64]);
      for (let i = 0; i < n; i++) x = tf.add(x, 1);
      return x;
    });
    await y.data();
    y.dispose();
    return performance.now() - t0;
  };
  await chain(2);
  return (await chain(24)) / 24;
}

/**
 * Times the probe step on the backend that is running now. With `toBeat`, it first times one small
 * op: when that cost times the step's op count already exceeds the best figure, the backend cannot
 * win and is not timed further, which spares seconds of shader compiles on a software GPU adapter.
 */
export async function timeProbeStep(capMs = PROBE_CAP_MS, toBeat?: ToBeat): Promise<ProbeResult> {
  if (toBeat) {
    const perOp = await msPerOp();
    const bound = perOp * toBeat.ops;
    if (bound > toBeat.msPerStep)
      return {
        msPerStep: null,
        note: `at least ${Math.round(bound)} ms/step (${perOp.toFixed(2)} ms per op x ${toBeat.ops} ops), not timed further`,
      };
  }
  return runProbe(capMs, false);
}

async function runProbe(capMs: number, count: boolean): Promise<ProbeResult> {
  const model = Gpt2Model.random(PROBE_CONFIG, 7);
  model.setTrainable(true);
  const vars = [...model.weights.values()];
  const n = BATCH * SEQ;
  const ids = tf.tensor2d(
    Int32Array.from({ length: n }, (_, i) => (i * 37) % PROBE_CONFIG.vocabSize),
    [BATCH, SEQ],
    'int32',
  );
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 37 + 1) % PROBE_CONFIG.vocabSize);
  const step = async (): Promise<number> => {
    const t0 = performance.now();
    const total = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => {
        const hidden = model.forward({ ids, training: true, seed: 1 }).hidden; // [B, T, C]
        const logits = lmLogits(model, hidden); // [B, T, V]
        return crossEntropy(tf.reshape(logits, [n, -1]) as tf.Tensor2D, labels);
      }, vars);
      // Reading one scalar that depends on every gradient waits for the whole backward pass on the
      // GPU backends, which otherwise return before their queues have run.
      return addMany([value, ...Object.values(grads).map((g) => tf.sum(g))]) as tf.Scalar;
    });
    await total.data();
    total.dispose();
    return performance.now() - t0;
  };
  try {
    if (count) return { msPerStep: null, ops: (await tf.profile(step)).kernels.length };
    const first = await step();
    if (first > capMs)
      return { msPerStep: null, note: `over the ${capMs} ms cap (first step ${Math.round(first)} ms)` };
    let best = Infinity;
    let spent = first;
    for (let i = 0; i < TIMED_STEPS && spent < capMs; i++) {
      const ms = await step();
      spent += ms;
      best = Math.min(best, ms);
    }
    return { msPerStep: best };
  } catch (e) {
    return { msPerStep: null, note: `failed: ${(e as Error).message}` };
  } finally {
    ids.dispose();
    model.invalidateCaches();
    for (const v of vars) v.dispose();
  }
}
