/**
 * Gradients of one micro-batch computed a layer at a time (gradient checkpointing, Chen et al.
 * 2016, as HF's `gradient_checkpointing_enable()`): the forward keeps only each layer's input;
 * the backward recomputes one layer under its own gradient tape, takes the gradient with respect
 * to its input, its past keys/values and the trainable values inside it, and moves on. Activation
 * memory is then one layer's tape plus L inputs instead of L layers' tapes, for one extra forward
 * of every layer but the last.
 *
 * Because every await happens between layers, a LayerPager can page each layer's frozen weights in
 * just before it is needed (ZeRO-3), which a single synchronous tape over the model cannot allow.
 *
 * Phases (the sums of the same chain rule the one-tape trainer applies):
 *   1. inputs and forward, no tape: x_0 (with virtual tokens), prefixes, the inputs x_0..x_(L-1);
 *   2. the last layer and the head on one tape: the loss, d loss / d x_(L-1), and the gradients of
 *      the head, the final norm, the adapter's extra loss and the last layer (so L-1 layers are recomputed);
 *   3. layers L-2..0: recompute layer i on a tape; d x_i, d past_i, and the layer's own gradients;
 *   4. inputs again on a tape: sum(x_0 * d x_0) + sum(past_i * d past_i) gives the gradients of the
 *      prompt/prefix encoders (and, for full fine-tuning, of the embeddings).
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderModel, ForwardContext, LayerKV } from '../model/decoder';
import type { Adapter } from '../peft/types';
import type { GradientFn, MicroBatch } from '../train/trainer';
import type { LayerPager } from './layer-pager';

/** Adds `g` into `acc` under `name`, disposing what it replaces. */
function accumulate(acc: Map<string, tf.Tensor>, name: string, g: tf.Tensor): void {
  const prev = acc.get(name);
  if (!prev) {
    acc.set(name, g);
    return;
  }
  acc.set(name, tf.add(prev, g));
  tf.dispose([prev, g]);
}

/** A throwaway trainable variable holding a copy of `t`, to take a gradient with respect to it. */
const probe = (t: tf.Tensor): tf.Variable => tf.variable(t, true);

export async function layerwiseGradients(
  model: DecoderModel,
  adapter: Adapter,
  mb: MicroBatch,
  vars: tf.Variable[],
  seed: number,
  pager: LayerPager | null,
): Promise<{ value: tf.Scalar; grads: tf.NamedTensorMap }> {
  const L = model.config.nLayer;
  const acc = new Map<string, tf.Tensor>();
  const names = new Set(vars.map((v) => v.name));
  const keepGrads = (grads: tf.NamedTensorMap, skip: Set<string>): void => {
    for (const [k, g] of Object.entries(grads)) {
      if (skip.has(k)) continue;
      if (names.has(k)) accumulate(acc, k, g);
      else g.dispose();
    }
  };

  // 1. Inputs and the forward, without a tape; only each layer's input is kept.
  // The prelude's context, as the one-tape pass has it: the same attention path (fused, with the
  // padding or past-key mask it carries) runs here, so both give the same numbers and speed.
  let ctx: ForwardContext = { training: true, seed };
  const first = tf.tidy(() => {
    const opts = mb.parts.inputs(model, adapter, true, seed);
    const { x, mask, ctx: c } = model.prelude(opts);
    ctx = { ...c, training: true, seed };
    [ctx.keyMask, ctx.pastKeyMask].forEach((t) => t && tf.keep(t));
    return { x, mask, past: opts.past ?? [] };
  });
  const past = (i: number): LayerKV | undefined => first.past[i];
  const xs: tf.Tensor3D[] = [first.x];

  /**
   * Layer i on its own tape from its kept input: `f` of its output, and the gradients with respect
   * to its input, its past keys/values and the trainable values (the probes are freed here).
   */
  const layerGrads = (i: number, f: (out: tf.Tensor3D) => tf.Scalar) => {
    const xi = probe(xs[i]!);
    const kv0 = past(i);
    const pk = kv0 ? probe(kv0.k) : null;
    const pv = kv0 ? probe(kv0.v) : null;
    const probeVars = [xi, ...(pk && pv ? [pk, pv] : [])];
    const { value, grads } = tf.variableGrads(() => {
      const kv = pk && pv ? { k: pk as tf.Tensor4D, v: pv as tf.Tensor4D } : undefined;
      return f(model.block(i, xi as tf.Tensor3D, first.mask, kv, ctx).x);
    }, [...probeVars, ...vars]);
    const dx = grads[xi.name]!;
    const dkv = pk && pv ? { k: grads[pk.name] as tf.Tensor4D, v: grads[pv.name] as tf.Tensor4D } : null;
    const probes = new Set(probeVars.map((p) => p.name));
    tf.dispose(probeVars);
    return { value, grads, probes, dx, dkv };
  };
  try {
    for (let i = 0; i < L - 1; i++) {
      await pager?.acquire(i);
      xs.push(tf.tidy(() => model.block(i, xs[i]!, first.mask, past(i), ctx).x));
      pager?.release(i);
    }

    // 2. The last layer and the head on one tape: the loss, d loss / d x_(L-1), and the gradients of
    //    the head, the final norm, the adapter's extra loss and the last layer. The last layer is computed once
    //    (no recomputation, one page-in), since its backward follows its forward at once.
    const dPast: (LayerKV | null)[] = [];
    let dy: tf.Tensor;
    let loss: tf.Scalar;
    {
      const i = L - 1;
      await pager?.acquire(i);
      const { value, grads, probes, dx, dkv } = layerGrads(i, (out) =>
        mb.parts.lossFromHidden(model, adapter, model.finalNorm(out), true),
      );
      pager?.release(i);
      loss = value;
      dy = dx;
      dPast[i] = dkv;
      keepGrads(grads, probes);
    }

    // 3. The other layers, last to first, each recomputed on its own tape.
    for (let i = L - 2; i >= 0; i--) {
      await pager?.acquire(i);
      const d = dy;
      const { value, grads, probes, dx, dkv } = layerGrads(i, (out) => tf.sum(tf.mul(out, d)) as tf.Scalar);
      pager?.release(i);
      value.dispose();
      d.dispose();
      dy = dx;
      dPast[i] = dkv;
      keepGrads(grads, probes);
    }

    // 4. Back into whatever made the inputs: virtual tokens, prefixes, or (full) the embeddings.
    const needsInputs = adapter.kind === 'prompt' || adapter.kind === 'prefix' || adapter.kind === 'full';
    if (needsInputs) {
      const { value, grads } = tf.variableGrads(() => {
        const opts = mb.parts.inputs(model, adapter, true, seed);
        let s = tf.sum(tf.mul(model.prelude(opts).x, dy));
        opts.past?.forEach((kv, i) => {
          const d = dPast[i];
          if (d) s = tf.add(s, tf.add(tf.sum(tf.mul(kv.k, d.k)), tf.sum(tf.mul(kv.v, d.v))));
        });
        return s as tf.Scalar;
      }, vars);
      value.dispose();
      keepGrads(grads, new Set());
    }
    dy.dispose();
    tf.dispose(dPast.flatMap((d) => (d ? [d.k, d.v] : [])));
    return { value: loss, grads: Object.fromEntries(acc) };
  } finally {
    tf.dispose(xs);
    tf.dispose([first.mask, ...first.past.flatMap((kv) => [kv.k, kv.v])]);
    tf.dispose([ctx.keyMask, ctx.pastKeyMask].filter((t): t is tf.Tensor2D => !!t));
    pager?.endStep();
  }
}

/** The Trainer's gradient function for layer-by-layer recomputation (and paging, given a pager). */
export function layerwiseGradientFn(
  model: DecoderModel,
  adapter: Adapter,
  pager: LayerPager | null = null,
): GradientFn {
  return (mb, vars, seed) => layerwiseGradients(model, adapter, mb, vars, seed, pager);
}
