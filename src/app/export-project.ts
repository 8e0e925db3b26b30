/**
 * "Export as a Python project" in the Lab and on a finished Compare lane: the form's run (method, settings, task, training and
 * offload settings) written by the lib's project writer (src/lib/export), with a bundled model's
 * own files inside, as one zip to download. No tfjs: the writer and the zip are plain TypeScript.
 */
import { ExportError, FileLoadError } from '../lib/errors';
import type { TaskInfo } from '../lib/data/tasks/registry';
import { readImportedFile, taskDataUrl } from '../lib/data/imported';
import { writePythonProject } from '../lib/export/python-project';
import type { OffloadSettings } from '../lib/offload/deepspeed';
import type { OffloadRequest } from '../lib/offload/session';
import { configForRun } from '../lib/peft/catalog';
import type { MethodInfo } from '../lib/peft/method-info';
import type { PeftConfigBase } from '../lib/peft/types';
import type { TrainSettings } from '../lib/protocol/lab-protocol';
import { zipStore } from '../lib/util/zip';
import type { ZipEntry } from '../lib/util/zip';
import type { LaneState, RaceSettings } from '../lib/protocol/compare-protocol';
import type { MethodForm } from './method-form';
import { findMethod, requestConfig } from './method-form';
import { DEFAULT_OFFLOAD_FORM } from './offload';

export interface LabExport {
  /** The loaded model's id: a bundled model's catalog id, or `hub: ...` / `local: ...`. */
  modelId: string;
  /** Ids of the bundled models (the catalog). */
  bundled: readonly string[];
  baseUrl: string;
  method: MethodInfo;
  form: MethodForm;
  task: TaskInfo;
  train: TrainSettings;
  offload: OffloadRequest;
}

/** The Lab's offload form as DeepSpeed settings: page memory is DeepSpeed's CPU, IndexedDB its NVMe. */
export function offloadSettings(o: OffloadRequest, train: TrainSettings): OffloadSettings {
  const target = (o.device ?? 'indexeddb') === 'memory' ? 'cpu' : 'nvme';
  return {
    stage: o.stage,
    offloadOptimizer: o.stage >= 1 ? target : 'none',
    offloadParam: o.stage === 3 ? target : 'none',
    gradientAccumulationSteps: train.gradAccumSteps ?? 1,
    maxGradNorm: train.maxGradNorm ?? 1,
    gradientCheckpointing: o.gradientCheckpointing,
  };
}

type Fetch = (url: string) => Promise<Response>;

async function bytes(url: string, fetcher: Fetch): Promise<Uint8Array> {
  if (url.startsWith('idb:')) return new Uint8Array(await readImportedFile(url));
  const res = await fetcher(url);
  if (!res.ok) throw new FileLoadError(`${url}: HTTP ${res.status}; reload the page and export again`);
  return new Uint8Array(await res.arrayBuffer());
}

/** What a project is made of, whoever exports it (the Lab's form or a finished Compare lane). */
interface ProjectRun {
  modelId: string;
  bundled: readonly string[];
  baseUrl: string;
  method: Pick<MethodInfo, 'cliName' | 'label' | 'peftType'>;
  /** The method's full config (PEFT's defaults under the run's values). */
  config: PeftConfigBase;
  task: TaskInfo;
  train: TrainSettings;
  offload: OffloadRequest;
  template: string | null;
  /** The folder (and zip) name, without ".zip". */
  name: string;
  source: string;
}

/** The project as a zip: one folder holding the writer's files and the model under model/. */
async function projectZip(x: ProjectRun, fetcher: Fetch): Promise<{ name: string; zip: Uint8Array }> {
  if (!x.bundled.includes(x.modelId)) {
    throw new ExportError(
      `"Export as a Python project" puts a bundled model's files in the zip; ${x.modelId} is not one: load a bundled model, or run "peft-lab export --model <folder or Hub id>" from the command line`,
    );
  }
  const modelUrl = `${x.baseUrl}models/${x.modelId}/`;
  const text = new TextDecoder();
  const [config, weights, tokenizer] = await Promise.all(
    ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => bytes(modelUrl + f, fetcher)),
  );
  const dataUrl = taskDataUrl(x.task, x.baseUrl);
  const [train, validation] = await Promise.all(
    [x.task.files.train, x.task.files.validation].map(async (f) =>
      text.decode(await bytes(dataUrl + f, fetcher)),
    ),
  );
  const eos = (JSON.parse(text.decode(config)) as { eos_token_id?: number }).eos_token_id;
  const files = writePythonProject({
    // Relative to train.py: the model travels inside the project.
    baseModel: 'model',
    tokenizerJson: text.decode(tokenizer),
    padTokenId: eos ?? 0,
    method: { cliName: x.method.cliName, label: x.method.label, peftType: x.method.peftType },
    config: configForRun({ ...x.config, baseModelNameOrPath: 'model' }, x.train.steps),
    task: {
      id: x.task.id,
      title: x.task.title,
      taskType: x.task.taskType,
      labels: x.task.labels,
      format: x.task.format === 'text' ? 'text' : 'jsonl',
    },
    splits: { train: train!, validation: validation! },
    run: {
      steps: x.train.steps,
      lr: x.train.lr,
      warmupSteps: x.train.warmupSteps,
      batchSize: x.train.batchSize,
      seqLen: x.train.seqLen,
      seed: x.train.seed,
      weightDecay: 0,
    },
    offload: offloadSettings(x.offload, x.train),
    template: x.template,
    source: x.source,
  });
  const name = x.name;
  const entries: ZipEntry[] = [
    ...files.map((f) => ({ path: `${name}/${f.path}`, data: f.content })),
    { path: `${name}/model/config.json`, data: config! },
    { path: `${name}/model/model.safetensors`, data: weights! },
    { path: `${name}/model/tokenizer.json`, data: tokenizer! },
  ];
  return { name: `${name}.zip`, zip: zipStore(entries) };
}

const slug = (s: string): string => s.replace(/[^\w.-]+/g, '-');

/** The Lab's form as a project: the method's defaults for the task under what the form sets. */
export async function labProjectZip(
  x: LabExport,
  fetcher: Fetch = (url) => fetch(url),
): Promise<{ name: string; zip: Uint8Array }> {
  const config = {
    ...x.method.defaults(x.task.taskType),
    // A field left empty in the form keeps PEFT's default.
    ...Object.fromEntries(Object.entries(requestConfig(x.method, x.form)).filter(([, v]) => v !== undefined)),
  } as PeftConfigBase;
  return projectZip(
    {
      ...x,
      config,
      template: null,
      name: `peft-lab-${x.method.cliName}-${slug(x.task.id)}`,
      source: `PEFT Lab's "Export as a Python project" (${x.modelId}, ${x.method.cliName}, ${x.task.id})`,
    },
    fetcher,
  );
}

/** A finished Compare lane: what it trained with, as the race ran it. */
export interface LaneExport {
  modelId: string;
  bundled: readonly string[];
  baseUrl: string;
  /** The lane's method, its config as the race built it (after equal-budget sizing), rate and name. */
  lane: Pick<LaneState, 'name' | 'method' | 'config' | 'lr'>;
  task: TaskInfo;
  /** The race's settings (every lane shares them). */
  settings: Pick<RaceSettings, 'steps' | 'batchSize' | 'seqLen' | 'seed' | 'warmupSteps' | 'maxGradNorm'>;
  /** The race's SEQ_CLS prompt template, if it had one. */
  template?: string | null;
}

/**
 * "Export as a Python project" on a finished Compare lane: the same project the Lab writes, for the
 * lane's method and the config it actually trained with (an equal budget resized it), its learning
 * rate and the race's steps, batch, length and seed. A race runs everything resident, one
 * micro-batch per step: no offload, no accumulation.
 */
export async function laneProjectZip(
  x: LaneExport,
  fetcher: Fetch = (url) => fetch(url),
): Promise<{ name: string; zip: Uint8Array }> {
  const method = findMethod(x.lane.method);
  if (!method) throw new ExportError(`the lane's method "${x.lane.method}" is not one PEFT Lab knows`);
  const s = x.settings;
  const train: TrainSettings = {
    steps: s.steps,
    lr: x.lane.lr,
    batchSize: s.batchSize,
    seqLen: s.seqLen,
    seed: s.seed,
    // The race's trainer warms up for a tenth of the steps (at most 100) unless told otherwise.
    warmupSteps: s.warmupSteps ?? Math.min(100, Math.floor(s.steps / 10)),
    evalEvery: 0,
    gradAccumSteps: 1,
    maxGradNorm: s.maxGradNorm ?? 1,
  };
  return projectZip(
    {
      modelId: x.modelId,
      bundled: x.bundled,
      baseUrl: x.baseUrl,
      method,
      config: x.lane.config,
      task: x.task,
      train,
      offload: { ...DEFAULT_OFFLOAD_FORM, stage: 0 },
      template: x.task.taskType === 'SEQ_CLS' && x.template ? x.template : null,
      name: `peft-lab-${slug(x.lane.name.toLowerCase())}-${slug(x.task.id)}`,
      source: `PEFT Lab's Compare lane "${x.lane.name}" (${x.modelId}, ${x.lane.method}, ${x.task.id})`,
    },
    fetcher,
  );
}
