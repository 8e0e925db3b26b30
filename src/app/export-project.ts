/**
 * "Export as a Python project" in the Lab: the form's run (method, settings, task, training and
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
import type { MethodForm } from './method-form';
import { requestConfig } from './method-form';

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

/** The project as a zip: one folder holding the writer's files and the model under model/. */
export async function labProjectZip(
  x: LabExport,
  fetcher: Fetch = (url) => fetch(url),
): Promise<{ name: string; zip: Uint8Array }> {
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
  const methodConfig = configForRun(
    {
      ...x.method.defaults(x.task.taskType),
      // A field left empty in the form keeps PEFT's default.
      ...Object.fromEntries(
        Object.entries(requestConfig(x.method, x.form)).filter(([, v]) => v !== undefined),
      ),
      baseModelNameOrPath: 'model',
    } as PeftConfigBase,
    x.train.steps,
  );
  const files = writePythonProject({
    // Relative to train.py: the model travels inside the project.
    baseModel: 'model',
    tokenizerJson: text.decode(tokenizer),
    padTokenId: eos ?? 0,
    method: { cliName: x.method.cliName, label: x.method.label, peftType: x.method.peftType },
    config: methodConfig,
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
    template: null,
    source: `PEFT Lab's "Export as a Python project" (${x.modelId}, ${x.method.cliName}, ${x.task.id})`,
  });
  const name = `peft-lab-${x.method.cliName}-${x.task.id.replace(/[^\w.-]+/g, '-')}`;
  const entries: ZipEntry[] = [
    ...files.map((f) => ({ path: `${name}/${f.path}`, data: f.content })),
    { path: `${name}/model/config.json`, data: config! },
    { path: `${name}/model/model.safetensors`, data: weights! },
    { path: `${name}/model/tokenizer.json`, data: tokenizer! },
  ];
  return { name: `${name}.zip`, zip: zipStore(entries) };
}
