/**
 * A short training run under offload settings and an optional memory budget, measured step by
 * step: the Learn section's "a budget that fails at stage 0 and trains at stage 3" (lesson 8). A
 * step whose peak backend memory (tf.profile's peak: GPU buffers on WebGPU, the heap's tensors on
 * wasm) goes over the budget ends the trial as refused, naming what it needed: on a GPU that step
 * would have been the out-of-memory. Plain data in, plain data out, so the compare worker runs it.
 */
import * as tf from '@tensorflow/tfjs';
import { methodInfo } from '../peft/catalog';
import type { DecoderModel } from '../model/decoder';
import { OffloadSession } from '../offload/session';
import type { PageKind, PageStore } from '../offload/page-store';
import { createAdapter, planAdapter } from '../train/plan';
import { taskBatchSource } from '../train/task-eval';
import type { TaskData } from '../data/task-data';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import { Trainer } from '../train/trainer';
import type { OffloadTrial, OffloadTrialRequest } from '../protocol/compare-protocol';

const MIB = 1024 * 1024;

export async function runOffloadTrial(
  model: DecoderModel,
  tokenizer: TextTokenizer,
  modelId: string,
  data: TaskData,
  req: OffloadTrialRequest,
  store: (kind: PageKind) => Promise<PageStore>,
): Promise<OffloadTrial> {
  const run = { steps: req.steps, seqLen: req.seqLen, seed: req.seed };
  const { method, config } = planAdapter(model, req.method, req.config ?? {}, data.info, run, modelId);
  const adapter = createAdapter(model, tokenizer, method, config, data.info, req.seed);
  let layerBytes = 0;
  for (const [name, v] of model.weights) if (/^(h|layers)\.\d+\./.test(name)) layerBytes += 4 * v.size;
  const out: OffloadTrial = {
    refused: null,
    losses: [],
    ms: [],
    peakBytes: [],
    residentBytes: 0,
    layerBytes,
    pager: null,
    notes: [],
  };
  let session: OffloadSession | null = null;
  let trainer: Trainer | null = null;
  try {
    session = await OffloadSession.start(model, adapter, req.offload, store);
    out.notes.push(...session.notes);
    trainer = new Trainer(model, adapter, taskBatchSource(data, req.seqLen), {
      steps: req.steps,
      lr: req.lr ?? methodInfo(method.cliName).defaultLr,
      batchSize: req.batchSize,
      seqLen: req.seqLen,
      seed: req.seed,
      maxGradNorm: 1.0,
      gradients: session.gradients(),
    });
    session.attach(trainer);
    const t = trainer;
    for (let i = 0; i < req.steps; i++) {
      let st: Awaited<ReturnType<Trainer['trainStep']>> | undefined;
      const prof = await tf.profile(async () => {
        st = await t.trainStep();
      });
      out.peakBytes.push(prof.peakBytes);
      out.residentBytes = tf.memory().numBytes;
      if (req.memoryBudgetMB !== null && prof.peakBytes > req.memoryBudgetMB * MIB) {
        out.refused =
          `step ${i + 1} needed ${(prof.peakBytes / MIB).toFixed(1)} MiB at its peak, over the ` +
          `${req.memoryBudgetMB} MiB budget: on a GPU of that size it would have run out of memory`;
        break;
      }
      out.losses.push(st!.loss);
      out.ms.push(st!.ms);
      // Let the worker answer messages between steps.
      await new Promise((r) => setTimeout(r, 0));
    }
    const stats = session.snapshot(t.step, t).pager;
    out.pager = stats ? { ...stats } : null;
  } finally {
    trainer?.dispose();
    await session?.end();
    adapter.dispose();
  }
  return out;
}
