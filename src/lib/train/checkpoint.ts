/**
 * Checkpoints for long runs (pretraining, browser resume): trainable weights, AdamW moments, the
 * step, the batch RNG's state and what the adapter keeps beyond its weights (AdaLoRA's importance
 * averages and rank pattern), so a resumed run produces exactly the losses an uninterrupted one would. Serialised as one safetensors file (tensors) + one JSON (the rest);
 * where they are written is the caller's business.
 */
import * as tf from '@tensorflow/tfjs';
import { parseSafetensorsHeader, readTensorAsFloat32, writeSafetensors } from '../io/safetensors';
import type { TensorToWrite } from '../io/safetensors';
import type { Trainer } from './trainer';
import { CheckpointError } from '../errors';
import { assertFiniteTensors } from '../util/finite';

export interface CheckpointFiles {
  tensors: Uint8Array;
  state: string;
}

export async function saveCheckpoint(
  trainer: Trainer,
  extra: Record<string, unknown> = {},
): Promise<CheckpointFiles> {
  const out = new Map<string, TensorToWrite>();
  for (const [k, v] of trainer.adapter.trainable()) {
    out.set(`param/${k}`, { dtype: 'F32', shape: v.shape, data: (await v.data()) as Float32Array });
  }
  const opt = await trainer.optimizer.state();
  for (const [k, d] of opt.m)
    out.set(`adam_m/${k}`, { dtype: 'F32', shape: trainer.adapter.trainable().get(k)!.shape, data: d });
  for (const [k, d] of opt.v)
    out.set(`adam_v/${k}`, { dtype: 'F32', shape: trainer.adapter.trainable().get(k)!.shape, data: d });
  // What the adapter keeps beyond its weights (AdaLoRA's importance averages and rank pattern).
  const adapterState = await trainer.adapter.trainingState?.();
  for (const [k, t] of adapterState?.tensors ?? []) out.set(`adapter/${k}`, { dtype: 'F32', ...t });
  // A NaN in the weights or moments would make every resumed step fail: such a state is refused.
  assertFiniteTensors(out, `the checkpoint at step ${trainer.step}`);
  const state = {
    step: trainer.step,
    rng: trainer.rng.state,
    adamT: opt.t,
    lrScale: trainer.lrScale,
    skippedSteps: trainer.skippedSteps,
    ...(adapterState ? { adapter: adapterState.json } : {}),
    ...extra,
  };
  return { tensors: writeSafetensors(out), state: JSON.stringify(state) };
}

/** Restores weights, optimizer and position into a trainer built with the same settings; returns the extra fields. */
export function loadCheckpoint(
  trainer: Trainer,
  files: CheckpointFiles,
  source = 'checkpoint',
): Record<string, unknown> {
  const header = parseSafetensorsHeader(files.tensors, `${source}/tensors.safetensors`);
  const vars = trainer.adapter.trainable();
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  const adapterTensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const info of header.tensors) {
    const cut = info.name.indexOf('/');
    const kind = info.name.slice(0, cut);
    const key = info.name.slice(cut + 1);
    const data = readTensorAsFloat32(files.tensors, info);
    if (kind === 'param') {
      const target = vars.get(key);
      if (!target)
        throw new CheckpointError(
          `${source}: parameter ${key} does not belong to this run: start the run again`,
        );
      tf.tidy(() => target.assign(tf.tensor(data, target.shape, 'float32')));
    } else if (kind === 'adam_m') m.set(key, data);
    else if (kind === 'adam_v') v.set(key, data);
    else if (kind === 'adapter') adapterTensors.set(key, { shape: info.shape, data });
  }
  const state = JSON.parse(files.state) as { step: number; rng: number; adamT: number } & Record<
    string,
    unknown
  >;
  trainer.optimizer.loadState({ t: state.adamT, m, v }, new Map([...vars].map(([k, x]) => [k, x.shape])));
  trainer.step = state.step;
  trainer.rng.state = state.rng;
  // Checkpoints from before the non-finite guard have neither: the full rate, nothing skipped.
  trainer.lrScale = typeof state.lrScale === 'number' ? state.lrScale : 1;
  trainer.skippedSteps = typeof state.skippedSteps === 'number' ? state.skippedSteps : 0;
  if (state.adapter !== undefined || adapterTensors.size > 0) {
    trainer.adapter.loadTrainingState?.({
      tensors: adapterTensors,
      json: (state.adapter ?? {}) as Record<string, unknown>,
    });
  }
  return state;
}
