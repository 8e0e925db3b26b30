/**
 * A new method is its folder plus one line in each table: the channel shift, defined only in this
 * test folder, is added to the catalog (its description) and the registry (its implementation),
 * and then trains in the Lab engine, has a form, takes CLI flags, races in Compare at an equal
 * budget and gets a memory ledger, with no other file knowing its name.
 */
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { initNodeBackend } from '../../../backend/node';
import { CompareEngine } from '../../../engine/compare-engine';
import { LabEngine } from '../../../engine/lab-engine';
import { publicFetch } from '../../../engine/testing';
import { UsageError } from '../../../errors';
import { readAdapterWeights } from '../../../io/peft-format';
import { addMethodInfo, METHOD_INFO } from '../../catalog';
import { addMethod, methodByCliName } from '../../registry';
import * as registry from '../../registry';
import {
  findMethod,
  formProblem,
  initialForm,
  initialForms,
  requestConfig,
} from '../../../../app/method-form';
import { buildConfig, methodFlagsHelp, methodOptions, pickMethod } from '../../../../cli/method-flags';
import { main } from '../../../../cli/main';
import { train } from '../../../../cli/commands/train';
import { channelShift } from '.';
import { channelShiftInfo } from './info';

// peftlab-s: 3 layers of width 96, so c_attn has 288 outputs: 288 shifts per layer shifted.
const PER_LAYER = 288;

describe('a method defined only in a test folder, added to the two tables', () => {
  const undo: (() => void)[] = [];
  beforeAll(async () => {
    undo.push(addMethodInfo(channelShiftInfo), addMethod(channelShift));
    await initNodeBackend('wasm');
  });
  afterAll(() => undo.reverse().forEach((u) => u()));

  it('is in both tables, and refuses a second entry of the same name', () => {
    expect(METHOD_INFO.map((m) => m.cliName)).toContain('channel-shift');
    expect(methodByCliName('channel-shift')).toBe(channelShift);
    expect(() => addMethodInfo(channelShiftInfo)).toThrow(/already in the catalog/);
    expect(() => addMethod(channelShift)).toThrow(/already registered/);
  });

  it('shows its form', () => {
    const info = findMethod('channel-shift')!;
    expect(info.label).toBe('Channel shift');
    const form = initialForm(info, 'CAUSAL_LM');
    expect(form).toEqual({ targetModules: ['c_attn'], numLayers: null });
    expect(Object.keys(initialForms('CAUSAL_LM'))).toContain('channel-shift');
    expect(requestConfig(info, { ...form, numLayers: 2 })).toEqual({
      targetModules: ['c_attn'],
      numLayers: 2,
    });
    expect(formProblem(info, { ...form, targetModules: [] })).toMatch(/tick at least one layer/);
  });

  it('takes CLI flags', () => {
    expect(methodOptions()['num-layers']).toEqual({ type: 'string' });
    expect(train.options['num-layers']).toEqual({ type: 'string' });
    expect(methodFlagsHelp()).toContain('Channel shift (--method channel-shift)');
    expect(train.usage).toContain('--num-layers N');
    const method = pickMethod({ method: 'channel-shift' }, registry);
    expect(method).toBe(channelShift);
    const config = buildConfig({ 'num-layers': '2' }, method, method.defaults('CAUSAL_LM'));
    expect(config).toMatchObject({ peftType: 'CHANNEL_SHIFT', numLayers: 2 });
    expect(() =>
      buildConfig(
        { 'num-layers': '2' },
        methodByCliName('lora'),
        methodByCliName('lora').defaults('CAUSAL_LM'),
      ),
    ).toThrow(UsageError);
  });

  it('trains from the command line', async () => {
    const out: string[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const args = ['train', '--model', 'public/models/peftlab-s', '--method', 'channel-shift'];
      expect(
        await main([
          ...args,
          '--num-layers',
          '2',
          '--steps',
          '3',
          '--batch-size',
          '2',
          '--seq-len',
          '16',
          '--json',
        ]),
      ).toBe(0);
    } finally {
      write.mockRestore();
      err.mockRestore();
    }
    const r = JSON.parse(out.join('').trim()) as {
      trainable_params: number;
      peft_type: string;
      final_loss: number;
    };
    expect(r.peft_type).toBe('CHANNEL_SHIFT');
    expect(r.trainable_params).toBe(2 * PER_LAYER);
    expect(Number.isFinite(r.final_loss)).toBe(true);
  });

  it('trains in the Lab engine with a real gradient, saves and loads back', async () => {
    const engine = new LabEngine(publicFetch, () => {});
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const result = await engine.train({
      method: 'channel-shift',
      config: { numLayers: 2 },
      train: { steps: 4, lr: 1e-2, batchSize: 2, seqLen: 32, seed: 1, warmupSteps: 1, evalEvery: 4 },
      corpusUrl: 'data/moby-dick/',
    });
    expect(result.trainableParams).toBe(2 * PER_LAYER);
    expect(result.peftType).toBe('CHANNEL_SHIFT');
    const files = await engine.exportAdapter();
    expect(JSON.parse(files.config)).toMatchObject({ peft_type: 'CHANNEL_SHIFT', num_layers: 2 });
    const weights = readAdapterWeights(new Uint8Array(files.weights), 'saved');
    const shift = weights.get('base_model.model.transformer.h.0.attn.c_attn.channel_shift')!;
    // The shifts start at zero: they moved only if a gradient reached them.
    expect(shift.data.some((x) => x !== 0)).toBe(true);

    const req = { prompt: 'Call me Ishmael.', maxNewTokens: 6, temperature: 0, seed: 0 };
    const adapted = await engine.generate({ ...req, useAdapter: true });
    await engine.dropAdapter();
    await engine.importAdapter({ ...files, source: 'saved' });
    expect((await engine.generate({ ...req, useAdapter: true })).generatedIds).toEqual(adapted.generatedIds);
  });

  it('races in Compare sized to an equal budget, with a memory ledger', async () => {
    const engine = new CompareEngine(publicFetch, () => {});
    await engine.loadModel({ id: 'peftlab-s', baseUrl: 'models/peftlab-s/' });
    const { defaultBudget } = await engine.budget({ task: 'moby-dick', seqLen: 24 });
    const snap = await engine.race({
      task: 'moby-dick',
      corpusUrl: 'data/moby-dick/',
      settings: { steps: 2, batchSize: 2, seqLen: 24, seed: 1, evalEvery: 2 },
      lanes: [{ method: 'lora' }, { method: 'channel-shift' }],
      equalBudget: defaultBudget,
    });
    const lane = snap.lanes[1]!;
    expect(lane.status).toBe('done');
    // Its knob (numLayers, 1 to 3 layers of 288 shifts) set to the count closest to the budget.
    const best = [1, 2, 3].reduce((a, b) =>
      Math.abs(b * PER_LAYER - defaultBudget) < Math.abs(a * PER_LAYER - defaultBudget) ? b : a,
    );
    expect((lane.config as unknown as { numLayers: number }).numLayers).toBe(best);
    expect(lane.trainableParams).toBe(best * PER_LAYER);
    const { predicted, measured } = lane.ledger;
    expect(predicted.total).toBeGreaterThan(0);
    expect(predicted.gradients).toBe(4 * best * PER_LAYER);
    expect(measured).not.toBeNull();
    expect(measured!.parameters).toBe(predicted.parameters);
  });
});
