/**
 * How an adapter joins a forward pass, by kind (never by method name):
 * prompt kinds prepend virtual token embeddings, prefix kinds supply past keys/values, inject and
 * full kinds need nothing here (their hooks or weights are already in the model).
 */
import * as tf from '@tensorflow/tfjs';
import type { ForwardDecorator } from '../model/generate';
import type { DecoderModel } from '../model/decoder';
import type { Adapter } from './types';

/** Extends a key mask [B, T] with ones for n leading virtual positions. */
function extendMask(mask: tf.Tensor2D | undefined, batch: number, n: number): tf.Tensor2D | undefined {
  return mask ? (tf.concat([tf.ones([batch, n]), tf.cast(mask, 'float32')], 1) as tf.Tensor2D) : undefined;
}

export function adapterDecorator(
  model: DecoderModel,
  adapter: Adapter | null,
  training = false,
  seed = 0,
): ForwardDecorator {
  return (opts, first) => {
    if (!adapter || !first) return opts;
    switch (adapter.kind) {
      case 'prompt': {
        const tokens = opts.inputsEmbeds ?? model.embedTokens(opts.ids!);
        const B = tokens.shape[0];
        const prompt = adapter.promptEmbeddings(B, training, seed); // [B, n, C]
        return {
          ...opts,
          ids: undefined,
          inputsEmbeds: tf.concat([prompt, tokens], 1) as tf.Tensor3D, // [B, n + T, C]
          attentionMask: extendMask(opts.attentionMask, B, adapter.numVirtualTokens),
        };
      }
      case 'prefix': {
        const B = (opts.inputsEmbeds ?? opts.ids!).shape[0];
        return {
          ...opts,
          past: adapter.pastKeyValues(B, training, seed),
          // GPT-2 counts the prefix as past tokens, so positions start at n, exactly as with PEFT.
          attentionMask: extendMask(opts.attentionMask, B, adapter.numVirtualTokens),
        };
      }
      case 'inject':
      case 'full':
        return opts;
    }
  };
}

/** Leading hidden positions that belong to virtual tokens and carry no label. */
export function virtualPositions(adapter: Adapter | null): number {
  return adapter?.kind === 'prompt' ? adapter.numVirtualTokens : 0;
}

/** Positions an adapter's virtual tokens take before the text (prompts and prefixes alike). */
export function reservedPositions(adapter: Adapter | null): number {
  return adapter?.kind === 'prompt' || adapter?.kind === 'prefix' ? adapter.numVirtualTokens : 0;
}
