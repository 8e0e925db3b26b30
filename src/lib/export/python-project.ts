/**
 * A PEFT Lab run written as a Python project a person runs elsewhere (transformers + PEFT +
 * accelerate, optionally DeepSpeed): train.py, settings.json, the task's splits as JSONL, the model's
 * tokenizer.json, pinned requirements.txt, accelerate configs for several GPUs and for DeepSpeed, a
 * ds_config.json with the run's ZeRO stage, offload, accumulation and clipping, and a README.
 * No tfjs: the CLI (`peft-lab export`) and the app both call it, each reading the files its own way.
 */
import { ExportError } from '../errors';
import type { TaskType } from '../data/tasks/registry';
import { parseTemplate } from '../data/cls-data';
import type { OffloadSettings } from '../offload/deepspeed';
import { toDeepSpeedConfig } from '../offload/deepspeed';
import { methodInfo } from '../peft/catalog';
import { configToPeftJson } from '../peft/peft-json';
import type { PeftConfigBase } from '../peft/types';
import { validateDeepSpeedConfig } from './ds-schema';
import { PEFT_CONFIG_MARKER, TRAIN_PY } from './train-py';

/**
 * The versions the project is pinned to: those of the local wheel mirror PEFT Lab's CI installs
 * from (../shared/ENVIRONMENT.md), where an exported project is run and its adapter read back.
 */
export const PINNED_REQUIREMENTS = {
  torch: '2.13.0',
  transformers: '5.18.0',
  peft: '0.21.0',
  accelerate: '1.15.0',
  tokenizers: '0.23.2',
  safetensors: '0.8.0',
} as const;

/** PEFT's config class for each peft_type we can export (peft/tuners/<method>/config.py). */
const PEFT_CLASS: Readonly<Record<string, string>> = {
  LORA: 'LoraConfig',
  ADALORA: 'AdaLoraConfig',
  IA3: 'IA3Config',
  PROMPT_TUNING: 'PromptTuningConfig',
  PREFIX_TUNING: 'PrefixTuningConfig',
  P_TUNING: 'PromptEncoderConfig',
  LN_TUNING: 'LNTuningConfig',
  VERA: 'VeraConfig',
  LOHA: 'LoHaConfig',
  LOKR: 'LoKrConfig',
  OFT: 'OFTConfig',
  BOFT: 'BOFTConfig',
};

/** Fields of the saved file that are not settings: PEFT fills them itself. */
const NOT_SETTINGS = new Set(['peft_type', 'peft_version', 'base_model_name_or_path', 'inference_mode']);

/** Validation scored before and after training: at most this many batches (as the CLI's train). */
const EVAL_BATCHES = 8;

export interface PythonProjectSpec {
  /** The base model as train.py loads it: a folder path (absolute) or a Hub repo id. */
  baseModel: string;
  /** The model's tokenizer.json text (train.py tokenizes with it, as PEFT Lab does). */
  tokenizerJson: string;
  /** Padding for classification batches (PEFT Lab pads with the tokenizer's end-of-text id). */
  padTokenId: number;
  method: { cliName: string; label: string; peftType: string };
  /** The run's method config, camelCase, as PEFT Lab trains it (configForRun applied). */
  config: PeftConfigBase;
  task: {
    id: string;
    title: string;
    taskType: TaskType;
    labels: readonly string[];
    format: 'text' | 'jsonl';
  };
  /** The task's split files as stored: plain text (causal LM) or JSONL ({text, label} / {words, tags}). */
  splits: { train: string; validation: string };
  run: {
    steps: number;
    lr: number;
    warmupSteps: number;
    batchSize: number;
    seqLen: number;
    seed: number;
    weightDecay: number;
  };
  /** ZeRO stage, offload targets, gradient accumulation, clipping and checkpointing. */
  offload: OffloadSettings;
  /** A SEQ_CLS prompt template with one {text}, or null. */
  template: string | null;
  /** What made the project, for the README (e.g. the command line). */
  source: string;
}

export interface ProjectFile {
  /** Relative to the project folder, '/'-separated. */
  path: string;
  content: string;
}

/** A JSON value as a Python literal (None, True, False; JSON's strings and numbers read the same). */
export function pyLiteral(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ExportError(`${v} has no place in a Python config`);
    return JSON.stringify(v);
  }
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(pyLiteral).join(', ')}]`;
  if (typeof v === 'object') {
    return `{${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${JSON.stringify(k)}: ${pyLiteral(x)}`)
      .join(', ')}}`;
  }
  throw new ExportError(`a ${typeof v} has no place in a Python config`);
}

/** train.py's peft_config(total_steps): the method's settings as PEFT's own config class. */
export function peftConfigPython(spec: Pick<PythonProjectSpec, 'method' | 'config' | 'baseModel'>): string {
  const cls = PEFT_CLASS[spec.config.peftType];
  if (!cls) {
    throw new ExportError(
      `${spec.method.label} (${spec.config.peftType}) has no PEFT config class to export to: export a PEFT method (${Object.keys(PEFT_CLASS).join(', ')}), or train full fine-tuning with plain transformers`,
    );
  }
  const c = spec.config as PeftConfigBase & { verbalizer?: boolean; promptTuningInit?: string };
  if (c.verbalizer) {
    throw new ExportError(
      `${spec.method.label} with a verbalizer has no form in PEFT (its PrefixTuningConfig trains a linear head): turn the verbalizer off to export`,
    );
  }
  const info = methodInfo(spec.method.cliName);
  const refusal = info.peftRefusal?.(spec.config);
  if (refusal) throw new ExportError(refusal);
  const json = configToPeftJson(info.peftValues?.(spec.config) ?? spec.config);
  // PEFT's TEXT init reads the text with the base model's tokenizer.
  if (c.promptTuningInit === 'TEXT' && json.tokenizer_name_or_path == null) {
    json.tokenizer_name_or_path = spec.baseModel;
  }
  const lines: string[] = [];
  for (const [k, v] of Object.entries(json)) {
    if (NOT_SETTINGS.has(k) || v === null || v === undefined) continue; // PEFT's default, or filled from the model
    // AdaLoRA's schedule ends at the run's last step, which --max-steps may change.
    const value = spec.config.peftType === 'ADALORA' && k === 'total_step' ? 'total_steps' : pyLiteral(v);
    lines.push(`        ${k}=${value},`);
  }
  return [
    'def peft_config(total_steps):',
    `    """PEFT Lab's ${spec.method.label} settings (--method ${spec.method.cliName}) as PEFT's ${cls}."""`,
    `    return peft.${cls}(`,
    ...lines,
    '    )',
  ].join('\n');
}

/** The causal-LM text as JSONL pieces (paragraphs, separators kept), which train.py joins back exactly. */
export function textToJsonl(text: string): string {
  const pieces = text.split(/(?<=\n\n)/).filter((p) => p.length > 0);
  return pieces.map((p) => JSON.stringify({ text: p })).join('\n') + '\n';
}

/** A stored JSONL split, one object a line, blank lines dropped (a bad line names itself). */
function normaliseJsonl(text: string, where: string): string {
  const out: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.stringify(JSON.parse(line)));
    } catch {
      throw new ExportError(`${where}:${i + 1}: not a JSON object; fix the split file and export again`);
    }
  });
  return out.join('\n') + '\n';
}

function yaml(lines: Record<string, string | number | boolean>): string {
  return Object.entries(lines)
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`)
    .join('\n');
}

export function writePythonProject(spec: PythonProjectSpec): ProjectFile[] {
  const { run, offload, task } = spec;
  if (task.taskType !== spec.config.taskType) {
    throw new ExportError(
      `the method's task_type ${spec.config.taskType} is not the task's ${task.taskType}`,
    );
  }
  const peftConfig = peftConfigPython(spec);
  const template = spec.template ? parseTemplate(spec.template) : null;
  const settings = {
    exported_by: spec.source,
    base_model: spec.baseModel,
    method: spec.method.cliName,
    peft_type: spec.config.peftType,
    task: task.id,
    task_type: task.taskType,
    labels: task.labels,
    template,
    pad_token_id: spec.padTokenId,
    steps: run.steps,
    lr: run.lr,
    warmup_steps: run.warmupSteps,
    batch_size: run.batchSize,
    seq_len: run.seqLen,
    seed: run.seed,
    weight_decay: run.weightDecay,
    gradient_accumulation_steps: offload.gradientAccumulationSteps,
    max_grad_norm: offload.maxGradNorm,
    gradient_checkpointing: offload.gradientCheckpointing,
    eval_batches: EVAL_BATCHES,
  };
  const ds = toDeepSpeedConfig(offload, { microBatchSize: run.batchSize });
  const problems = validateDeepSpeedConfig(ds);
  if (problems.length > 0) throw new ExportError(`ds_config.json would be invalid: ${problems.join('; ')}`);
  const data = (text: string, split: string): string =>
    task.format === 'text' ? textToJsonl(text) : normaliseJsonl(text, `${task.id}/${split}`);

  const common = {
    compute_environment: 'LOCAL_MACHINE',
    machine_rank: 0,
    num_machines: 1,
    num_processes: 2,
    mixed_precision: 'no',
    main_training_function: 'main',
    rdzv_backend: 'static',
    same_network: true,
    use_cpu: false,
  };
  return [
    { path: 'train.py', content: TRAIN_PY.replace(PEFT_CONFIG_MARKER, peftConfig) },
    { path: 'settings.json', content: JSON.stringify(settings, null, 2) + '\n' },
    { path: 'data/train.jsonl', content: data(spec.splits.train, 'train') },
    { path: 'data/validation.jsonl', content: data(spec.splits.validation, 'validation') },
    { path: 'tokenizer/tokenizer.json', content: spec.tokenizerJson },
    {
      path: 'requirements.txt',
      content:
        '# The versions PEFT Lab runs this project with in its CI. DeepSpeed is not among them (it is not\n' +
        '# installable there): add deepspeed yourself for the DeepSpeed launch in README.md.\n' +
        Object.entries(PINNED_REQUIREMENTS)
          .map(([name, v]) => `${name}==${v}`)
          .join('\n') +
        '\n',
    },
    {
      path: 'accelerate_multi_gpu.yaml',
      content: yaml({ ...common, distributed_type: 'MULTI_GPU', gpu_ids: 'all' }) + '\n',
    },
    {
      path: 'accelerate_deepspeed.yaml',
      content:
        yaml({ ...common, distributed_type: 'DEEPSPEED' }) +
        '\ndeepspeed_config:\n  deepspeed_config_file: ds_config.json\n  zero3_init_flag: false\n',
    },
    { path: 'ds_config.json', content: JSON.stringify(ds, null, 2) + '\n' },
    { path: 'README.md', content: readme(spec, ds) },
  ];
}

function readme(spec: PythonProjectSpec, ds: Record<string, unknown>): string {
  const { run, offload, task } = spec;
  const effective = run.batchSize * offload.gradientAccumulationSteps;
  return `# ${spec.method.label} on ${task.title}: a PEFT Lab run as a Python project

Exported by \`${spec.source}\`. The same base model (\`${spec.baseModel}\`), method settings
(\`peft_config\` in train.py, PEFT's own \`${PEFT_CLASS[spec.config.peftType]}\`), task data
(\`data/*.jsonl\`), tokenizer (\`tokenizer/tokenizer.json\`, read with the \`tokenizers\` library as
PEFT Lab reads it), hyperparameters, schedule and seed (\`settings.json\`). The adapter is saved to
\`output/\` as PEFT's \`adapter_config.json\` + \`adapter_model.safetensors\`, which PEFT Lab opens too.

| setting | value |
| --- | --- |
| steps | ${run.steps} (\`--max-steps N\` overrides) |
| learning rate | ${run.lr}, linear warmup ${run.warmupSteps} steps, then cosine to zero |
| batch | ${run.batchSize} sequences x ${offload.gradientAccumulationSteps} accumulated = ${effective} per optimizer step and process |
| sequence length | ${run.seqLen} |
| gradient clipping | ${offload.maxGradNorm > 0 ? `max norm ${offload.maxGradNorm}` : 'off'} |
| optimizer | AdamW (0.9, 0.999), eps 1e-8, weight decay ${run.weightDecay} |
| seed | ${run.seed} |
| ZeRO (DeepSpeed launch only) | stage ${offload.stage}, optimizer offload ${offload.offloadOptimizer}, parameter offload ${offload.offloadParam} |

## Run it

\`\`\`sh
python -m venv .venv && . .venv/bin/activate
pip install -r requirements.txt

# one GPU (or the CPU when there is none)
python train.py                      # add --max-steps 3 for a quick check

# several GPUs on one machine (edit num_processes in the yaml to your GPU count)
accelerate launch --config_file accelerate_multi_gpu.yaml train.py

# DeepSpeed with ds_config.json (ZeRO stage ${offload.stage}); needs: pip install deepspeed
accelerate launch --config_file accelerate_deepspeed.yaml train.py
\`\`\`

\`--model PATH_OR_HUB_ID\` loads the base model from elsewhere (copy the folder along, or name its Hub
repo), \`--output DIR\` saves the adapter elsewhere.

## What matches PEFT Lab, and what does not

- The data, tokenization, method settings, schedule, clipping and accumulation are the run's. The
  random draws are torch's, not PEFT Lab's, so losses follow the same course but not the same numbers.
- Causal LM: random windows of ${run.seqLen} + 1 tokens, loss on every next token. Classification:
  random examples padded on the right with token ${spec.padTokenId}; SEQ_CLS is scored by the head on
  the last real token, TOKEN_CLS on the first sub-token of each word, as in PEFT Lab.
- Each process draws its own batches (seeded with seed + its rank): with N GPUs an optimizer step
  sees N times the examples. Divide \`batch_size\` in settings.json by N to keep the run's batch.
- \`ds_config.json\` (${Object.keys(ds).join(', ')}) was checked against a schema of the DeepSpeed keys it
  uses, not by DeepSpeed itself: DeepSpeed is not installable where PEFT Lab's CI runs, so the
  DeepSpeed launch is the one command here that CI has not run. AdaLoRA's rank allocation reads
  gradients that ZeRO stage 2 and 3 partition: use one GPU or plain multi-GPU for AdaLoRA.
- Mixed precision is off (PEFT Lab trains in float32).
`;
}
