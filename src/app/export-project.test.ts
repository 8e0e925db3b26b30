/**
 * The Lab's "Export as a Python project": the zip holds the writer's files and the bundled model
 * under one folder, the offload form maps onto DeepSpeed's targets, a model that is not bundled is
 * refused with what to do, and (with Python, as ours-in-peft.test.ts finds it) the unzipped
 * project's train.py runs 2 steps on the model it carries and saves PEFT's adapter files.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExportError } from '../lib/errors';
import { TASKS } from '../lib/data/tasks/registry';
import { DEFAULT_OFFLOAD_FORM } from './offload';
import { findMethod, initialForm } from './method-form';
import { labProjectZip, offloadSettings } from './export-project';
import type { LabExport } from './export-project';
import { pythonForTests, requirePython, skipWithoutPython } from '../../scripts/python-for-tests';

/** Serves public/ as the app's base URL "/" does. */
const fromPublic = async (url: string): Promise<Response> => {
  const path = join('public', url.replace(/^\//, ''));
  return existsSync(path) ? new Response(readFileSync(path)) : new Response(null, { status: 404 });
};

const input = (over: Partial<LabExport> = {}): LabExport => ({
  modelId: 'peftlab-s',
  bundled: ['peftlab-s', 'peftlab-m', 'peftlab-l'],
  baseUrl: '/',
  method: findMethod('lora')!,
  form: { ...initialForm(findMethod('lora')!, 'CAUSAL_LM'), r: 4 },
  task: TASKS.find((t) => t.id === 'moby-dick')!,
  train: {
    steps: 20,
    lr: 1e-2,
    batchSize: 2,
    seqLen: 32,
    seed: 1,
    warmupSteps: 2,
    evalEvery: 0,
    gradAccumSteps: 2,
    maxGradNorm: 0.5,
  },
  offload: { ...DEFAULT_OFFLOAD_FORM, stage: 3, device: 'memory' },
  ...over,
});

const py = pythonForTests();

describe('Export as a Python project (the Lab)', () => {
  it('maps the offload form onto DeepSpeed: page memory is CPU, IndexedDB is NVMe', () => {
    const t = input().train;
    expect(offloadSettings({ ...DEFAULT_OFFLOAD_FORM, stage: 3, device: 'memory' }, t)).toMatchObject({
      stage: 3,
      offloadOptimizer: 'cpu',
      offloadParam: 'cpu',
      gradientAccumulationSteps: 2,
      maxGradNorm: 0.5,
    });
    expect(offloadSettings({ ...DEFAULT_OFFLOAD_FORM, stage: 1 }, t)).toMatchObject({
      offloadOptimizer: 'nvme',
      offloadParam: 'none',
    });
    expect(offloadSettings({ ...DEFAULT_OFFLOAD_FORM, stage: 0 }, t)).toMatchObject({
      offloadOptimizer: 'none',
    });
  });

  it('refuses a model that is not bundled, saying what to do', async () => {
    await expect(labProjectZip(input({ modelId: 'hub: openai-community/gpt2' }), fromPublic)).rejects.toThrow(
      ExportError,
    );
    await expect(labProjectZip(input({ modelId: 'hub: openai-community/gpt2' }), fromPublic)).rejects.toThrow(
      /peft-lab export/,
    );
  });

  it.skipIf(skipWithoutPython(py, "the Lab's exported project"))(
    'zips a project that unzips and trains on the model it carries',
    async () => {
      const python = requirePython(py);
      const { name, zip } = await labProjectZip(input(), fromPublic);
      expect(name).toBe('peft-lab-lora-moby-dick.zip');
      const dir = mkdtempSync(join(tmpdir(), 'lab-export-'));
      try {
        writeFileSync(join(dir, name), zip);
        const unzip = spawnSync(
          python,
          [
            '-c',
            'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])',
            join(dir, name),
            dir,
          ],
          { encoding: 'utf8' },
        );
        expect(unzip.status, unzip.stderr).toBe(0);
        const project = join(dir, 'peft-lab-lora-moby-dick');
        const ds = JSON.parse(readFileSync(join(project, 'ds_config.json'), 'utf8')) as Record<
          string,
          unknown
        >;
        expect(ds).toMatchObject({
          gradient_accumulation_steps: 2,
          zero_optimization: { stage: 3, offload_param: { device: 'cpu' } },
        });
        const r = spawnSync(python, [join(project, 'train.py'), '--max-steps', '2'], {
          encoding: 'utf8',
          env: { ...process.env, OMP_NUM_THREADS: '1', TOKENIZERS_PARALLELISM: 'false' },
          timeout: 240_000,
        });
        expect(r.status, r.stderr.slice(-2000)).toBe(0);
        expect(existsSync(join(project, 'output/adapter_model.safetensors'))).toBe(true);
        const cfg = JSON.parse(readFileSync(join(project, 'output/adapter_config.json'), 'utf8')) as Record<
          string,
          unknown
        >;
        expect(cfg).toMatchObject({ peft_type: 'LORA', r: 4 });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    300_000,
  );
});
