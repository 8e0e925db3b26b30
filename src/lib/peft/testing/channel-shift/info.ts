/**
 * A method that lives only in this test folder, to show a new method needs its folder and a line
 * in each of the two tables, nothing else: a trained shift added to each output channel of the
 * targeted linear layers (y = x W + b + s), on the first numLayers layers. Its facts, tfjs-free,
 * as every method's info.ts.
 */
import type { MethodInfo } from '../../method-info';
import { TARGETS } from '../../method-info';
import type { TaskType } from '../../../data/tasks/registry';
import type { PeftConfigBase } from '../../types';

export interface ChannelShiftConfig extends PeftConfigBase {
  peftType: 'CHANNEL_SHIFT';
  /** Layers whose outputs are shifted (list: exact or suffix match; or one regex). */
  targetModules: string[] | string;
  /** Only the first numLayers layers are shifted (null: every layer). */
  numLayers: number | null;
}

export function channelShiftDefaults(taskType: TaskType): ChannelShiftConfig {
  return {
    peftType: 'CHANNEL_SHIFT',
    taskType,
    baseModelNameOrPath: null,
    inferenceMode: false,
    targetModules: ['c_attn'],
    numLayers: null,
  };
}

// A request naming this method carries its fields, typed as every method's: the request map is an
// interface that a method's folder extends (TypeScript's module augmentation), not a list to edit.
declare module '../../method-config' {
  interface MethodConfigs {
    'channel-shift': ChannelShiftConfig;
  }
}

export const channelShiftInfo: MethodInfo<ChannelShiftConfig> = {
  cliName: 'channel-shift',
  label: 'Channel shift',
  peftType: 'CHANNEL_SHIFT',
  kind: 'inject',
  taskTypes: ['CAUSAL_LM'],
  summary: 'A trained shift on each output channel of chosen linear layers.',
  defaultLr: 1e-2,
  defaults: channelShiftDefaults,
  fields: [
    TARGETS,
    {
      field: 'numLayers',
      doc: 'Shift only the first N layers',
      type: 'int',
      min: 1,
      nullable: 'every layer',
    },
  ],
  // One value per output channel per layer: the count grows with the number of layers shifted.
  sizeKnob: () => ({ field: 'numLayers', max: (model) => model.nLayer }),
  // An elementwise per-channel change of a layer's output, as IA3's output scale: its fitted counts.
  ledger: { profile: () => 'ia3' },
  capabilities: {},
};
