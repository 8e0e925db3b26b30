/**
 * Full fine-tuning, the baseline every comparison needs: every base weight trains. The weights
 * as they were are kept, so disposing the "adapter" gives the base model back unchanged and the
 * app can still show base and fine-tuned answers side by side.
 */
import * as tf from '@tensorflow/tfjs';
import { configFromPeftJson, configToPeftJson } from '../peft-json';
import type { FullAdapter as FullAdapterApi, PeftMethod } from '../types';
import { fullInfo } from './info';
import type { FullConfig } from './config';
import { fullDefaults } from './config';
import type { DecoderModel } from '../../model/decoder';
import type { TaskHead } from '../../model/heads';
import { countParameters } from '../../model/family';
import { llamaStateKey } from '../../model/load';
import type { StateDict } from '../state';
import {
  assignFromState,
  checkHeadFits,
  checkNoExtraKeys,
  headKeys,
  headState,
  loadHeadState,
  readForState,
} from '../state';

/**
 * Weights are saved under HF names and layouts, as a full checkpoint would be: GPT-2's
 * `transformer.*` (Conv1D, [in, out] as held), the Llama family's `model.*` and an untied
 * `lm_head.weight` (LlamaForCausalLM's; nn.Linear's [out, in], so the block linears are transposed);
 * for classification, the head at the top level: `score.weight` (…ForSequenceClassification),
 * `classifier.*` (GPT2ForTokenClassification) or `score.*` (LlamaForTokenClassification).
 */
function stateKey(model: DecoderModel, name: string): { key: string; transpose: boolean } {
  return model.family === 'gpt2' ? { key: `transformer.${name}`, transpose: false } : llamaStateKey(name);
}

export class FullFineTune implements FullAdapterApi<FullConfig> {
  readonly kind = 'full' as const;
  private readonly originals = new Map<string, tf.Tensor>();
  private clsHead: TaskHead | null = null;

  constructor(
    private readonly model: DecoderModel,
    readonly config: FullConfig,
  ) {
    for (const [name, v] of model.weights) this.originals.set(name, tf.clone(v));
    model.setTrainable(true);
  }

  get head(): TaskHead | null {
    return this.clsHead;
  }

  attachHead(head: TaskHead): void {
    this.clsHead = checkHeadFits(this.clsHead, head, this.config.taskType, 'full fine-tune');
  }

  trainable(): Map<string, tf.Variable> {
    const m = new Map([...this.model.weights].map(([n, v]) => [stateKey(this.model, n).key, v]));
    for (const [k, p] of headKeys(this.clsHead, '')) m.set(k, p.variable);
    return m;
  }

  async stateDict(): Promise<StateDict> {
    const out: StateDict = new Map();
    for (const [n, v] of this.model.weights) {
      const { key, transpose } = stateKey(this.model, n);
      out.set(key, await readForState(v, transpose));
    }
    await headState(out, this.clsHead, '');
    return out;
  }

  loadStateDict(tensors: StateDict, source: string): void {
    checkNoExtraKeys(tensors, new Set(this.trainable().keys()), source);
    for (const [n, v] of this.model.weights) {
      const { key, transpose } = stateKey(this.model, n);
      assignFromState(tensors, key, v, source, transpose);
    }
    loadHeadState(tensors, this.clsHead, '', source);
    this.model.invalidateCaches();
  }

  disableAdapter(): () => void {
    const trained = new Map([...this.model.weights].map(([n, v]) => [n, tf.clone(v)]));
    for (const [name, t] of this.originals) this.model.w(name).assign(t);
    // Parked, the base is frozen again, so other adapters on it skip the base's weight gradients
    // (ops.ts takes the frozen path) exactly as they would without a full fine-tune resident.
    this.model.setTrainable(false);
    return () => {
      for (const [name, t] of trained) {
        this.model.w(name).assign(t);
        t.dispose();
      }
      this.model.setTrainable(true);
    };
  }

  dispose(): void {
    for (const [name, t] of this.originals) {
      this.model.w(name).assign(t);
      t.dispose();
    }
    this.originals.clear();
    this.model.setTrainable(false);
    this.clsHead?.dispose();
    this.clsHead = null;
  }
}

export const full: PeftMethod<FullConfig> = {
  ...fullInfo,
  validate: () => {},
  toPeftJson: (c) => configToPeftJson(c),
  fromPeftJson: (json, source) => configFromPeftJson(json, fullDefaults('CAUSAL_LM'), source),
  create: (model, config) => new FullFineTune(model, config),
  countParams: (model) => countParameters(model.config),
};
