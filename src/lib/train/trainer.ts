/**
 * The training loop: seeded batches, forward through the adapter by kind, cross-entropy, gradients
 * for the adapter's variables only, accumulation, global-norm clipping, AdamW, the schedule, and
 * the method's own per-step hook. One `trainStep` call is one optimizer step.
 * What a batch is and how its loss is computed comes from a `BatchSource`: next-token windows of a
 * token stream (the default, when the trainer is given a stream) or classification examples
 * (train/classification.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { NonFiniteLossError } from '../errors';
import type { LmBatch, TokenStream } from '../data/lm-data';
import { evalLmBatches, randomLmBatch } from '../data/lm-data';
import type { ForwardOptions, DecoderModel } from '../model/decoder';
import { lmLogits } from '../model/heads';
import { crossEntropy, isFrozen } from '../model/ops';
import { fusedKernelsOn } from '../kernels/webgpu/active';
import { releaseFailedTape } from '../backend/out-of-memory';
import { watchGpuMemory } from '../backend/gpu-memory';
import { wasmAdamWOn } from '../kernels/wasm/adamw';
import { FusedAdamW } from '../kernels/webgpu/adamw';
import { lmHeadCrossEntropy } from '../kernels/webgpu/lm-head';
import { adapterDecorator, virtualPositions } from '../peft/forward';
import type { Adapter } from '../peft/types';
import { AdamW, clipByGlobalNorm, globalNormScale } from './adamw';
import { Rng } from '../util/rng';
import { cosineWithWarmup } from './schedule';

/** Optimizer state that leaves the backend between steps (ZeRO stage 1; src/lib/offload). */
export interface OptimizerPaging {
  /** Starts bringing the state back; the trainer awaits it (through `ready`) before the update. */
  pageIn(): Promise<void>;
  ready(pending: Promise<void>): Promise<void>;
  /** Sends it out after the update. */
  pageOut(): Promise<void>;
}

/** Where the accumulated gradients go between micro-batches (ZeRO stage 2): out, then back. */
export interface GradientPaging {
  /** Takes the sum (and frees it); resolves once it is stored. */
  pageOut(sum: Map<string, tf.Tensor>): Promise<void>;
  pageIn(): Promise<Map<string, tf.Tensor>>;
}

export interface TrainerOptions {
  steps: number;
  lr: number;
  warmupSteps?: number;
  batchSize: number;
  seqLen: number;
  /** Micro-batches per optimizer step. */
  gradAccumSteps?: number;
  /** 0 disables clipping. */
  maxGradNorm?: number;
  /**
   * How a micro-batch's gradients are computed: by default one tape over the whole forward; the
   * offload trainer passes its layer-by-layer recomputation (src/lib/offload/layerwise.ts).
   */
  gradients?: GradientFn;
  weightDecay?: number;
  seed: number;
}

/**
 * A micro-batch's forward in two halves, so a trainer can run the model between them one layer at
 * a time (src/lib/offload recomputes layers in the backward): the first layer's inputs with the
 * adapter's virtual tokens or prefixes, and the loss from the final hidden states.
 */
export interface BatchParts {
  inputs(model: DecoderModel, adapter: Adapter | null, training: boolean, seed: number): ForwardOptions;
  /** Loss from ln_f's output [B, n + T, C], the adapter's extra loss included in training. */
  lossFromHidden(
    model: DecoderModel,
    adapter: Adapter | null,
    hidden: tf.Tensor3D,
    training: boolean,
  ): tf.Scalar;
}

/** One micro-batch, ready to run: its loss is built inside the gradient scope. */
export interface MicroBatch {
  loss(model: DecoderModel, adapter: Adapter | null, training: boolean, seed: number): tf.Scalar;
  /** The same loss as two halves around the layers. */
  parts: BatchParts;
  /** Tokens it holds (for throughput). */
  tokens: number;
}

/** Computes one micro-batch's loss and the gradients of `vars` (by variable name). */
export type GradientFn = (
  mb: MicroBatch,
  vars: tf.Variable[],
  seed: number,
) => Promise<{ value: tf.Scalar; grads: tf.NamedTensorMap }>;

/** Where a trainer's examples come from. */
export interface BatchSource {
  /**
   * Draws one optimizer step's examples (batchSize x accum) from `rng`, split into `accum`
   * micro-batches, so accumulation sees exactly the examples one big batch would.
   */
  draw(rng: Rng, batchSize: number, accum: number): MicroBatch[];
}

function isBatchSource(x: TokenStream | BatchSource): x is BatchSource {
  return typeof (x as Partial<BatchSource>).draw === 'function';
}

/** Random next-token windows of `seqLen` tokens from a stream (the causal-LM source). */
export function lmBatchSource(stream: TokenStream, seqLen: number): BatchSource {
  return {
    draw(rng, B, accum) {
      const T = seqLen;
      const all = randomLmBatch(stream, B * accum, T, rng);
      return Array.from({ length: accum }, (_, micro) => {
        const rows = [micro * B * T, (micro + 1) * B * T] as const;
        const batch: LmBatch = {
          ids: all.ids.subarray(...rows),
          labels: all.labels.subarray(...rows),
          batch: B,
          seqLen: T,
        };
        return {
          tokens: B * T,
          loss: (model, adapter, training, seed) => lmBatchLoss(model, adapter, batch, training, seed),
          parts: lmParts(batch),
        };
      });
    },
  };
}

export interface StepStats {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  ms: number;
  tokens: number;
  /**
   * The loss or a gradient was NaN or infinite, so nothing was updated (weights, AdamW state and
   * `step` are as before) and the learning rate was halved: `lr` is the lowered one.
   */
  skipped?: boolean;
}

/** Non-finite steps in a row after which trainStep throws NonFiniteLossError (the run pauses). */
export const MAX_NONFINITE_STREAK = 3;
/**
 * How many times over a run a non-finite step may halve the learning rate (to 1/16 at most): a run
 * that keeps diverging past that needs a person to look at it, not a smaller step.
 */
export const MAX_LR_HALVINGS = 4;

/** The two halves of a next-token batch's loss (see BatchParts). */
export function lmParts(b: LmBatch): BatchParts {
  return {
    inputs: (model, adapter, training, seed) => {
      const ids = tf.tensor2d(b.ids, [b.batch, b.seqLen], 'int32');
      return adapterDecorator(model, adapter, training, seed)({ ids, training, seed }, true);
    },
    lossFromHidden: (model, adapter, hidden, training) => {
      const n = virtualPositions(adapter);
      const h = n > 0 ? (tf.slice(hidden, [0, n, 0], [-1, -1, -1]) as tf.Tensor3D) : hidden; // [B, T, C]
      const loss = fusedKernelsOn() ? fusedLmLoss(model, h, b.labels) : stockLmLoss(model, h, b);
      const extra = training ? adapter?.extraLoss?.() : null;
      return extra ? tf.add(loss, extra) : loss;
    },
  };
}

function stockLmLoss(model: DecoderModel, h: tf.Tensor3D, b: LmBatch): tf.Scalar {
  const logits = lmLogits(model, h); // [B, T, V]
  return crossEntropy(tf.reshape(logits, [b.batch * b.seqLen, -1]) as tf.Tensor2D, b.labels);
}

/** The tied LM head and cross-entropy in our WebGPU kernel: no [N, V] logits or softmax kept. */
function fusedLmLoss(model: DecoderModel, h: tf.Tensor3D, labels: Int32Array): tf.Scalar {
  const [B, T, C] = h.shape;
  const wte = model.w(model.lmHeadKey) as tf.Tensor2D; // [V, C]: wte (GPT-2, tied) or Llama's lm_head
  return lmHeadCrossEntropy(tf.reshape(h, [B * T, C]) as tf.Tensor2D, wte, labels, {
    embeddingTrains: !isFrozen(wte),
  });
}

/** Mean next-token loss of one batch through the model and adapter (a scalar tensor). */
export function lmBatchLoss(
  model: DecoderModel,
  adapter: Adapter | null,
  b: LmBatch,
  training: boolean,
  seed: number,
): tf.Scalar {
  const parts = lmParts(b);
  const hidden = model.forward(parts.inputs(model, adapter, training, seed)).hidden; // [B, n + T, C]
  return parts.lossFromHidden(model, adapter, hidden, training);
}

export class Trainer {
  step = 0;
  readonly rng: Rng;
  readonly optimizer: AdamW;
  private readonly vars: Map<string, tf.Variable>;
  private readonly source: BatchSource;

  /** `train` is a token stream (causal LM, windows of opts.seqLen) or any BatchSource. */
  constructor(
    readonly model: DecoderModel,
    readonly adapter: Adapter,
    train: TokenStream | BatchSource,
    readonly opts: TrainerOptions,
  ) {
    this.source = isBatchSource(train) ? train : lmBatchSource(train, opts.seqLen);
    this.rng = new Rng(opts.seed);
    const adam = { eps: 1e-8, weightDecay: opts.weightDecay ?? 0 };
    // On WebGPU our AdamW: two dispatches per tensor, the clipping factor applied inside.
    this.optimizer = fusedKernelsOn() ? new FusedAdamW(adam) : new AdamW(adam);
    this.vars = adapter.trainable();
  }

  /** Set to move the optimizer state out between steps (it wraps this.optimizer). */
  optimizerPaging: OptimizerPaging | null = null;
  /** Set to move the accumulated gradients out between micro-batches (ZeRO stage 2). */
  gradientPaging: GradientPaging | null = null;

  /** Factor on the scheduled learning rate: halved by each skipped (non-finite) step; saved in checkpoints. */
  lrScale = 1;
  /** Steps skipped over the run because the loss or a gradient was not finite. */
  skippedSteps = 0;
  private nonFiniteStreak = 0;

  lrAt(step: number): number {
    const warm = this.opts.warmupSteps ?? Math.min(100, Math.floor(this.opts.steps / 10));
    return cosineWithWarmup(step, this.opts.lr, warm, this.opts.steps) * this.lrScale;
  }

  /** After a pause for non-finite steps, resuming gives the run another MAX_NONFINITE_STREAK tries. */
  clearNonFiniteStreak(): void {
    this.nonFiniteStreak = 0;
  }

  /**
   * One optimizer step. Async because the loss is read back once per step (before the update, so a
   * NaN never reaches the weights), and WebGPU can only read back asynchronously.
   */
  async trainStep(): Promise<StepStats> {
    const t0 = performance.now();
    // The optimizer state starts coming back now, overlapping the forward and backward.
    const incoming = this.optimizerPaging?.pageIn();
    incoming?.catch(() => undefined); // observed where it is awaited
    const accum = Math.max(1, this.opts.gradAccumSteps ?? 1);
    // On WebGPU a failed allocation throws nothing: the device reports it (backend/gpu-memory.ts).
    const gpuMemory = watchGpuMemory();
    gpuMemory?.begin();
    const names = [...this.vars.keys()];
    const list = [...this.vars.values()];
    const byVarName = new Map(list.map((v, i) => [v.name, names[i]!]));
    let sum: Map<string, tf.Tensor> | null = null;
    let paged = false;
    const losses: tf.Scalar[] = [];
    // A step that fails for want of memory puts the generator back, so trying again (after memory
    // was freed) draws the same batch and the run is as if the failed step never happened.
    const rngBefore = this.rng.state;
    // Accumulation sees exactly the examples one batch of batchSize x accum would, split into
    // micro-batches, so the update equals the big batch's (up to float rounding).
    const micros = this.source.draw(this.rng, this.opts.batchSize, accum);
    const stepSeed = this.rng.seed();
    const during = `a training step (batch ${this.opts.batchSize} x ${accum > 1 ? `${accum} micro-batches x ` : ''}${this.opts.seqLen} tokens)`;
    let tokens = 0;
    try {
      for (let micro = 0; micro < accum; micro++) {
        const mb = micros[micro]!;
        tokens += mb.tokens;
        const seed = (stepSeed + micro) >>> 0;
        const { value, grads } = this.opts.gradients
          ? await this.opts.gradients(mb, list, seed)
          : tf.variableGrads(() => mb.loss(this.model, this.adapter, true, seed), list);
        losses.push(value);
        const named = new Map<string, tf.Tensor>();
        for (const [vn, g] of Object.entries(grads)) named.set(byVarName.get(vn)!, g);
        if (paged) sum = await this.gradientPaging!.pageIn();
        if (!sum) sum = named;
        else {
          const prev: Map<string, tf.Tensor> = sum;
          sum = new Map([...prev].map(([k, g]) => [k, tf.add(g, named.get(k)!)]));
          tf.dispose([...prev.values(), ...named.values()]);
        }
        // Stage 2: the sum leaves the backend while the next micro-batch computes.
        paged = this.gradientPaging !== null && micro < accum - 1;
        if (paged) {
          await this.gradientPaging!.pageOut(sum);
          sum = null;
        }
      }
    } catch (e) {
      // A step that fails midway (an allocation past the memory there is) frees what it made, so
      // the run can be tried again with a smaller batch in the same worker.
      tf.dispose([...losses, ...(sum?.values() ?? [])]);
      releaseFailedTape();
      this.rng.state = rngBefore;
      // A read from a buffer the GPU could not allocate fails: the cause is named, not the read.
      await gpuMemory?.check(during);
      throw e;
    }
    const grads = sum!;
    if (accum > 1) {
      for (const [k, g] of grads) {
        grads.set(k, tf.div(g, accum));
        g.dispose();
      }
    }
    const maxNorm = this.opts.maxGradNorm ?? 1.0;
    // FusedAdamW (WebGPU) and AdamW's SIMD kernel (wasm) scale the raw gradients themselves, so no
    // clipped copy of each is made, unless the adapter's onStep reads the clipped gradients
    // (AdaLoRA's importance).
    const fused =
      ((this.optimizer instanceof FusedAdamW && fusedKernelsOn()) || wasmAdamWOn()) && !this.adapter.onStep;
    let clipped: { norm: tf.Scalar; grads: Map<string, tf.Tensor> };
    let clipScale: tf.Scalar | null = null;
    if (fused) {
      const s = globalNormScale(grads, maxNorm);
      clipped = { norm: s.norm, grads };
      clipScale = s.scale;
    } else {
      clipped = clipByGlobalNorm(grads, maxNorm);
      tf.dispose([...grads.values()]);
    }
    const readback = tf.tidy(() => tf.concat([tf.stack(losses), tf.reshape(clipped.norm, [1])]));
    // Before any weight or moment changes: a step whose buffers the GPU could not allocate computed
    // from invalid memory (or could not read back at all), so its numbers are not used and the run
    // stays as it was.
    const unmade = (): void => {
      tf.dispose([...clipped.grads.values(), ...(clipScale ? [clipScale] : [])]);
      this.rng.state = rngBefore;
      // As a skipped step: the optimizer state that came in goes back out unchanged.
      if (incoming)
        this.optimizerPaging!.ready(incoming)
          .then(() => this.optimizerPaging!.pageOut())
          .catch(() => undefined);
    };
    let values: Float32Array;
    try {
      values = (await readback.data()) as Float32Array;
    } catch (e) {
      tf.dispose([readback, clipped.norm, ...losses]);
      await gpuMemory?.check(during, unmade);
      throw e;
    }
    tf.dispose([readback, clipped.norm, ...losses]);
    await gpuMemory?.check(during, unmade);
    const loss = values.slice(0, accum).reduce((a, b) => a + b, 0) / accum;
    const gradNorm = values[accum]!;
    // The global norm sums every gradient's squares, so one NaN or infinity anywhere shows in it:
    // the gradients are checked with the number clipping already reads back.
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      tf.dispose([...clipped.grads.values(), ...(clipScale ? [clipScale] : [])]);
      // The optimizer state came in for an update that is not made: it goes back out unchanged.
      if (incoming) {
        await this.optimizerPaging!.ready(incoming);
        this.optimizerPaging!.pageOut().catch(() => undefined);
      }
      return this.skipStep(loss, gradNorm, tokens, performance.now() - t0);
    }
    this.nonFiniteStreak = 0;
    const lr = this.lrAt(this.step);
    // Decoupled weight decay applies to matrices, not to biases, LayerNorm gains or 1-D vectors.
    if (incoming) await this.optimizerPaging!.ready(incoming);
    const decay = (name: string): boolean => (this.vars.get(name)?.rank ?? 0) >= 2;
    if (clipScale) {
      this.optimizer.apply(this.vars, clipped.grads, lr, decay, clipScale);
      clipScale.dispose();
    } else this.optimizer.apply(this.vars, clipped.grads, lr, decay);
    this.step++;
    try {
      await this.adapter.onStep?.({ step: this.step, grads: clipped.grads });
    } finally {
      tf.dispose([...clipped.grads.values()]);
    }
    // The write-out is not awaited here: the next step's page-in waits for it.
    this.optimizerPaging?.pageOut().catch(() => undefined);
    return {
      step: this.step,
      loss,
      lr,
      gradNorm,
      ms: performance.now() - t0,
      tokens,
    };
  }

  /**
   * A step whose loss or gradients were not finite: nothing was updated. The learning rate is
   * halved (up to MAX_LR_HALVINGS times) and the next step draws new examples; after
   * MAX_NONFINITE_STREAK such steps in a row, or once the halvings are used up, it throws.
   */
  private skipStep(loss: number, gradNorm: number, tokens: number, ms: number): StepStats {
    this.nonFiniteStreak++;
    this.skippedSteps++;
    const what = Number.isFinite(loss)
      ? `the gradients were not finite (global norm ${gradNorm})`
      : `the loss was ${loss}`;
    const halvings = Math.round(-Math.log2(this.lrScale));
    if (this.nonFiniteStreak >= MAX_NONFINITE_STREAK || halvings >= MAX_LR_HALVINGS) {
      const why =
        this.nonFiniteStreak >= MAX_NONFINITE_STREAK
          ? `${this.nonFiniteStreak} steps in a row`
          : `after the learning rate was already halved ${halvings} times`;
      throw new NonFiniteLossError(
        `${what} at step ${this.step + 1}, ${why}: the adapter keeps its weights from step ${this.step}; ` +
          `lower the learning rate (set ${this.opts.lr}, now ${this.lrAt(this.step).toExponential(2)}), raise warmup or check the data`,
      );
    }
    this.lrScale /= 2;
    return { step: this.step, loss, lr: this.lrAt(this.step), gradNorm, ms, tokens, skipped: true };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

/** Mean loss and perplexity over consecutive windows of a held-out stream. */
export async function evaluateLm(
  model: DecoderModel,
  adapter: Adapter | null,
  tokens: TokenStream,
  opts: { batchSize: number; seqLen: number; maxBatches?: number },
): Promise<{ loss: number; perplexity: number; tokens: number }> {
  let total = 0;
  let count = 0;
  for (const b of evalLmBatches(tokens, opts.batchSize, opts.seqLen, opts.maxBatches)) {
    const l = tf.tidy(() => lmBatchLoss(model, adapter, b, false, 0));
    total += (await l.data())[0]! * b.batch * b.seqLen;
    count += b.batch * b.seqLen;
    l.dispose();
  }
  const loss = total / Math.max(1, count);
  return { loss, perplexity: Math.exp(loss), tokens: count };
}
