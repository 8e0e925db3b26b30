/**
 * Builds the registry entry of a prompt-learning method from its config functions and its encoder
 * choice, so prompt tuning, prefix tuning, P-tuning and P-tuning v2 share one create/save/count path.
 */
import type { DecoderModel } from '../../model/decoder';
import { Rng } from '../../util/rng';
import { configFromPeftJson, configToPeftJson } from '../peft-json';
import type { MethodInfo } from '../method-info';
import type { Adapter, CreateOptions, PeftMethod } from '../types';
import type { PromptEncoderNet } from './encoders';
import { encoderParams, tableEncoder } from './encoders';
import type { PromptLearningConfig } from './config';
import { withModelSizes } from './config';
import { PrefixKvAdapter, SoftPromptAdapter } from './adapter';
import { InternalError } from '../../errors';

/** PromptLearningConfig fields PEFT writes that we do not model, at PEFT's defaults. */
const PEFT_EXTRA = { revision: null, auto_mapping: null };

export interface PromptLearningSpec<C extends PromptLearningConfig> {
  /** The method's description (its info.ts): names, kind, defaults. */
  info: MethodInfo<C>;
  validate(config: C, model?: DecoderModel): void;
  /** The trainable encoder for a config in training mode (sizes filled from the model). */
  encoder(config: C, model: DecoderModel, rng: Rng, opts: CreateOptions): PromptEncoderNet;
  /** Its parameter count, from the formula. */
  encoderParams(config: C, model: DecoderModel): number;
  /** PEFT fields we do not model, written to adapter_config.json at PEFT's defaults. */
  peftExtra?: Record<string, unknown>;
  /** Fills what PEFT requires of a saved config (prompt tuning's TEXT init needs a tokenizer name). */
  beforeSave?(config: C): C;
}

/**
 * Width of each encoded virtual token: d for prompt kinds, 2 L d for prefix kinds, where a prefix's
 * d is the key/value width (withModelSizes' tokenDim: smaller than the model's under GQA).
 */
function outDim(kind: 'prompt' | 'prefix', model: DecoderModel, c: PromptLearningConfig): number {
  return kind === 'prompt'
    ? model.config.nEmbd
    : 2 * model.config.nLayer * (c.tokenDim ?? model.config.nEmbd);
}

export function promptLearningMethod<C extends PromptLearningConfig>(
  spec: PromptLearningSpec<C>,
): PeftMethod<C> {
  const info = spec.info;
  const kind = info.kind;
  if (kind !== 'prompt' && kind !== 'prefix')
    throw new InternalError(`${info.cliName} is not a prompt-learning method`);
  return {
    ...info,
    validate: spec.validate,
    toPeftJson: (c) => configToPeftJson(spec.beforeSave?.(c) ?? c, { ...PEFT_EXTRA, ...spec.peftExtra }),
    fromPeftJson: (json, source) => configFromPeftJson(json, info.defaults('CAUSAL_LM'), source),
    create: (model, config, seed, opts = {}): Adapter => {
      spec.validate(config, model);
      const c = withModelSizes(config, model);
      const rng = new Rng(seed);
      // A saved adapter holds only the encoder's output (PEFT's inference mode builds a plain table).
      const encoder =
        c.inferenceMode || opts.forLoading
          ? tableEncoder(c.numVirtualTokens, outDim(kind, model, c), rng)
          : spec.encoder(c, model, rng, opts);
      return kind === 'prompt'
        ? new SoftPromptAdapter(c, encoder)
        : new PrefixKvAdapter(c, encoder, model.config.nLayer, c.numAttentionHeads ?? model.config.nHead);
    },
    countParams: (model, config) => {
      const c = withModelSizes(config, model);
      return c.inferenceMode
        ? encoderParams.table(c.numVirtualTokens, outDim(kind, model, c))
        : spec.encoderParams(c, model);
    },
  };
}
