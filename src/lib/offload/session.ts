/**
 * One training run's offload, set up from the settings a person picks (or a DeepSpeed config maps
 * to): ZeRO stage 1 moves AdamW's state out between steps, stage 2 also the gradients summed between
 * micro-batches (with gradient accumulation; without it there is nothing to move, said in `notes`),
 * stage 3 also pages the frozen layers under a memory budget (with layer-by-layer recomputation,
 * which paging needs), and gradient checkpointing alone recomputes without paging. Snapshots after
 * each step feed the Offload screen.
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderModel } from '../model/decoder';
import type { Adapter } from '../peft/types';
import type { GradientFn, Trainer } from '../train/trainer';
import { LayerPager } from './layer-pager';
import type { EvictionPolicy, PagerStats } from './layer-pager';
import { layerwiseGradientFn } from './layerwise';
import { OptimizerPager } from './optimizer-pager';
import type { OptimizerPagerStats } from './optimizer-pager';
import type { PageKind, PageStore } from './page-store';
import { GradientPager } from './gradient-pager';
import type { GradientPagerStats } from './gradient-pager';
import { int8Pages } from './page-format';
import type { Int8Choice } from './page-format';

export interface OffloadRequest {
  stage: 0 | 1 | 2 | 3;
  /** Stage 3: megabytes of frozen layer weights allowed resident at once. */
  budgetMB: number;
  prefetch: boolean;
  policy: EvictionPolicy;
  /** int8 or float32 pages of the frozen layers, or 'auto': int8 when they are read from IndexedDB (page-format.ts). */
  int8: Int8Choice;
  gradientCheckpointing: boolean;
  /**
   * Where pages go when they leave the backend: `memory` keeps them in the page's JavaScript memory
   * (DeepSpeed's offload to CPU: fast, gone on reload), `indexeddb` writes them to IndexedDB
   * (DeepSpeed's NVMe: slower, bounded by the disk). Default indexeddb.
   */
  device?: OffloadDevice;
}

export type OffloadDevice = 'memory' | 'indexeddb';

export interface OffloadSnapshot {
  step: number;
  stage: number;
  /** What tfjs holds on the backend now (GPU buffers on WebGPU, the heap on wasm). */
  backendBytes: number;
  /** Frozen layer weights resident (stage 3), or all of them. */
  layerBytes: number;
  /** Per layer: where its frozen weights are now. */
  layers: ('resident' | 'loading' | 'stored')[];
  optimizerBytes: number;
  pager: PagerStats | null;
  optimizer: OptimizerPagerStats | null;
  gradients: GradientPagerStats | null;
}

export class OffloadSession {
  readonly notes: string[] = [];

  private constructor(
    private readonly model: DecoderModel,
    readonly settings: OffloadRequest,
    private readonly pager: LayerPager | null,
    private readonly adapter: Adapter,
    private readonly optimizerStore: PageStore | null,
    private readonly gradientStore: PageStore | null,
    private optimizerPager: OptimizerPager | null = null,
    private gradientPager: GradientPager | null = null,
  ) {}

  /**
   * Pages the frozen layers out (stage 3) into `store('layers')`; `store('optimizer')` takes AdamW's
   * state (stage 1 and up), `store('gradients')` the accumulated gradients (stage 2 and up).
   */
  static async start(
    model: DecoderModel,
    adapter: Adapter,
    settings: OffloadRequest,
    store: (kind: PageKind) => Promise<PageStore>,
  ): Promise<OffloadSession> {
    const int8 = int8Pages(settings);
    const pager =
      settings.stage === 3
        ? await LayerPager.create(model, await store('layers'), {
            budgetBytes: settings.budgetMB * 1024 * 1024,
            policy: settings.policy,
            prefetch: settings.prefetch,
            int8,
            // Not full fine-tuning's: its trainable variables are the base weights, which cannot page.
            adapterOwned: new Set(adapter.kind === 'full' ? [] : adapter.trainable().values()),
          })
        : null;
    const s = new OffloadSession(
      model,
      settings,
      pager,
      adapter,
      settings.stage >= 1 ? await store('optimizer') : null,
      settings.stage >= 2 ? await store('gradients') : null,
    );
    if (settings.int8 === true && settings.stage !== 3)
      s.notes.push('int8 applies to paged layers: it takes stage 3');
    if (settings.int8 === 'auto' && int8) {
      s.notes.push(
        'int8 pages, chosen automatically: the layers are read back from IndexedDB, and int8 reads a quarter of the bytes; choose float32 pages to train exactly as the resident model',
      );
    }
    return s;
  }

  /** The trainer's gradient function: layer by layer when paging or checkpointing, else the default. */
  gradients(): GradientFn | undefined {
    return this.pager || this.settings.gradientCheckpointing
      ? layerwiseGradientFn(this.model, this.adapter, this.pager)
      : undefined;
  }

  /** Hooks the optimizer offload (stage 1 and up) and the gradient offload (stage 2 and up) into the trainer. */
  attach(trainer: Trainer): void {
    if (this.gradientStore) {
      this.gradientPager = new GradientPager(this.gradientStore);
      trainer.gradientPaging = this.gradientPager;
      if ((trainer.opts.gradAccumSteps ?? 1) <= 1) {
        this.notes.push(
          'stage 2 moves the gradients summed between micro-batches: with one micro-batch per step (no accumulation) there is nothing to move',
        );
      }
    }
    if (!this.optimizerStore) return;
    const shapes = new Map([...trainer.adapter.trainable()].map(([k, v]) => [k, v.shape]));
    this.optimizerPager = new OptimizerPager(trainer.optimizer, this.optimizerStore, shapes);
    trainer.optimizerPaging = this.optimizerPager;
  }

  snapshot(step: number, trainer: Trainer): OffloadSnapshot {
    const layers = this.pager
      ? this.pager.residency()
      : Array.from({ length: this.model.config.nLayer }, () => 'resident' as const);
    let all = 0;
    for (const [name, v] of this.model.weights) if (/^(h|layers)\.\d+\./.test(name)) all += 4 * v.size;
    return {
      step,
      stage: this.settings.stage,
      backendBytes: tf.memory().numBytes,
      layerBytes: this.pager ? this.pager.residentBytes : all,
      layers,
      optimizerBytes: trainer.optimizer.bytes(),
      pager: this.pager ? { ...this.pager.stats } : null,
      optimizer: this.optimizerPager ? { ...this.optimizerPager.stats } : null,
      gradients: this.gradientPager ? { ...this.gradientPager.stats } : null,
    };
  }

  /**
   * Runs `fn` (a held-out evaluation) with the whole model resident: evaluation runs the model in
   * one pass, so at stage 3 it goes over the budget while it lasts.
   */
  whole<T>(fn: () => Promise<T>): Promise<T> {
    return this.pager ? this.pager.whole(fn) : fn();
  }

  /** Puts the frozen layers back resident, so the model is whole for answering and saving. */
  async end(): Promise<void> {
    await this.pager?.restore();
  }
}
