/** The channel shift's implementation and registry entry (see info.ts). */
import * as tf from '@tensorflow/tfjs';
import { InternalError, PeftConfigError } from '../../../errors';
import type { DecoderConfig } from '../../../model/family';
import { linearShape } from '../../../model/family';
import type { DecoderModel, LinearHook } from '../../../model/decoder';
import { newVariable } from '../../../model/ops';
import type { LinearSite } from '../../inject';
import { targetedSites } from '../../inject';
import type { InjectSite } from '../../inject-base';
import { InjectBase } from '../../inject-base';
import { configFromPeftJson, configToPeftJson } from '../../peft-json';
import { PEFT_PREFIX } from '../../state';
import type { InjectAdapter, PeftMethod } from '../../types';
import type { ChannelShiftConfig } from './info';
import { channelShiftDefaults, channelShiftInfo } from './info';

interface ShiftSite extends InjectSite {
  /** [out]: added to every row of the layer's output. */
  shift: tf.Variable;
}

function sites(model: DecoderConfig, c: ChannelShiftConfig): LinearSite[] {
  const layers = c.numLayers === null ? null : Array.from({ length: c.numLayers }, (_, i) => i);
  return targetedSites(model, c.targetModules, layers);
}

function validate(c: ChannelShiftConfig, model?: DecoderModel): void {
  if (c.numLayers !== null && (!Number.isInteger(c.numLayers) || c.numLayers < 1)) {
    throw new PeftConfigError(`numLayers must be a positive integer or null, got ${c.numLayers}`);
  }
  if (model && c.numLayers !== null && c.numLayers > model.config.nLayer) {
    throw new PeftConfigError(
      `numLayers ${c.numLayers} is more than the model's ${model.config.nLayer} layers: choose at most ${model.config.nLayer}`,
    );
  }
  if (model) sites(model.config, c);
}

class ShiftAdapter
  extends InjectBase<ChannelShiftConfig, ShiftSite>
  implements InjectAdapter<ChannelShiftConfig>
{
  constructor(model: DecoderModel, config: ChannelShiftConfig) {
    super(model, config, 'channel shift');
    for (const site of sites(model.config, config)) {
      const [, out] = linearShape(model.config, site.module);
      // Zero: training starts from the base model exactly.
      const shift = newVariable(tf.zeros([out]), true);
      const s: ShiftSite = {
        site,
        shift,
        vars: new Map([[`${PEFT_PREFIX}${site.hfName}.channel_shift`, shift]]),
      };
      const hook: LinearHook = {
        apply: (_x, base) => (this.merged ? base : tf.add(base, s.shift)),
      };
      this.install(s, hook);
    }
  }

  protected mergeSite(s: ShiftSite, _weight: tf.Variable, bias: tf.Variable | undefined): void {
    // A test method for GPT-2, whose every linear layer has a bias.
    if (!bias) throw new InternalError(`${s.site.key} has no bias to shift`);
    bias.assign(tf.add(bias, s.shift));
  }
}

export const channelShift: PeftMethod<ChannelShiftConfig> = {
  ...channelShiftInfo,
  validate,
  toPeftJson: (c) => configToPeftJson(c),
  fromPeftJson: (json, source) => configFromPeftJson(json, channelShiftDefaults('CAUSAL_LM'), source),
  create: (model, config) => {
    validate(config, model);
    return new ShiftAdapter(model, config);
  },
  countParams: (model, c) =>
    sites(model.config, c).reduce((n, s) => n + linearShape(model.config, s.module)[1], 0),
};
