/**
 * The Python project writer without Python: the files it writes, PEFT's config class and fields in
 * train.py, the refusals, the JSONL round trip, and the DeepSpeed config against its schema and
 * back through our own ds.json reader. (Running the project is scripts/reference/export/.)
 */
import { describe, expect, it } from 'vitest';
import { ExportError } from '../errors';
import { DEFAULT_OFFLOAD, mapDeepSpeedConfig, toDeepSpeedConfig } from '../offload/deepspeed';
import type { OffloadSettings } from '../offload/deepspeed';
import { METHOD_INFO, configForRun, methodInfo } from '../peft/catalog';
import type { PeftConfigBase } from '../peft/types';
import { validateDeepSpeedConfig } from './ds-schema';
import {
  PINNED_REQUIREMENTS,
  peftConfigPython,
  pyLiteral,
  textToJsonl,
  writePythonProject,
} from './python-project';
import type { PythonProjectSpec } from './python-project';

function spec(
  cliName: string,
  over: Partial<PythonProjectSpec> = {},
  config: Record<string, unknown> = {},
): PythonProjectSpec {
  const info = methodInfo(cliName);
  const taskType = info.taskTypes.includes('CAUSAL_LM') ? 'CAUSAL_LM' : 'SEQ_CLS';
  return {
    baseModel: '/models/tiny',
    tokenizerJson: '{"model": {}}',
    padTokenId: 0,
    method: { cliName, label: info.label, peftType: info.peftType },
    config: configForRun({ ...info.defaults(taskType), ...config } as PeftConfigBase, 50),
    task:
      taskType === 'CAUSAL_LM'
        ? { id: 'lm', title: 'LM', taskType, labels: [], format: 'text' }
        : { id: 'cls', title: 'CLS', taskType, labels: ['ham', 'spam'], format: 'jsonl' },
    splits:
      taskType === 'CAUSAL_LM'
        ? { train: 'One.\n\nTwo.\n', validation: 'Three.\n' }
        : { train: '{"text":"a","label":"ham"}\n\n', validation: '{"text":"b","label":"spam"}' },
    run: { steps: 50, lr: 1e-3, warmupSteps: 5, batchSize: 4, seqLen: 32, seed: 3, weightDecay: 0 },
    offload: DEFAULT_OFFLOAD,
    template: null,
    source: 'test',
    ...over,
  };
}

describe('the Python project', () => {
  it('writes every file, with PEFT config, settings, pinned requirements and launch configs', () => {
    const files = new Map(writePythonProject(spec('lora', {}, { r: 4 })).map((f) => [f.path, f.content]));
    expect([...files.keys()].sort()).toEqual(
      [
        'README.md',
        'accelerate_deepspeed.yaml',
        'accelerate_multi_gpu.yaml',
        'data/train.jsonl',
        'data/validation.jsonl',
        'ds_config.json',
        'requirements.txt',
        'settings.json',
        'tokenizer/tokenizer.json',
        'train.py',
      ].sort(),
    );
    const py = files.get('train.py')!;
    expect(py).toContain('return peft.LoraConfig(');
    expect(py).toContain('        r=4,');
    expect(py).toContain('        target_modules=["c_attn"],');
    expect(py).toContain('        fan_in_fan_out=True,');
    expect(py).not.toContain('@@PEFT_CONFIG@@');
    expect(py).not.toContain('base_model_name_or_path');
    const settings = JSON.parse(files.get('settings.json')!) as Record<string, unknown>;
    expect(settings).toMatchObject({ base_model: '/models/tiny', steps: 50, lr: 1e-3, seed: 3, seq_len: 32 });
    for (const [name, v] of Object.entries(PINNED_REQUIREMENTS)) {
      expect(files.get('requirements.txt')).toContain(`${name}==${v}\n`);
    }
    expect(files.get('accelerate_deepspeed.yaml')).toContain('deepspeed_config_file: ds_config.json');
    expect(files.get('README.md')).toContain(
      'accelerate launch --config_file accelerate_multi_gpu.yaml train.py',
    );
    expect(files.get('README.md')).toContain('DeepSpeed is not installable');
  });

  it("writes each PEFT method's own config class; AdaLoRA's total_step follows --max-steps", () => {
    const classes: Record<string, string> = {
      lora: 'LoraConfig',
      adalora: 'AdaLoraConfig',
      ia3: 'IA3Config',
      'prompt-tuning': 'PromptTuningConfig',
      'prefix-tuning': 'PrefixTuningConfig',
      'p-tuning': 'PromptEncoderConfig',
      'p-tuning-v2': 'PrefixTuningConfig',
      'ln-tuning': 'LNTuningConfig',
      vera: 'VeraConfig',
    };
    for (const info of METHOD_INFO.filter((m) => m.cliName in classes)) {
      const s = spec(info.cliName);
      expect(peftConfigPython(s), info.cliName).toContain(`return peft.${classes[info.cliName]}(`);
    }
    expect(peftConfigPython(spec('adalora'))).toContain('        total_step=total_steps,');
    // DoRA and PiSSA are LoRA's own settings.
    expect(peftConfigPython(spec('lora', {}, { useDora: true }))).toContain('        use_dora=True,');
    expect(peftConfigPython(spec('lora', {}, { initLoraWeights: 'pissa' }))).toContain(
      '        init_lora_weights="pissa",',
    );
    expect(peftConfigPython(spec('vera', {}, { r: 8 }))).toContain('        save_projection=True,');
    // LoHa / LoKr: PEFT's classes on nn.Linear targets; GPT-2's Conv1D ones are refused (below).
    expect(peftConfigPython(spec('loha', {}, { targetModules: ['q_proj', 'v_proj'] }))).toContain(
      'return peft.LoHaConfig(',
    );
    expect(peftConfigPython(spec('lokr', {}, { targetModules: ['q_proj'], decomposeBoth: true }))).toContain(
      '        decompose_both=True,',
    );
    expect(
      peftConfigPython(spec('oft', {}, { targetModules: ['q_proj'], oftBlockSize: 8, coft: true })),
    ).toContain('        coft=True,');
    expect(
      peftConfigPython(spec('boft', {}, { targetModules: ['q_proj'], boftNButterflyFactor: 2 })),
    ).toContain('        boft_n_butterfly_factor=2,');
  });

  it('refuses what PEFT has no form for, naming it', () => {
    expect(() => writePythonProject(spec('full'))).toThrow(ExportError);
    expect(() => peftConfigPython(spec('p-tuning-v2', {}, { verbalizer: true }))).toThrow(/verbalizer/);
    expect(() => peftConfigPython(spec('lora', {}, { initLoraWeights: 'olora' }))).toThrow(/fan_in_fan_out/);
    expect(() => peftConfigPython(spec('loha'))).toThrow(/Conv1D/);
    expect(() => peftConfigPython(spec('oft'))).toThrow(/OFT takes nn.Linear/);
    expect(() => peftConfigPython(spec('boft'))).toThrow(/BOFT takes nn.Linear/);
    expect(() => peftConfigPython(spec('lokr', {}, { targetModules: ['mlp.c_fc'] }))).toThrow(ExportError);
    expect(() =>
      peftConfigPython(spec('lora', {}, { initLoraWeights: 'olora', fanInFanOut: false })),
    ).not.toThrow();
    expect(() =>
      writePythonProject(spec('p-tuning-v2', { splits: { train: 'not json', validation: '' } })),
    ).toThrow(ExportError);
  });

  it('writes Python literals and keeps the causal-LM text exact through JSONL', () => {
    expect(pyLiteral({ a: [true, false, null], b: 'x"y', c: 1e-5 })).toBe(
      '{"a": [True, False, None], "b": "x\\"y", "c": 0.00001}',
    );
    const text = 'Call me Ishmael.\n\nSome years ago\nnever mind.\n\n\nEnd';
    const joined = textToJsonl(text)
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { text: string }).text)
      .join('');
    expect(joined).toBe(text);
  });
});

describe('ds_config.json', () => {
  const all: OffloadSettings[] = [];
  for (const stage of [0, 1, 2, 3] as const)
    for (const opt of ['none', 'cpu', 'nvme'] as const)
      for (const param of ['none', 'cpu', 'nvme'] as const) {
        if ((param !== 'none' && stage < 3) || (opt !== 'none' && stage < 1)) continue;
        all.push({
          ...DEFAULT_OFFLOAD,
          stage,
          offloadOptimizer: opt,
          offloadParam: param,
          gradientAccumulationSteps: 1 + stage,
          maxGradNorm: stage * 0.5,
        });
      }

  it('passes the schema for every stage and offload, and reads back as the same settings', () => {
    for (const s of all) {
      const ds = toDeepSpeedConfig(s, { microBatchSize: 4 });
      expect(validateDeepSpeedConfig(ds), JSON.stringify(ds)).toEqual([]);
      expect(mapDeepSpeedConfig(ds).settings).toEqual(s);
    }
  });

  it('rejects what DeepSpeed would reject, naming the field', () => {
    const good = toDeepSpeedConfig(
      { ...DEFAULT_OFFLOAD, stage: 3, offloadParam: 'cpu' },
      { microBatchSize: 2 },
    );
    type Ds = Record<string, unknown> & { zero_optimization: Record<string, unknown> };
    const bad = (patch: (x: Ds) => void): string[] => {
      const x = JSON.parse(JSON.stringify(good)) as Ds;
      patch(x);
      return validateDeepSpeedConfig(x);
    };
    expect(bad((x) => (x.zero_optimization.stage = '3'))).toEqual([
      expect.stringContaining('zero_optimization.stage'),
    ]);
    expect(bad((x) => (x.zero_optimization.stage = 2))).toEqual([
      expect.stringContaining('offload_param needs stage 3'),
    ]);
    expect(bad((x) => (x.gradient_acumulation_steps = 2))).toEqual([
      expect.stringContaining('gradient_acumulation_steps'),
    ]);
    expect(bad((x) => (x.train_micro_batch_size_per_gpu = 0))).toEqual([
      expect.stringContaining('train_micro_batch_size_per_gpu'),
    ]);
    expect(bad((x) => (x.zero_optimization.offload_param = { device: 'nvme' }))).toEqual([
      expect.stringContaining('nvme_path'),
    ]);
    expect(bad((x) => delete (x as Record<string, unknown>).zero_optimization)).toEqual([
      'zero_optimization is required',
    ]);
  });
});
